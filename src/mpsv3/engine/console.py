"""The console of ``mpsv3 up``: every service's output and the supervisor's lines, prefixed.

Why a thread and a bounded queue: the event loop must never wait for a slow terminal. The
loop only enqueues bytes; a thread of its own writes them, and when the terminal falls behind
output is dropped from the console (never from the log files) with a one-line notice.

What a line looks like: ``15:04:05 ws_api    | listening on :8000``. The time is the local
time the pump read the line (the same moment its log file's stamp names) or, for the
supervisor's own lines, of the moment they are written. The prefix
width is fixed when the first line is written, so every line lines up from the start; each
service gets a colour of its own, in config order, from a palette without red or yellow
(those mean trouble; a healthy service must not look like one).

Who else reads it: followers (``mpsv3 attach``, through the control server) get every chunk
the console writes, fed on the console thread into a bounded buffer of their own
(:class:`ConsoleFollower`): a slow follower loses lines (and is told how many), it never
holds up the console, the loop or another follower. Under ``up -d`` the console writes to
``logs/console.log``, which it rotates by size (:meth:`Console.rotate_file`).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import functools
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "COLOURS", "CONSOLE_QUEUE_BYTES", "FOLLOWER_BUDGET", "STAMP_LEN", "Console", "ConsoleFollower",
    "clock_time", "is_stamped",
]

CONSOLE_QUEUE_BYTES = 8 * 1024 * 1024
#: What one follower may have waiting before its further chunks are dropped.
FOLLOWER_BUDGET = 1024 * 1024
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


def utc_second(text: str) -> int:
    """Seconds since the epoch of the UTC second ``2026-12-01T15:04:05`` (the first 19
    characters of a stamp or an event's ``ts``).

    Why not ``time.strptime``: its first call imports ``_strptime``, and an import can fail
    when the supervisor is out of descriptors (issue 15); this reads six numbers.

    Raises:
        ValueError: ``text`` is not such a second.
    """
    if len(text) < 19 or text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        raise ValueError(f"not a UTC second: {text!r}")
    fields = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if not all(field.isdigit() for field in fields):
        raise ValueError(f"not a UTC second: {text!r}")
    year, month, day, hour, minute, second = (int(field) for field in fields)
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


@functools.lru_cache(maxsize=8)
def clock_time(second: str) -> str:
    """``15:04:05`` in local time for the UTC second ``2026-12-01T15:04:05`` (cached: a burst
    of lines shares its second)."""
    try:
        moment = utc_second(second)
    except ValueError:
        return second[11:19]
    return time.strftime("%H:%M:%S", time.localtime(moment))


class ConsoleFollower:
    """One follower of the console (``mpsv3 attach``): a bounded buffer between two threads.

    The console thread calls :meth:`feed` with each chunk it writes; the follower's task, on
    ``loop``, awaits :meth:`read`. When more than ``budget`` bytes wait (the follower reads
    too slowly), further chunks are dropped and counted, and the next read says how many
    lines were lost. :meth:`feed` never blocks; :meth:`read` returns None once closed and
    drained. Owned by the task that follows; fed by the console's thread (a lock guards it).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, budget: int = FOLLOWER_BUDGET) -> None:
        self._loop = loop
        self._budget = budget
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._size = 0
        self._dropped = 0
        self._closed = False
        self._signalled = False
        self._wake = asyncio.Event()  # set only on the loop

    def feed(self, data: bytes) -> None:
        """Queue a chunk (any thread); dropped, and counted, when the budget is spent."""
        with self._lock:
            if self._closed:
                return
            if self._size + len(data) > self._budget:
                self._dropped += data.count(b"\n")
            else:
                self._chunks.append(data)
                self._size += len(data)
            self._signal()

    def close(self) -> None:
        """No more chunks (the console or the follower ends); :meth:`read` drains, then None."""
        with self._lock:
            self._closed = True
            self._signal()

    def _signal(self) -> None:
        if self._signalled:
            return
        self._signalled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads any more
            self._loop.call_soon_threadsafe(self._wake.set)

    async def read(self) -> bytes | None:
        """Everything queued so far (and a notice of lines lost), or None when closed."""
        while True:
            with self._lock:
                if self._chunks or self._dropped:
                    data, dropped = b"".join(self._chunks), self._dropped
                    self._chunks, self._size, self._dropped = [], 0, 0
                    self._signalled = False
                    if dropped:
                        data += f"[{dropped} lines not shown here: this follower fell behind]\n".encode()
                    return data
                if self._closed:
                    return None
                self._signalled = False
            self._wake.clear()
            await self._wake.wait()


class _FileRotation:
    """Size rotation of the file a console writes to (``up -d``: ``logs/console.log``).

    Copy, then truncate, like logrotate's ``copytruncate``: the keeper and the supervisor
    also hold that file as their stderr (opened to append), and every one of those
    descriptors must go on writing to ``console.log``, which a rename would not give.
    Names follow :class:`~mpsv3.engine.logfile.RotatingLog`: ``console.log.1`` is the newest.
    """

    def __init__(self, fd: int, path: Path, max_bytes: int, backups: int) -> None:
        self._fd, self.path, self._max, self._backups = fd, path, max_bytes, backups

    def check(self) -> None:
        if os.fstat(self._fd).st_size <= self._max:
            return
        from mpsv3.engine.logfile import open_log_file

        if self._backups > 0:
            for index in range(self._backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            newest = self.path.with_name(f"{self.path.name}.1")
            newest.unlink(missing_ok=True)
            flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
            with os.fdopen(os.open(self.path, flags), "rb") as source, open_log_file(newest) as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
        os.ftruncate(self._fd, 0)


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
        self._queue: queue.SimpleQueue[tuple[str, bytes, str, float | None] | None] = queue.SimpleQueue()
        self._queued = 0
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._width = _MIN_WIDTH
        self._frozen = False
        self._named = False
        self._order: dict[str, int] = {}
        self._prefixes: dict[str, bytes] = {}
        self._followers: list[ConsoleFollower] = []
        self._rotation: _FileRotation | None = None
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

    def follow(self, follower: ConsoleFollower) -> None:
        """Feed ``follower`` every chunk written from now on (until :meth:`unfollow` or close)."""
        with self._lock:
            self._followers.append(follower)

    def unfollow(self, follower: ConsoleFollower) -> None:
        with self._lock:
            if follower in self._followers:
                self._followers.remove(follower)
        follower.close()

    def rotate_file(self, path: Path, max_bytes: int, backups: int) -> bool:
        """Rotate by size when this console writes to the file ``path`` (``up -d``).

        Only when the console's stream is that very file (same device and inode), so a
        console on a terminal, a pipe or another file is left alone. Whether it applies.
        """
        try:
            fd = self._stream.fileno()
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except (OSError, ValueError, AttributeError):
            return False
        if same:
            with self._lock:
                self._rotation = _FileRotation(fd, path, max_bytes, backups)
        return same

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

    def write_lines(self, name: str, data: bytes, level: str = "info", at: float | None = None) -> None:
        """Queue whole lines of ``name``'s output, read at ``at`` (now if None); never blocks."""
        with self._lock:
            self._frozen = self._named
            if self._queued + len(data) > CONSOLE_QUEUE_BYTES:
                self._dropped[name] = self._dropped.get(name, 0) + data.count(b"\n")
                return
            self._queued += len(data)
        self._queue.put((name, data, level, at))

    def supervisor_line(self, text: str, level: str = "info") -> None:
        """One line of the supervisor's own (``level`` colours it: warning, error, alert)."""
        self.write_lines(SUPERVISOR, text.rstrip("\n").encode() + b"\n", level)

    def _now(self) -> bytes:
        return self._clock_of(self._clock())

    @staticmethod
    def _clock_of(moment: float) -> bytes:
        return time.strftime("%H:%M:%S ", time.localtime(moment)).encode()

    def _format(self, name: str, data: bytes, level: str, at: float | None) -> bytes:
        """Every line of ``data`` behind the local time it was read and the service's prefix.

        One ``replace`` in C for the whole chunk (the lines of one read share their time): a
        per-line loop here cost 200 ms of the GIL per 200,000 lines and slowed the pump.
        """
        head = (self._now() if at is None else self._clock_of(at)) + self._prefix(name, level)
        return head + data[:-1].replace(b"\n", b"\n" + head) + b"\n"

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            name, data, level, at = item
            out = self._format(name, data, level, at)
            with self._lock:
                self._queued -= len(data)
                dropped, self._dropped = self._dropped, {}
                followers, rotation = list(self._followers), self._rotation
            for source, count in dropped.items():
                notice = f"{count} lines of {source} not shown: the console is too slow; see logs/{source}.log\n"
                out += self._now() + self._prefix(SUPERVISOR, "warning") + notice.encode()
            for follower in followers:  # before the stream: a stuck terminal must not starve them
                follower.feed(out)
            with contextlib.suppress(OSError, ValueError):
                self._stream.write(out)
                self._stream.flush()
                if rotation is not None:
                    rotation.check()

    def close(self) -> None:
        """Write what is queued, then stop the thread; followers see the end."""
        self._queue.put(None)
        self._thread.join(timeout=5)
        with self._lock:
            followers, self._followers = self._followers, []
        for follower in followers:
            follower.close()
