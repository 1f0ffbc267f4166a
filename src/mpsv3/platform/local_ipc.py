"""POSIX local IPC for the control plane: a private Unix socket and its peer's uid.

Why here: the control server must be reachable only by the user who runs the supervisor.
On POSIX that is a Unix socket born mode 0600 inside a 0700 directory that we own; on
Linux the peer's uid is also read with ``SO_PEERCRED`` so that the server can refuse a
stranger even if the file modes were loosened. ``control.py`` calls these functions through
:mod:`mpsv3.platform` without knowing the OS; ``local_ipc_windows.py`` is the named-pipe twin.

Ownership: :func:`start_local_server` returns a :class:`LocalServer` owned by the caller (the
``ControlServer``); it lives on the caller's event loop and takes no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import stat
import struct
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from mpsv3._compat import timeout
from mpsv3.errors import MpsvError

assert sys.platform != "win32"

#: Called for each accepted connection with its stream pair.
ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

SOCKET_NAME = "control.sock"
POINTER_NAME = "control.path"  # holds the real socket path when it lives outside state_dir
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS; keep a margin
CLIENT_LIMIT = 1 << 24  # a client reads whole replies (a status of many services)
_PEERCRED = struct.Struct("iII")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}


def current_uid() -> int | None:
    """Our effective uid: the only peer the control socket accepts by default."""
    return os.geteuid()


# ---------------------------------------------------------------------------------- paths


def _computed_path(state_dir: Path, name: str) -> tuple[Path, bool]:
    """The socket path and whether it is the short fallback outside ``state_dir``."""
    inside = Path(state_dir) / "run" / SOCKET_NAME
    if len(os.fsencode(str(inside))) <= MAX_SOCKET_PATH:
        return inside, False
    digest = hashlib.sha256(os.fsencode(str(state_dir))).hexdigest()[:8]
    leaf = f"{name[:40]}-{digest}.sock"
    for base in (tempfile.gettempdir(), "/tmp"):
        candidate = Path(base) / f"mpsv3-{current_uid()}" / leaf
        if len(os.fsencode(str(candidate))) <= MAX_SOCKET_PATH:
            return candidate, True
    raise MpsvError(f"no socket path short enough for instance '{name}'")


def server_endpoint(state_dir: Path, name: str) -> Path:
    """Where the server of instance ``name`` listens; records a fallback path for clients.

    The socket is ``state_dir/run/control.sock``. When that path is too long for a Unix
    socket, the socket goes to ``<tempdir>/mpsv3-<uid>/<name>-<hash of state_dir>.sock`` and
    its real path is written to ``state_dir/run/control.path`` for clients whose temp dir
    differs; a leftover pointer is removed when the short path fits.
    """
    path, fallback = _computed_path(state_dir, name)
    pointer = Path(state_dir) / "run" / POINTER_NAME
    if fallback:
        private_dir(pointer.parent)
        pointer.write_text(str(path) + "\n", encoding="utf-8")
    else:
        pointer.unlink(missing_ok=True)
    return path


def client_endpoint(state_dir: Path, name: str) -> Path:
    """The socket a client connects to: the recorded fallback if any, else computed."""
    pointer = Path(state_dir) / "run" / POINTER_NAME
    with contextlib.suppress(OSError, UnicodeDecodeError):
        recorded = pointer.read_text(encoding="utf-8").strip()
        if recorded:
            return Path(recorded)
    return _computed_path(state_dir, name)[0]


def private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) or check that an existing one is ours, then make it 0700.

    Raises:
        MpsvError: ``path`` is not a directory (a symlink is not followed) or another uid
            owns it.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)  # a symlink planted in a shared temp dir is refused, not followed
    if not stat.S_ISDIR(info.st_mode):
        raise MpsvError(f"refusing to use {path}: not a directory")
    uid = os.geteuid()
    if info.st_uid != uid:
        raise MpsvError(f"refusing to use {path}: owned by uid {info.st_uid}, not {uid}")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


# --------------------------------------------------------------------------------- server


class LocalServer:
    """A listening Unix socket; :meth:`close` stops it and removes its file if still ours.

    The file is removed only if it is still the inode we bound, so a successor that already
    replaced it keeps its socket.
    """

    def __init__(self, server: asyncio.Server, path: Path, inode: int) -> None:
        self._server = server
        self._path = path
        self._inode: int | None = inode

    def close(self) -> None:
        """Stop accepting connections (open ones are the caller's) and unlink our socket."""
        self._server.close()
        if self._inode is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self._path).st_ino == self._inode:
                os.unlink(self._path)
        self._inode = None


async def start_local_server(
    path: Path, client_connected_cb: ClientConnected, *, limit: int
) -> LocalServer:
    """Listen on the Unix socket ``path`` (born 0600, in a private 0700 directory).

    A stale socket file is replaced only if no server answers on it.

    Args:
        path: the socket path (:func:`server_endpoint`).
        client_connected_cb: runs as its own task for each connection.
        limit: the stream buffer limit, so a longer request line overruns.

    Raises:
        MpsvError: the directory is not ours, ``path`` is not a socket, or another server
            answers on it.
    """
    private_dir(path.parent)
    await _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(0o177)  # the socket is born 0600: no window before chmod
        try:
            sock.bind(str(path))
        finally:
            os.umask(previous)
        os.chmod(path, 0o600)
        inode = os.stat(path).st_ino
        sock.listen(64)
        sock.setblocking(False)
        server = await asyncio.start_unix_server(client_connected_cb, sock=sock, limit=limit)
    except BaseException:
        sock.close()
        raise
    return LocalServer(server, path, inode)


async def _remove_stale(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise MpsvError(f"refusing to replace {path}: it is not a socket")
    try:
        async with timeout(2.0):
            _reader, writer = await open_local_connection(path)
    except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
        path.unlink(missing_ok=True)
        return
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    raise MpsvError(f"another control server answers on {path}")


def peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The uid of the connected process (Linux ``SO_PEERCRED``), or None where unsupported."""
    option: int | None = getattr(socket, "SO_PEERCRED", None)
    sock = writer.get_extra_info("socket")
    if option is None or sock is None or sock.family != socket.AF_UNIX:
        return None
    _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size))
    return int(uid)


# --------------------------------------------------------------------------------- client


async def open_local_connection(
    path: Path, *, limit: int = CLIENT_LIMIT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the Unix socket ``path``.

    Raises:
        FileNotFoundError, ConnectionRefusedError: nobody listens there.
        PermissionError: the socket or its directory belongs to another user.
    """
    return await asyncio.open_unix_connection(str(path), limit=limit)
