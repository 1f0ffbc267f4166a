"""The supervisor's own trouble: reported once per kind, never a traceback, never fatal.

Why: one unexpected exception anywhere must not end the supervisor (every service would die
with it), and a trouble that repeats a thousand times a second (EMFILE on ``accept``) is one
problem. Every error the engine catches, a task's, a callback's (the event loop's exception
handler) or a library's log record (``mpsv3.*`` loggers), ends here as a
``supervisor_error`` event (``events.jsonl`` and ``logs/mpsv3.log``): the first of a kind at
once, then at most one line a minute with the count. Owned by the supervisor, used on its loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from mpsv3.engine.events import EventBus

#: The least time between two events of the same kind.
EVERY_S = 60.0


class Trouble:
    def __init__(self, bus: EventBus, clock: Callable[[], float] = time.monotonic) -> None:
        self._bus = bus
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (last event, not reported)

    def report(self, kind: str, error: BaseException | str, service: str | None = None) -> None:
        """Record one occurrence of ``kind``; an event when the kind is new or a minute passed."""
        now = self._clock()
        last, pending = self._seen.get(kind, (None, 0))
        if last is not None and now - last < EVERY_S:
            self._seen[kind] = (last, pending + 1)
            return
        self._seen[kind] = (now, 0)
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        fields: dict[str, Any] = {"kind": kind, "error": text, "level": "error"}
        if pending:
            fields["repeated"] = pending
        if isinstance(error, BaseException) and last is None:
            fields["where"] = _where(error)
        self._bus.emit("supervisor_error", service, **fields)

    def subscriber_error(self, subscriber: Callable[..., Any], error: Exception) -> None:
        """``EventBus.on_subscriber_error``: a failing subscriber is reported, the emit goes on."""
        self.report(f"subscriber:{getattr(subscriber, '__qualname__', type(subscriber).__name__)}", error)

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """``loop.set_exception_handler``: a callback's exception is reported, not printed."""
        error = context.get("exception") or context.get("message", "unknown error")
        self.report(f"loop:{type(error).__name__}", error)

    def logging_handler(self) -> logging.Handler:
        """A handler for the ``mpsv3`` logger: warnings of libraries reach the events too."""
        trouble = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                trouble.report(f"log:{record.name}", record.getMessage())

        handler = _Handler(logging.WARNING)
        return handler


def _where(error: BaseException) -> str:
    """The innermost frame of the exception: ``file.py:123 in function``."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
