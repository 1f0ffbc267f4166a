"""Where a service's output goes: its rotating log file, the console, and a line listener.

Why chunks, not lines: a service that floods its output must never be slowed by us, and no
line may be lost or cut. The pump reads the pipe in large chunks and writes whole lines to the
log file at once (the remainder waits for its newline); only the console, which may be slow,
is fed through a bounded queue on its own thread, and drops (with a notice) instead of
blocking. One pump per running process; owned by the service's runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CHUNK = 256 * 1024
CONSOLE_QUEUE_BYTES = 8 * 1024 * 1024
COLOURS = ("36", "32", "33", "35", "34", "91", "92", "93", "94", "95", "96")


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


class Console:
    """Prefixes every line with its service id and writes it on a thread of its own.

    The event loop only enqueues bytes; when the queue holds more than its budget (the
    terminal cannot keep up), further output is dropped from the console (never from the log
    files) and a one-line notice says how much.
    """

    def __init__(self, stream: BinaryIO | None = None, colour: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._colour = self._stream.isatty() if colour is None else colour
        self._queue: queue.SimpleQueue[tuple[bytes, bytes] | None] = queue.SimpleQueue()
        self._queued = 0
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._width = 8
        self._prefixes: dict[str, bytes] = {}
        self._thread = threading.Thread(target=self._drain, name="mpsv3-console", daemon=True)
        self._thread.start()

    def set_names(self, names: list[str]) -> None:
        self._width = max([8, *(len(n) for n in names)])
        self._prefixes.clear()

    def _prefix(self, name: str) -> bytes:
        prefix = self._prefixes.get(name)
        if prefix is None:
            text = f"{name:<{self._width}} | "
            if self._colour:
                colour = COLOURS[sum(name.encode()) % len(COLOURS)]
                text = f"\x1b[{colour}m{text}\x1b[0m"
            prefix = self._prefixes[name] = text.encode()
        return prefix

    def write_lines(self, name: str, data: bytes) -> None:
        """Queue whole lines of ``name``'s output; never blocks."""
        with self._lock:
            if self._queued + len(data) > CONSOLE_QUEUE_BYTES:
                self._dropped[name] = self._dropped.get(name, 0) + data.count(b"\n")
                return
            self._queued += len(data)
        self._queue.put((self._prefix(name), data))

    def supervisor_line(self, text: str) -> None:
        self.write_lines("mpsv3", text.rstrip("\n").encode() + b"\n")

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            prefix, data = item
            lines = data.split(b"\n")
            out = b"".join(prefix + line + b"\n" for line in lines[:-1])
            with self._lock:
                self._queued -= len(data)
                dropped, self._dropped = self._dropped, {}
            for name, count in dropped.items():
                out += self._prefix("mpsv3") + (
                    f"{count} lines of {name} not shown: the console is too slow; see logs/{name}.log\n"
                ).encode()
            with contextlib.suppress(OSError, ValueError):
                self._stream.write(out)
                self._stream.flush()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


class OutputPump:
    """Copies one process's merged stdout/stderr into the log, the console and a listener.

    Args:
        name: the service id (console prefix).
        log: the service's rotating log file.
        console: the shared console, or None when the console is off.
    """

    def __init__(self, name: str, log: RotatingLog, console: Console | None) -> None:
        self._name = name
        self._log = log
        self._console = console
        #: Called with each decoded line while set (the ``log`` readiness probe sets it).
        self.line_listener: Callable[[str], None] | None = None

    async def run(self, reader: asyncio.StreamReader) -> None:
        """Until end of file; the last partial line is written with a newline added."""
        pending = b""
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                break
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                pending = data
                if len(pending) >= CHUNK:  # a huge line with no newline: flush it as a line
                    self._emit(pending + b"\n")
                    pending = b""
                continue
            pending = data[cut:]
            self._emit(data[:cut])
        if pending:
            self._emit(pending + b"\n")

    def _emit(self, lines: bytes) -> None:
        self._log.write(lines)
        if self._console is not None:
            self._console.write_lines(self._name, lines)
        listener = self.line_listener
        if listener is not None:
            for line in lines.decode("utf-8", "replace").splitlines():
                listener(line)
