"""The POSIX singleton lease: ``flock`` on ``<runtime dir>/<name>.lock``.

Why its own module: the lease is the one guarantee that two supervisors never run the same
stack, and its file lives in a per-user directory whose fallback name (``/tmp/mpsv3-<uid>``)
anyone can create first, so how it is opened (and what it refuses to open) is
security-relevant and reviewed on its own. The directory must be private
(:func:`~mpsv3.platform.dirs.ensure_private_dir`) and the file is opened by
:func:`~mpsv3.platform.dirs.open_private_file`: never through a symlink, never a file that
another user owns or that has a second name. Windows' named mutex lives in ``windows.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys

from mpsv3.platform.dirs import (
    RUNTIME_HINT,
    ensure_private_dir,
    file_problem,
    lease_file_name,
    open_private_file,
    owner_uid,
    runtime_dir_path,
)

assert sys.platform != "win32"

def _ours(info: os.stat_result) -> bool:
    return file_problem(info, owner_uid()) is None


def _first_int(text: str) -> int | None:
    match = re.search(r"\d+", text)
    return int(match.group()) if match else None


class SingletonLease:
    """OS-level lease for an instance name: ``flock`` on ``<runtime dir>/<name>.lock``.

    The kernel drops the lock when the holder dies (kill -9 included), so the file left on
    disk never decides anything; the PID written into it is only for messages. The lock
    descriptor is close-on-exec, so services never inherit the lease. Owned by the
    supervisor's main task.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = runtime_dir_path() / f"{lease_file_name(name)}.lock"
        self._fd: int | None = None
        self._shared = False

    @classmethod
    def inherited(cls, name: str, fd: int) -> SingletonLease:
        """The lease held through ``fd``, inherited from the keeper that took it.

        Both hold the same lock (one open file description); releasing this copy only closes
        it, so the lease stays held until the keeper, too, is done.
        """
        lease = cls(name)
        os.set_inheritable(fd, False)
        lease._fd, lease._shared = fd, True
        return lease

    def fileno(self) -> int:
        """The locked descriptor, to hand to the supervisor's process (``inherited``)."""
        if self._fd is None:
            raise ValueError("the lease is not held")
        return self._fd

    def acquire(self) -> bool:
        """Take the lease without blocking; True if we hold it now.

        Raises:
            PrivatePathError: the runtime dir or the lease file is not private to us (another
                user prepared it, a symlink, a second hard link): the message names the path,
                the owner and what to do.
        """
        if self._fd is not None:
            return True
        ensure_private_dir(self.path.parent, hint=RUNTIME_HINT)
        fd = open_private_file(self.path, os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def holder_pid(self) -> int | None:
        """Who holds the lease now, or None when nobody does.

        Linux reads the kernel's lock table. Elsewhere a probe lock tells whether anyone
        holds it, and the PID comes from the file (written by the holder right after
        acquiring). A lease file that is not ours (a symlink, another user's file) names
        nobody: its holder does not hold *our* lease.
        """
        if self._fd is not None:
            return os.getpid()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            if not _ours(os.fstat(fd)):
                return None
            if sys.platform == "linux":
                from mpsv3.platform import linux  # only on a conflict: `up` starts without it

                with contextlib.suppress(OSError):
                    found = linux.flock_holder(self.path)
                    if found is not None:
                        return found
                # Not in the table (a namespace that hides it): the probe and the file say.
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _first_int(os.pread(fd, 64, 0).decode(errors="replace"))
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def mark_stopping(self) -> None:
        """Say in the lease file that the holder is stopping its stack (its keeper is gone).

        A new ``up`` then waits for the lease instead of exiting 75 at once
        (:meth:`holder_stopping`).
        """
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, f"{os.getpid()} stopping\n".encode(), 0)

    def holder_stopping(self) -> bool:
        """The holder said it is stopping (the lease will be free once its stack is down)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            return _ours(os.fstat(fd)) and b"stopping" in os.pread(fd, 64, 0)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Give the lease up (idempotent); the file stays, emptied."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._shared:
            os.close(fd)  # the keeper's copy keeps the lock
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> SingletonLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
