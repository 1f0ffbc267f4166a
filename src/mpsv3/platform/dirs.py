"""Private directories and files: the runtime dir, the lease, the state folders, log files.

Why here: the lease and the control socket fall back to ``<tempdir>/mpsv3-<uid>``, a name
any user of the machine can create first. A supervisor (often root) that followed a symlink
there, or trusted a directory someone else prepared, would let that user overwrite any file
(the lease file is written) or pose as the holder of its lease. So every directory mpsv3
keeps private goes through :func:`ensure_private_dir`, and every file it creates in one is
opened by :func:`open_private_file`: never through a symlink, created with ``O_EXCL``, reused
only when it is a regular file of ours with a single name. Nothing else in mpsv3 checks
owners or modes.

Windows has no uid and no symlink attack through ``%LOCALAPPDATA%``; there only the type
checks apply (a directory, not a link) and files are opened in binary, non-inherited mode.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
from pathlib import Path

from mpsv3.errors import EXIT_FAILURE, MpsvError

#: What to do when the runtime dir is refused (appended to the error message).
RUNTIME_HINT = "or set MPSV3_RUNTIME_DIR to a directory of your own"

if sys.platform == "win32":
    _OPEN_FLAGS = os.O_BINARY | os.O_NOINHERIT
else:
    # O_NONBLOCK: a FIFO planted under the expected name must not hang the open.
    _OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class PrivatePathError(MpsvError):
    """A directory or file that must be ours alone is not: squatted, shared, or a symlink.

    The message is one line naming the path, what is wrong (with the owner) and what to do.
    The exit code is 1.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_FAILURE)


def owner_uid() -> int | None:
    """The uid that private paths must belong to: our effective uid (None on Windows)."""
    if sys.platform == "win32":
        return None
    return os.geteuid()


def describe_uid(uid: int) -> str:
    """``uid 1001 (alice)``, or ``uid 1001`` when the account has no name."""
    if sys.platform == "win32":
        return f"uid {uid}"
    import pwd

    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def dir_problem(info: os.stat_result, uid: int | None) -> str | None:
    """Why a directory, as ``lstat`` saw it, is not private to ``uid``; None when it is.

    Args:
        info: the ``os.lstat`` result (a symlink must not have been followed).
        uid: the owner it must have; None skips the owner and mode checks (Windows).
    """
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return "it is a symlink; remove it and mpsv3 creates a real directory"
    if not stat.S_ISDIR(mode):
        return "it is not a directory; move it out of the way"
    if uid is None:
        return None
    if info.st_uid != uid:
        return (
            f"it is owned by {describe_uid(info.st_uid)}, not by {describe_uid(uid)}; "
            "another user may have prepared it: remove it"
        )
    if stat.S_IMODE(mode) & 0o022:
        return (
            f"it is writable by other users (mode {stat.S_IMODE(mode):04o}); "
            "remove it, or chmod 700 it if you trust its contents"
        )
    return None


def file_problem(info: os.stat_result, uid: int | None) -> str | None:
    """Why an existing file (``fstat`` of a no-follow open) must not be reused; None if fine.

    A second hard link means another name (perhaps in a directory we do not control) shares
    the inode, so writing to it would write to that file too.
    """
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file; move it out of the way"
    if uid is None:
        return None
    if info.st_uid != uid:
        return f"it is owned by {describe_uid(info.st_uid)}, not by {describe_uid(uid)}; remove it"
    if info.st_nlink > 1:
        return f"it has {info.st_nlink} hard links; remove it"
    return None


