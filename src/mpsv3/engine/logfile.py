"""A service's log file, rotated by size between whole lines.

Why its own module: the pump writes to it, ``logs`` reads what it leaves (``x.log``,
``x.log.1`` ...), and the supervisor's own logs rotate the same way. Owned by one writer.

Log files hold whatever services print (tokens, addresses), so they are born mode 0640 (an
older, looser file is tightened) and opened without following a symlink: a link planted as
``logs/api.log`` must not make the supervisor append to, say, ``/etc/passwd``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from mpsv3.errors import MpsvError
from mpsv3.platform import open_private_file
from mpsv3.platform.pressure import is_exhaustion

#: The most a log file may allow: owner read/write, group read.
LOG_FILE_MODE = 0o640


def open_log_file(path: Path) -> BinaryIO:
    """Open ``path`` for appending: created 0640, never through a symlink, only if ours.

    Raises:
        PrivatePathError: ``path`` is a symlink, not a regular file, another user's file, or
            has a second hard link.
        OSError: it cannot be opened (a missing folder, a name too long ...).
    """
    fd = open_private_file(path, os.O_WRONLY | os.O_APPEND, LOG_FILE_MODE)
    return os.fdopen(fd, "ab")


class RotatingLog:
    """An append-only log file rotated by size: ``x.log`` -> ``x.log.1`` -> ... ``x.log.N``.

    Rotation happens only between whole lines, so a reader of any one file sees whole lines.

    Raises (from the constructor and from a rotation):
        PrivatePathError, OSError: see :func:`open_log_file`.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._backups = backups
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._file: BinaryIO | None = None  # None between a rotation's rename and its new file
        self._size = 0
        self._reopen()

    def write(self, data: bytes) -> None:
        if self._file is None:
            self._reopen()  # the last rotation moved the file but could not open a new one
        elif self._size and self._size + len(data) > self._max_bytes:
            self._rotate()
        assert self._file is not None
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _reopen(self) -> None:
        self._file = open_log_file(self.path)
        self._size = self._file.tell()

    def _rotate(self) -> None:
        """Move the files up one and start a new one. If the new one cannot be opened (out of
        descriptors), the next write opens it: the move is never done twice."""
        assert self._file is not None
        self._file.close()
        self._file = None
        if self._backups > 0:
            for index in range(self._backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._reopen()

    def sync(self) -> None:
        """Flush to the disk (at shutdown: the last events must survive a power cut)."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def open_service_log(path: Path, max_bytes: int, backups: int) -> RotatingLog | str:
    """A service's log, or why it cannot be opened: then the service cannot start (its fault).

    Raises:
        OSError: the supervisor is out of descriptors or memory (our shortage: retry later).
    """
    try:
        return RotatingLog(path, max_bytes, backups)
    except OSError as exc:
        if is_exhaustion(exc):
            raise
        return f"cannot open its log {path}: {exc.strerror or exc}"
    except MpsvError as exc:
        return f"cannot open its log: {exc}"
