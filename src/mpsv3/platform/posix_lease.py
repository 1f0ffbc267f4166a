"""The POSIX singleton lease: ``flock`` on ``<runtime dir>/<name>.lock``.

Why its own module: the lease is the one guarantee that two supervisors never run the same
stack, and its file lives in a shared, per-user directory, so how it is opened (and what it
refuses to open) is security-relevant and reviewed on its own. Windows' named mutex lives in
``windows.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys

from mpsv3.platform.base import lease_file_name, runtime_dir

assert sys.platform != "win32"

if sys.platform == "linux":
    from mpsv3.platform import linux


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
        self.path = runtime_dir() / f"{lease_file_name(name)}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lease without blocking; True if we hold it now."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
        acquiring).
        """
        if self._fd is not None:
            return os.getpid()
        if sys.platform == "linux":
            with contextlib.suppress(OSError):
                return linux.flock_holder(self.path)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _first_int(os.pread(fd, 64, 0).decode(errors="replace"))
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        """Give the lease up (idempotent); the file stays, emptied."""
        fd, self._fd = self._fd, None
        if fd is None:
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
