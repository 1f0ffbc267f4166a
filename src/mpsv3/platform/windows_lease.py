"""The Windows singleton lease: the named mutex ``Local\\mpsv3-<name>``.

Why its own module: like ``posix_lease.py``, the lease is the guarantee that two supervisors
never run one stack; Windows abandons the mutex when its holder dies.
"""

from __future__ import annotations

import contextlib
import os
import sys

import psutil

from mpsv3.platform.dirs import lease_file_name, runtime_dir

assert sys.platform == "win32"

# After the assert: type-checked for Windows only, like the rest of this module.
from mpsv3.platform.win32_api import (  # noqa: E402
    WAIT_ABANDONED,
    WAIT_OBJECT_0,
    WAIT_TIMEOUT,
    close_handle,
    kernel32,
    win_error,
)


class SingletonLease:
    """OS-level lease for an instance name: the named mutex ``Local\\mpsv3-<name>``.

    Windows releases (abandons) the mutex when the holder dies. A mutex is owned by the
    thread that acquired it: acquire and release from the supervisor's main thread, which
    lives as long as the lease. The holder's PID goes to a side file for messages only.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        safe = lease_file_name(name)
        self.mutex_name = f"Local\\mpsv3-{safe}"
        self.path = runtime_dir() / f"{safe}.pid"
        self._handle: int | None = None

    def acquire(self) -> bool:
        """Take the lease without blocking; True if we hold it now."""
        if self._handle is not None:
            return True
        handle = kernel32.CreateMutexW(None, False, self.mutex_name)
        if not handle:
            raise win_error()
        result = int(kernel32.WaitForSingleObject(handle, 0))
        if result in (WAIT_OBJECT_0, WAIT_ABANDONED):
            self._handle = int(handle)
            with contextlib.suppress(OSError):
                self.path.write_text(f"{os.getpid()}\n")
            return True
        error = win_error()
        close_handle(handle)
        if result == WAIT_TIMEOUT:
            return False
        raise error

    def mark_stopping(self) -> None:
        """No keeper on Windows: a holder never stops on its behalf (nothing to say)."""

    def holder_stopping(self) -> bool:
        return False

    def holder_pid(self) -> int | None:
        """Who holds the lease: us, else the live PID in the side file, else None."""
        if self._handle is not None:
            return os.getpid()
        try:
            text = self.path.read_text(errors="replace").strip()
        except OSError:
            return None
        if not text.isdigit():
            return None
        pid = int(text)
        return pid if psutil.pid_exists(pid) else None

    def release(self) -> None:
        """Give the lease up (idempotent)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            self.path.write_text("")
        kernel32.ReleaseMutex(handle)
        close_handle(handle)

    def __enter__(self) -> SingletonLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
