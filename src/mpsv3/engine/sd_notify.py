"""The systemd notify protocol, spoken by ``up`` itself when systemd runs it (``Type=notify``).

Why here: under a unit, systemd knows a stack is up only when told, and restarts a wedged
one only if it stops hearing from it. The supervisor is the one that knows both, so it says
them on ``$NOTIFY_SOCKET`` (``sd_notify(3)``: one datagram of ``KEY=VALUE`` lines):

- ``READY=1`` once every service ``up`` started is ready or completed (the ``stack_ready``
  event), with a ``STATUS=`` line;
- ``STATUS=`` on every change: ``6/7 ready; ws_api: backoff 4 s`` (what ``systemctl status``
  shows);
- ``WATCHDOG=1`` at half of ``$WATCHDOG_USEC``, from a timer of the event loop, so a wedged
  loop stops the pings and systemd's ``WatchdogSec=`` acts;
- ``RELOADING=1`` (with ``MONOTONIC_USEC=``) when a reload is accepted, and ``READY=1`` once
  every wanted service runs the new config and is ready again (at once when the reload was
  rejected: nothing changed);
- ``STOPPING=1`` when the stack begins to stop (``shutdown_started``; ``shutdown`` at the
  latest).

The messages come from the supervisor's process, a child of the unit's main process (the
keeper): the unit needs ``NotifyAccess=all``. The supervisor strips ``NOTIFY_SOCKET`` from
what its services inherit. Owned by the stack's chores; everything runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Entry", "NotifyReporter", "SystemdNotifier", "from_environment", "status_text", "watchdog_interval"]

#: How many services that are not ready a ``STATUS=`` line names; the rest are counted.
STATUS_NAMES = 3
#: Which not-ready states a ``STATUS=`` line names first.
_RANK = {"quarantined": 0, "backoff": 1, "unhealthy": 2, "exited": 3, "stopping": 4, "starting": 5, "pending": 6}
READY_STATES = frozenset({"ready", "unhealthy", "completed"})
#: How often a reload that has not settled is looked at again without an event.
RELOAD_RECHECK_S = 0.5


@dataclass(frozen=True)
class Entry:
    """One service ``up`` started, as a ``STATUS=`` line sees it."""

    id: str
    state: str
    retry_in_s: float | None = None

    @property
    def ready(self) -> bool:
        return self.state in READY_STATES


def status_text(entries: Sequence[Entry]) -> str:
    """``6/7 ready; ws_api: backoff 4 s`` (pure)."""
    waiting = sorted((e for e in entries if not e.ready), key=lambda e: (_RANK.get(e.state, 9), e.id))
    parts = [f"{len(entries) - len(waiting)}/{len(entries)} ready"]
    for entry in waiting[:STATUS_NAMES]:
        detail = entry.state
        if entry.state == "backoff" and entry.retry_in_s is not None:
            detail = f"backoff {entry.retry_in_s:.0f} s"
        parts.append(f"{entry.id}: {detail}")
    if len(waiting) > STATUS_NAMES:
        parts.append(f"{len(waiting) - STATUS_NAMES} more not ready")
    return "; ".join(parts)


def watchdog_interval(environ: Mapping[str, str], pids: Sequence[int]) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None for none.

    ``WATCHDOG_PID``, when set, must be one of ``pids`` (this process, or the keeper that
    systemd sees as the unit's main process), as ``sd_watchdog_enabled(3)`` requires.
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    watched = environ.get("WATCHDOG_PID")
    if watched:
        try:
            if int(watched) not in pids:
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000


class SystemdNotifier:
    """A datagram socket that sends notify messages to ``address`` (``$NOTIFY_SOCKET``).

    An address starting with ``@`` is in the abstract namespace. Sending never blocks and
    never raises: a manager that went away must not disturb the supervisor (``failures``
    counts what was lost).
    """

    def __init__(self, address: str) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.failures = 0
        self._sock: socket.socket | None = None
        if hasattr(socket, "AF_UNIX"):
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    def send(self, *lines: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode("utf-8"), self.address)
        except OSError:
            self.failures += 1
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class NotifyReporter:
    """Turns the bus's events into notify messages (see the module docstring).

    Args:
        notifier: where the messages go.
        entries: the services ``up`` started, now (for ``STATUS=``).
        settled: every wanted service runs the current config and is ready (ends a reload).
        watchdog_s: seconds between ``WATCHDOG=1`` pings, or None.
    """

    def __init__(
        self,
        notifier: SystemdNotifier,
        *,
        entries: Callable[[], Sequence[Entry]],
        settled: Callable[[], bool],
        watchdog_s: float | None,
    ) -> None:
        self._notifier = notifier
        self._entries = entries
        self._settled = settled
        self._watchdog_s = watchdog_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._recheck: asyncio.TimerHandle | None = None
        self._status_due = False
        self._last_status = ""
        self._ready = False
        self._reloading = False
        self._stopping = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin the watchdog pings (the first one at once) and the first ``STATUS=``."""
        self._loop = loop
        if self._watchdog_s is not None:
            self._ping()
        self._status_soon()

    def _ping(self) -> None:
        assert self._loop is not None and self._watchdog_s is not None
        self._notifier.send("WATCHDOG=1")
        self._timer = self._loop.call_later(self._watchdog_s, self._ping)

    def on_event(self, event: dict[str, Any]) -> None:
        """A bus subscriber: every event may change what systemd is told."""
        name = event["event"]
        if name == "stack_ready" and not self._ready:
            self._ready = True
            self._notifier.send("READY=1", f"STATUS={self._status()}")
            return
        if name == "config_reloaded":
            self._reloading = True
            self._notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        elif name == "config_rejected":
            self._notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
            self._notifier.send("READY=1", "STATUS=reload rejected, nothing changed: " + self._status())
            return
        elif name in ("shutdown_started", "shutdown"):
            self.stopping()
            return
        self._status_soon()

    def stopping(self) -> None:
        """``STOPPING=1``, once: the stack is being stopped."""
        if not self._stopping:
            self._stopping = True
            self._notifier.send("STOPPING=1", "STATUS=stopping")

    def _status_soon(self) -> None:
        """One ``STATUS=`` per loop turn at most, however many events came in it."""
        if self._status_due or self._loop is None or self._stopping:
            return
        self._status_due = True
        self._loop.call_soon(self._send_status)

    def _send_status(self) -> None:
        self._status_due = False
        if self._stopping:
            return
        if self._reloading:
            if self._settled():
                self._reloading = False
                self._notifier.send("READY=1", f"STATUS={self._status()}")
                return
            self._recheck_later()
        text = status_text(self._entries())
        if text != self._last_status:
            self._last_status = text
            self._notifier.send(f"STATUS={text}")

    def _recheck_later(self) -> None:
        """While a reload settles: look again soon, even if no event comes (a change of
        probes only applies without one)."""
        if self._recheck is None and self._loop is not None:
            self._recheck = self._loop.call_later(RELOAD_RECHECK_S, self._rechecked)

    def _rechecked(self) -> None:
        self._recheck = None
        self._status_soon()

    def _status(self) -> str:
        self._last_status = status_text(self._entries())
        return self._last_status

    def close(self) -> None:
        for timer in (self._timer, self._recheck):
            if timer is not None:
                timer.cancel()
        self._timer = self._recheck = None
        self._notifier.close()


def from_environment(
    environ: Mapping[str, str],
    *,
    pids: Sequence[int],
    entries: Callable[[], Sequence[Entry]],
    settled: Callable[[], bool],
) -> NotifyReporter | None:
    """A reporter when ``NOTIFY_SOCKET`` is set (we run under systemd), else None."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    with contextlib.suppress(OSError):
        notifier = SystemdNotifier(address)
        return NotifyReporter(
            notifier, entries=entries, settled=settled, watchdog_s=watchdog_interval(environ, pids)
        )
    return None
