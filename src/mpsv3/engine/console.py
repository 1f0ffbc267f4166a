"""The console of ``mpsv3 up``: every service's output and the supervisor's lines, prefixed.

Why a thread and a bounded queue: the event loop must never wait for a slow terminal. The
loop only enqueues bytes; a thread of its own writes them, and when the terminal falls behind
output is dropped from the console (never from the log files) with a one-line notice.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from typing import BinaryIO

CONSOLE_QUEUE_BYTES = 8 * 1024 * 1024
COLOURS = ("36", "32", "33", "35", "34", "91", "92", "93", "94", "95", "96")


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