def ensure_private_dir(path: Path, *, hint: str = "") -> None:
    """Create ``path`` mode 0700, or accept an existing one only if it is private to us.

    An existing directory of ours that others may read (0755) is tightened to 0700; one that
    others may write, that another uid owns, or that is a symlink is refused: its contents
    may already be someone else's. Missing parents are created with the default mode.

    Args:
        path: the directory (runtime dir, ``state_dir/run``, ``state_dir/logs`` ...).
        hint: appended to the message after "remove it", e.g. :data:`RUNTIME_HINT`.

    Raises:
        PrivatePathError: the directory is not private (the message says why and what to do).
        OSError: it cannot be created (permissions, read-only file system ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    problem = dir_problem(info, owner_uid())
    if problem is not None:
        raise PrivatePathError(f"refusing to use {path}: {problem}" + (f", {hint}" if hint else ""))
    if owner_uid() is not None and stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


def open_private_file(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open ``path`` for our own use, never through a symlink; returns a file descriptor.

    The file is created with ``O_EXCL`` (mode ``mode``), or an existing one is reused only
    if it is a regular file that we own with a single link; its mode is then tightened to
    ``mode``. The descriptor is close-on-exec. ``O_CREAT``, ``O_EXCL`` and ``O_TRUNC`` in
    ``flags`` are ignored: truncating is the caller's decision once it holds the file.

    Args:
        path: a file inside a private directory.
        flags: the access flags, e.g. ``os.O_RDWR`` or ``os.O_WRONLY | os.O_APPEND``.
        mode: the permission bits of a new file, and the most an existing one keeps.

    Raises:
        PrivatePathError: ``path`` is a symlink, not a regular file, not ours, or has
            another hard link.
        OSError: any other failure to open.
    """
    flags = (flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC)) | _OPEN_FLAGS
    for _attempt in range(3):
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            pass
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            continue  # removed between the two opens: create it
        except OSError as exc:
            _refuse_odd_file(path, exc)
            raise
        try:
            _check_reused(path, fd, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise PrivatePathError(f"refusing to open {path}: it keeps disappearing and reappearing")


def _refuse_odd_file(path: Path, exc: OSError) -> None:
    """Turn a failed open of a symlink (ELOOP) or a FIFO without reader (ENXIO) into a
    :class:`PrivatePathError`; other failures are left to the caller."""
    try:
        info = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise PrivatePathError(f"refusing to open {path}: it is a symlink; remove it") from None
    if not stat.S_ISREG(info.st_mode):
        raise PrivatePathError(
            f"refusing to open {path}: it is not a regular file; move it out of the way"
        ) from None


def _check_reused(path: Path, fd: int, mode: int) -> None:
    info = os.fstat(fd)
    problem = file_problem(info, owner_uid())
    if problem is not None:
        raise PrivatePathError(f"refusing to open {path}: {problem}")
    if sys.platform != "win32" and stat.S_IMODE(info.st_mode) & ~mode:
        os.fchmod(fd, stat.S_IMODE(info.st_mode) & mode)


def write_private_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically, never writing through a symlink.

    The data goes to a new file (``O_EXCL``) beside ``path`` that is then renamed over it:
    a symlink or a foreign file at ``path`` is replaced, not followed. Readers see the old
    or the new content, never a part.
    """
    temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_private_file(path: Path, limit: int = 65536) -> bytes | None:
    """The first ``limit`` bytes of ``path`` if it is a regular file of ours, else None.

    For small files another process of ours wrote (the control socket's pointer): a file
    planted by someone else, or a symlink, reads as absent.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        uid = owner_uid()
        if not stat.S_ISREG(info.st_mode) or (uid is not None and info.st_uid != uid):
            return None
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def runtime_dir() -> Path:
    """Where leases live (private, created 0700): ``$MPSV3_RUNTIME_DIR`` or a per-user dir.

    POSIX: ``$XDG_RUNTIME_DIR/mpsv3``, else ``<tempdir>/mpsv3-<uid>``. Windows:
    ``%LOCALAPPDATA%\\mpsv3``, else ``<tempdir>\\mpsv3-<user>``.

    Raises:
        PrivatePathError: the directory exists and is not private to us (see
            :func:`ensure_private_dir`).
    """
    path = runtime_dir_path()
    ensure_private_dir(path, hint=RUNTIME_HINT)
    return path


def runtime_dir_path() -> Path:
    """:func:`runtime_dir` without creating or checking it."""
    explicit = os.environ.get("MPSV3_RUNTIME_DIR")
    if explicit:
        return Path(explicit)
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        user = os.environ.get("USERNAME", "user")
        return Path(local) / "mpsv3" if local else Path(temp_dir()) / f"mpsv3-{user}"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "mpsv3"
    return Path(temp_dir()) / f"mpsv3-{os.getuid()}"


_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def lease_file_name(name: str) -> str:
    """A file- and mutex-name-safe, collision-free form of an instance name (``%XX``)."""
    return _UNSAFE_NAME_CHARS.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), name)


def give_to(path: Path, owner: tuple[int, int]) -> None:
    """Make ``path`` belong to ``owner`` (uid, gid); nothing on Windows (no uids)."""
    if sys.platform != "win32":
        os.chown(path, *owner)


def fresh_dir_for(folder: Path, owner: tuple[int, int]) -> Path:
    """A new 0700 folder belonging to ``owner``: for a socket a service of that user must reach.

    A stale one of ours or of ``owner`` is removed first; anything else at that name (another
    user's folder, a symlink) is refused.

    Raises:
        OSError: the name is taken by something that is not ours.
    """
    if sys.platform == "win32":
        folder.mkdir(exist_ok=True)
        return folder
    with contextlib.suppress(FileNotFoundError):
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (owner[0], os.geteuid()):
            raise OSError(f"{folder} exists and is not a folder of ours or of uid {owner[0]}")
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
    folder.mkdir(mode=0o700)
    os.chown(folder, *owner)
    return folder


def temp_dir() -> str:
    """The system's temp dir (``tempfile`` is imported only when a fallback path is needed)."""
    import tempfile

    return tempfile.gettempdir()


def short_digest(data: bytes, length: int = 16) -> str:
    """A hex sha256 prefix that names a fallback path (``hashlib`` loads OpenSSL: only on use)."""
    import hashlib

    return hashlib.sha256(data).hexdigest()[:length]
