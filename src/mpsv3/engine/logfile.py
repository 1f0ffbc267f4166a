"""A service's log file, rotated by size between whole lines.

Why its own module: the pump writes to it, ``logs`` reads what it leaves (``x.log``,
``x.log.1`` ...), and the supervisor's own logs rotate the same way. Owned by one writer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


class RotatingLog:
    """An append-only log file rotated by size: ``x.log`` -> ``x.log.1`` -> ... ``x.log.N``.

    Rotation happens only between whole lines, so a reader of any one file sees whole lines.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(path, "ab")  # noqa: SIM115 - owned by this object
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        if self._size and self._size + len(data) > self._max_bytes:
            self._rotate()
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        if self._backups > 0:
            for index in range(self._backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self._file.close()
