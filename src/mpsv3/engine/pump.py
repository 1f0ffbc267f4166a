"""Copies a service's output into its log file, the console and a line listener.

Why chunks, not lines: a service that floods its output must never be slowed by us, and no
line may be lost or cut. Every line gets the time it was read, in the contract's format, in
the log file and on the console. The pump reads the pipe in large chunks and writes whole lines to the
log file at once (the remainder waits for its newline). One pump per running process; owned by
the service's runner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mpsv3.engine.console import Console
from mpsv3.engine.events import utc_timestamp
from mpsv3.engine.logfile import RotatingLog

CHUNK = 256 * 1024


def stamp_lines(lines: bytes, now: float) -> bytes:
    """Prefix every line of ``lines`` (whole lines, ending in a newline) with ``now``'s stamp.

    ``2026-12-01T15:04:05.123Z <line>``: the time the supervisor read it, shared by every line
    of one read (one ``replace`` in C, so a flood costs little).
    """
    stamp = utc_timestamp(now).encode() + b" "
    return stamp + lines[:-1].replace(b"\n", b"\n" + stamp) + b"\n"


class OutputPump:
    """Copies one process's merged stdout/stderr into the log, the console and a listener.

    Args:
        name: the service id (console prefix).
        log: the service's rotating log file.
        console: the shared console, or None when the console is off.
    """

    def __init__(
        self, name: str, log: RotatingLog, console: Console | None, clock: Callable[[], float] = time.time
    ) -> None:
        self._name = name
        self._clock = clock
        self._log = log
        self._console = console
        #: Called with each decoded line while set (the ``log`` readiness probe sets it).
        self.line_listener: Callable[[str], None] | None = None
        #: Bytes the log file could not take (ENOSPC...), and who hears of each failure.
        self.unwritten = 0
        self.on_error: Callable[[OSError], None] | None = None

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
        listener = self.line_listener
        if listener is not None:
            for line in lines.decode("utf-8", "replace").splitlines():
                listener(line)
        now = self._clock()
        stamped = stamp_lines(lines, now)
        try:
            self._log.write(stamped)
        except OSError as exc:  # a full disk: the service must go on, the console still shows it
            self.unwritten += len(stamped)
            if self.on_error is not None:
                self.on_error(exc)
        if self._console is not None:
            self._console.write_lines(self._name, lines, at=now)
