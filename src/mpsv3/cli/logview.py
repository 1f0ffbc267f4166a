"""``mpsv3 logs``: the last lines of a service's log, and following it across rotation.

Why in the client: a service's output is already in ``state_dir/logs/<id>.log``, so ``logs``
reads the files directly and works with no supervisor running. The supervisor rotates a log by
renaming ``<id>.log`` to ``<id>.log.1`` and opening a new ``<id>.log``, and a restarted service
appends to (or recreates) the same file; :class:`LogFollower` notices a new inode or a
truncation and reopens, so ``logs -f`` survives both. It wakes up on file-system notifications
(watchfiles) rather than polling. Owned by one CLI thread; no lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import watchfiles

from mpsv3.errors import MpsvError

__all__ = ["LogFollower", "log_path", "tail_lines"]

_BLOCK = 65536
#: With no notification for this long, look at the file anyway: notifications can be lost
#: (network file systems, a watch set up just after a write), a look is cheap.
_SAFETY_WAKE_MS = 2000


def log_path(state_dir: Path, service_id: str) -> Path:
    """Where the supervisor writes the output of ``service_id``."""
    return Path(state_dir) / "logs" / f"{service_id}.log"


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def _last_lines(handle: BinaryIO, end: int, count: int) -> list[bytes]:
    """The last ``count`` lines of ``handle[0:end]`` (a final line without newline counts)."""
    if count <= 0 or end <= 0:
        return []
    position = end
    data = b""
    while position > 0 and data.count(b"\n") <= count:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + data
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the region ends with a newline
    if position > 0:
        lines = lines[1:]  # the first piece may be the end of a longer line
    return lines[-count:]


def _file_lines(path: Path, count: int, end: int | None = None) -> list[bytes]:
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            return _last_lines(handle, size if end is None else min(end, size), count)
    except FileNotFoundError:
        return []


def _with_previous(path: Path, current: list[bytes], count: int) -> list[bytes]:
    """Top up the lines of the current file with the end of the rotated ``<id>.log.1``."""
    if len(current) >= count:
        return current
    previous = _file_lines(path.with_name(path.name + ".1"), count - len(current))
    return previous + current


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a log, reaching into ``<path>.1`` when the log is short."""
    return [_decode(line) for line in _with_previous(path, _file_lines(path, count), count)]


class LogFollower:
    """Reads a log from the moment it is created on, across rotation, recreation and truncation.

    Construction fixes the starting point (the end of the last complete line), so that
    :meth:`tail` and :meth:`follow` neither lose nor repeat a line written in between.

    Args:
        path: the log file; it may not exist yet (it is read from its start when it appears).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._identity: tuple[int, int] | None = None
        self._partial = b""
        self._start = 0
        if self._open():
            assert self._handle is not None
            size = os.fstat(self._handle.fileno()).st_size
            self._start = size - len(_last_partial(self._handle, size))
            self._handle.seek(self._start)

    def tail(self, count: int) -> list[str]:
        """The last ``count`` complete lines before the starting point."""
        current: list[bytes] = []
        if self._handle is not None:
            current = _last_lines(self._handle, self._start, count)
            self._handle.seek(self._start)
        return [_decode(line) for line in _with_previous(self.path, current, count)]

    def read_new(self) -> list[str]:
        """Every complete line written since the last call (the old file's end first)."""
        if self._handle is None and not self._open():
            return []
        lines = self._drain()
        identity = _identity_of(self.path)
        assert self._handle is not None
        if identity is not None and identity != self._identity:
            lines += self._drain()  # the last words of the rotated file
            lines += self._flush_partial()
            self._close()
            if self._open():
                lines += self._drain()
        elif os.fstat(self._handle.fileno()).st_size < self._handle.tell():
            lines += self._flush_partial()  # truncated: start over
            self._handle.seek(0)
            lines += self._drain()
        return lines

    def follow(self, stop: threading.Event | None = None) -> Iterator[str]:
        """New lines as they are written, until ``stop`` is set (or Ctrl-C).

        Raises:
            MpsvError: the logs folder does not exist (the service never ran here).
        """
        folder = self.path.parent
        if not folder.is_dir():
            raise MpsvError(f"no logs yet: {folder} does not exist")
        yield from self.read_new()
        prefix = self.path.name

        def relevant(_change: watchfiles.Change, changed: str) -> bool:
            return os.path.basename(changed).startswith(prefix)

        for _changes in watchfiles.watch(
            folder,
            watch_filter=relevant,
            debounce=200,
            step=30,
            stop_event=stop,
            rust_timeout=_SAFETY_WAKE_MS,
            yield_on_timeout=True,
            recursive=False,
        ):
            yield from self.read_new()
        yield from self.read_new()

    def close(self) -> None:
        self._close()

    def _open(self) -> bool:
        try:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open while following
        except FileNotFoundError:
            return False
        info = os.fstat(self._handle.fileno())
        self._identity = (info.st_dev, info.st_ino)
        return True

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        self._identity = None

    def _drain(self) -> list[str]:
        assert self._handle is not None
        data = self._partial + self._handle.read()
        *complete, self._partial = data.split(b"\n")
        return [_decode(line) for line in complete]

    def _flush_partial(self) -> list[str]:
        partial, self._partial = self._partial, b""
        return [_decode(partial)] if partial else []

    def __enter__(self) -> LogFollower:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._close()


def _last_partial(handle: BinaryIO, size: int) -> bytes:
    """The bytes after the last newline of the first ``size`` bytes (an unfinished line)."""
    position = size
    tail = b""
    while position > 0:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        tail = handle.read(step) + tail
        if b"\n" in tail:
            return tail.rsplit(b"\n", 1)[1]
    return tail


def _identity_of(path: Path) -> tuple[int, int] | None:
    with contextlib.suppress(OSError):
        info = os.stat(path)
        return (info.st_dev, info.st_ino)
    return None
