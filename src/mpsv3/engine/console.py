"""The console of ``mpsv3 up``: every service's output and the supervisor's lines, prefixed.

Why a thread and a bounded queue: the event loop must never wait for a slow terminal. The
loop only enqueues bytes; a thread of its own writes them, and when the terminal falls behind
output is dropped from the console (never from the log files) with a one-line notice.

What a line looks like: ``15:04:05 ws_api    | listening on :8000``. The time is the local
time of the line's own stamp (service output arrives as ``2026-12-01T15:04:05.123Z line``,
the log files' format) or, for a line without one, of the moment it is written. The prefix
width is fixed when the first line is written, so every line lines up from the start; each
service gets a colour of its own, in config order, from a palette without red or yellow
(those mean trouble; a healthy service must not look like one).
"""

from __future__ import annotations

import calendar
import contextlib
import functools
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import BinaryIO

__all__ = ["COLOURS", "CONSOLE_QUEUE_BYTES", "STAMP_LEN", "Console", "clock_time", "is_stamped"]

CONSOLE_QUEUE_BYTES = 8 * 1024 * 1024
#: Service prefix colours (ANSI SGR): cyan, green, blue, magenta and their bright forms.
COLOURS = ("36", "32", "34", "35", "96", "92", "94", "95")
SUPERVISOR = "mpsv3"
#: How the supervisor's own lines look per event level; info is plain.
LEVEL_COLOURS = {"warning": "33", "error": "31", "alert": "1;31"}
#: ``2026-12-01T15:04:05.123Z `` (the stamp the log files put on every line, and its space).
STAMP_LEN = 25
_MIN_WIDTH = len(SUPERVISOR)


def is_stamped(line: bytes | str) -> bool:
    """Whether ``line`` starts with a log-file stamp (a cheap shape check, no parsing)."""
    if isinstance(line, str):
        line = line[:STAMP_LEN].encode("ascii", "replace")
    return (
        len(line) >= STAMP_LEN
        and line[4:5] == b"-"
        and line[10:11] == b"T"
        and line[19:20] == b"."
        and line[23:25] == b"Z "
        and line[:4].isdigit()
    )


@functools.lru_cache(maxsize=8)
def clock_time(second: str) -> str:
    """``15:04:05`` in local time for the UTC second ``2026-12-01T15:04:05`` (cached: a burst
    of lines shares its second)."""
    try:
        moment = calendar.timegm(time.strptime(second, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return second[11:19]
    return time.strftime("%H:%M:%S", time.localtime(moment))


class Console:
    """Prefixes every line with its time and source and writes it on a thread of its own.

    The event loop only enqueues bytes; when the queue holds more than its budget (the
    terminal cannot keep up), further output is dropped from the console (never from the log
    files) and a one-line notice says how much. Methods are safe to call from any thread.

    Args:
        stream: where to write (default: standard output).
        colour: ANSI colours (default: when ``stream`` is a terminal).
        names: every id that will write, in config order: they fix the prefix width and
            the colours. The width is frozen by the first line written once names are known
            (here or by :meth:`set_names`); later, longer names overflow it rather than
            move every other line.
        clock: wall clock for lines that carry no stamp (tests inject one).
    """

    def __init__(
        self,
        stream: BinaryIO | None = None,
        colour: bool | None = None,
        names: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._colour = self._stream.isatty() if colour is None else colour
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[str, bytes, str] | None] = queue.SimpleQueue()
        self._queued = 0
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._width = _MIN_WIDTH
        self._frozen = False
        self._named = False
        self._order: dict[str, int] = {}
        self._prefixes: dict[str, bytes] = {}
        self.set_names(names)
        self._thread = threading.Thread(target=self._drain, name="mpsv3-console", daemon=True)
        self._thread.start()

    def set_names(self, names: Iterable[str]) -> None:
        """Make room for these ids (until the first line is written) and give them colours."""
        with self._lock:
            names = list(names)
            self._named = self._named or bool(names)
            for name in names:
                self._order.setdefault(name, len(self._order))
                if not self._frozen and len(name) > self._width:
                    self._width = len(name)
                    self._prefixes = {}  # lines written before the names were known

    def _prefix(self, name: str, level: str) -> bytes:
        key = f"{name}\0{level}"
        prefix = self._prefixes.get(key)
        if prefix is None:
            text = f"{name:<{self._width}} | "
            if self._colour:
                if name == SUPERVISOR:
                    colour = LEVEL_COLOURS.get(level, "1")
                else:
                    index = self._order.setdefault(name, len(self._order))
                    colour = COLOURS[index % len(COLOURS)]
                text = f"\x1b[{colour}m{text}\x1b[0m"
            prefix = self._prefixes[key] = text.encode()
        return prefix

    def write_lines(self, name: str, data: bytes, level: str = "info") -> None:
        """Queue whole lines of ``name``'s output; never blocks."""
        with self._lock:
            self._frozen = self._named
            if self._queued + len(data) > CONSOLE_QUEUE_BYTES:
                self._dropped[name] = self._dropped.get(name, 0) + data.count(b"\n")
                return
            self._queued += len(data)
        self._queue.put((name, data, level))

    def supervisor_line(self, text: str, level: str = "info") -> None:
        """One line of the supervisor's own (``level`` colours it: warning, error, alert)."""
        self.write_lines(SUPERVISOR, text.rstrip("\n").encode() + b"\n", level)

    def _now(self) -> bytes:
        return time.strftime("%H:%M:%S ", time.localtime(self._clock())).encode()

    def _format(self, name: str, data: bytes, level: str) -> bytes:
        prefix = self._prefix(name, level)
        now = self._now()
        out = []
        for line in data.split(b"\n")[:-1]:
            if is_stamped(line):
                stamp = clock_time(line[:19].decode("ascii")).encode() + b" "
                out.append(stamp + prefix + line[STAMP_LEN:] + b"\n")
            else:
                out.append(now + prefix + line + b"\n")
        return b"".join(out)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            name, data, level = item
            out = self._format(name, data, level)
            with self._lock:
                self._queued -= len(data)
                dropped, self._dropped = self._dropped, {}
            for source, count in dropped.items():
                notice = f"{count} lines of {source} not shown: the console is too slow; see logs/{source}.log\n"
                out += self._now() + self._prefix(SUPERVISOR, "warning") + notice.encode()
            with contextlib.suppress(OSError, ValueError):
                self._stream.write(out)
                self._stream.flush()

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=5)
