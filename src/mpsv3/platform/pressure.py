"""The supervisor's own resource trouble: the fd limit, exhaustion errors, one line per kind.

Why here: a flood (idle control connections up to the fd limit, garbage, huge payloads) must
neither end the supervisor nor bury its log. ``accept()`` failing with EMFILE a thousand
times a second is one problem, so it is logged once with its kind, then counted, and a
count line follows at most once a minute (:class:`ErrorDigest`). Nothing here does I/O
except through the logger and ``getrlimit``.
"""

from __future__ import annotations

import errno
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

#: errno values that mean "the process or the system is out of something", not "the peer
#: did something wrong": retry later, with a backoff, instead of failing anything.
EXHAUSTION_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

#: Kinds beyond this many share one entry, so a stream of odd errors cannot grow the table.
MAX_KINDS = 64


def is_exhaustion(exc: BaseException) -> bool:
    """True for EMFILE, ENFILE, ENOBUFS and ENOMEM: our own shortage, not the peer's fault."""
    return isinstance(exc, OSError) and exc.errno in EXHAUSTION_ERRNOS


def open_files_limit() -> int | None:
    """The soft limit on open file descriptors, or None when unlimited or unknown."""
    if sys.platform == "win32":
        return None
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    return int(soft)


@dataclass
class _Kind:
    total: int = 0
    unreported: int = 0
    last_line: float = 0.0


class ErrorDigest:
    """Logs the first error of each kind, then only a count, at most once per ``every_s``.

    Args:
        logger: where the lines go (``mpsv3.*`` loggers; the supervisor decides the handler).
        every_s: the least time between two lines of the same kind.
        clock: monotonic seconds; injectable for tests.

    Kinds are short fixed strings chosen by the caller (``accept-EMFILE``, ``idle``), never
    text from a peer. Owned by one object on one event loop; not thread-safe.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._every_s = every_s
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def report(
        self, kind: str, message: str, *, level: int = logging.WARNING, exc_info: bool = False
    ) -> bool:
        """Count one occurrence of ``kind``; log ``message`` if this one is due a line.

        The first occurrence is logged as it is (with the traceback if ``exc_info``); later
        ones are counted, and the next line carries the count since the previous line.

        Returns:
            True if a line was logged.
        """
        if kind not in self._kinds and len(self._kinds) >= MAX_KINDS:
            kind = "other"
        entry = self._kinds.setdefault(kind, _Kind())
        entry.total += 1
        now = self._clock()
        if entry.total == 1:
            entry.last_line = now
            self._logger.log(
                level, "%s (repeats are counted: at most one line a %gs)", message,
                self._every_s, exc_info=exc_info,
            )
            return True
        entry.unreported += 1
        if now - entry.last_line < self._every_s:
            return False
        self._logger.log(
            level, "%s (%d times since the last line)", message, entry.unreported
        )
        entry.unreported = 0
        entry.last_line = now
        return True

    def counts(self) -> dict[str, int]:
        """How often each kind occurred, logged or not."""
        return {kind: entry.total for kind, entry in self._kinds.items()}
