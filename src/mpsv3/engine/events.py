"""The event bus: every transition and decision of the supervisor, as one JSON line each.

Why a bus: status, metrics, the console and the tests all want the same facts, and the
contract makes ``events.jsonl`` the durable record. Producers call ``emit``; subscribers
(metrics, the control server's followers, tests) get the same dict synchronously; a
subscriber's exception is reported, never raised into the emitter (a runner emits in the
middle of its effects: an exception there would drop the effects after it, issue 15). Owned by the
supervisor and used only from its event-loop thread, so it holds no lock.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mpsv3.engine.logfile import RotatingLog

Event = dict[str, Any]
Subscriber = Callable[[Event], None]

#: The vocabulary. Emitting a name not listed here is a bug caught by the tests.
EVENT_NAMES = frozenset(
    {
        "lease_acquired", "legacy_lock_removed", "legacy_lock_kept", "orphan_reclaimed",
        "state", "spawned", "ready", "probe_failed", "probe_passed", "exited", "backoff",
        "quarantined", "alert", "released", "restarting", "reload", "stopping", "stopped",
        "port_conflict", "watcher_started", "watcher_fallback", "config_reloaded",
        "config_rejected", "spawn_failed", "shutdown", "stack_ready", "supervisor_error", "limit_exceeded", "keeper_lost", "shutdown_started", "rollout_halted",
    }
)


def utc_timestamp(now: float) -> str:
    """``2026-11-24T17:08:00.123Z``: the contract's timestamp format.

    The formatted second is remembered: a burst of events in one second (a respawn, a
    cold start of 500 services) formats the date once, not once per event.
    """
    second = int(now)
    millis = int((now - second) * 1000)
    if second != _last_second[0]:
        _last_second[0] = second
        _last_second[1] = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{_last_second[1]}{millis:03d}Z"


_last_second: list[Any] = [None, ""]


class EventBus:
    """Appends events to ``events.jsonl`` and hands them to subscribers.

    The file is written once per loop turn (not once per event) and rotated by size like a
    service log, so a crash loop cannot fill the disk.

    Args:
        path: the ``events.jsonl`` file, or None to keep events in memory only (tests).
        clock: wall clock for the ``ts`` field; injectable for tests.
        max_bytes, backups: rotation of the file (the config's ``logs:`` values).
    """

    def __init__(
        self,
        path: Path | None,
        clock: Callable[[], float] = time.time,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 3,
    ) -> None:
        self._clock = clock
        self._subscribers: list[Subscriber] = []
        self._flush_hooks: list[Callable[[], None]] = []
        self._file: RotatingLog | None = None
        self._pending: list[str] = []
        if path is not None:
            self._file = RotatingLog(path, max_bytes, backups)
        self._flush_scheduled = False
        #: Told of a subscriber's exception (the supervisor reports it as trouble); without
        #: it the exception propagates to the emitter.
        self.on_subscriber_error: Callable[[Subscriber, Exception], None] | None = None

    def emit(self, event: str, service: str | None = None, **fields: Any) -> Event:
        """Record one event; ``level`` defaults to ``info`` (``alert`` for quarantine alerts)."""
        if event not in EVENT_NAMES:
            raise ValueError(f"unknown event name {event!r}")
        record: Event = {"ts": utc_timestamp(self._clock()), "service": service, "event": event}
        record.setdefault("level", "info")
        record.update(fields)
        if self._file is not None:
            self._pending.append(json.dumps(record, default=str) + "\n")
            self._schedule_flush()
        for subscriber in list(self._subscribers):
            try:
                subscriber(record)
            except Exception as error:  # one broken subscriber must not drop the caller's next steps
                if self.on_subscriber_error is None:
                    raise
                self.on_subscriber_error(subscriber, error)
        return record

    def _schedule_flush(self) -> None:
        """Write the file once per turn of the event loop, not once per event."""
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._file is not None and self._pending:
            data = "".join(self._pending).encode("utf-8", "replace")
            self._pending.clear()
            self._file.write(data)
        for hook in self._flush_hooks:
            hook()

    def on_flush(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` whenever the bus flushes (subscribers that buffer their own files)."""
        self._flush_hooks.append(hook)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every later event; returns the unsubscribe function."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber) if subscriber in self._subscribers else None

    def close(self) -> None:
        self.flush()
        self._flush_hooks.clear()  # a flush still scheduled on the loop must not reach them
        if self._file is not None:
            self._file.sync()
            self._file.close()
            self._file = None


def read_events(path: Path) -> list[Event]:
    """Every event of an ``events.jsonl`` (for the CLI and the tests)."""
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
