"""The human view of ``mpsv3 status``: the status JSON as a rich table.

Why pure: the supervisor's status reply (the contract's JSON) is the one source; this module
only formats it for a given ``now``, so it is unit-tested without a supervisor, a terminal or a
clock, and ``status --watch`` re-renders the same way every second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from rich import box
from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text

__all__ = ["STATE_STYLES", "describe_exit", "human_duration", "parse_timestamp", "render_status"]

#: How each service state looks: green when serving, red when it needs an operator.
STATE_STYLES: Mapping[str, str] = {
    "pending": "dim",
    "starting": "yellow",
    "ready": "bold green",
    "unhealthy": "bold yellow",
    "backoff": "magenta",
    "quarantined": "bold red",
    "stopping": "yellow",
    "stopped": "dim",
    "exited": "dim",
}

_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("service", "left"),
    ("state", "left"),
    ("pid", "right"),
    ("uptime", "right"),
    ("restarts", "right"),
    ("last exit", "left"),
    ("next restart in", "right"),
    ("reason", "left"),
)
_ONE_LINE = frozenset({"service", "state", "pid"})
_LIVE = frozenset({"ready", "unhealthy"})
_NONE = "-"


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an events.jsonl timestamp (``2026-11-24T17:08:00.123Z``)."""
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=timezone.utc).timestamp()


def human_duration(seconds: float) -> str:
    """A short duration for a column: ``0.4s``, ``42s``, ``3m05s``, ``2h03m``, ``3d04h``."""
    seconds = max(0.0, seconds)
    if seconds < 10:  # truncated like a clock, never rounded up to the next unit
        return f"{math.floor(seconds * 10) / 10:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def describe_exit(last_exit: Mapping[str, Any] | None, now: float) -> str:
    """``exit 1, 12s ago`` / ``SIGKILL, 3m05s ago`` / ``-``."""
    if not last_exit:
        return _NONE
    signal = last_exit.get("signal")
    code = last_exit.get("code")
    what = str(signal) if signal is not None else f"exit {code}" if code is not None else "exited"
    at = last_exit.get("at")
    if isinstance(at, str):
        what += f", {human_duration(now - parse_timestamp(at))} ago"
    return what


def _uptime(service: Mapping[str, Any], now: float) -> str:
    ready_since = service.get("ready_since")
    if service.get("state") in _LIVE and isinstance(ready_since, str):
        return human_duration(now - parse_timestamp(ready_since))
    return _NONE


def _restarts(service: Mapping[str, Any]) -> str:
    text = str(service.get("restarts", 0))
    failures = service.get("failures") or 0
    return f"{text} ({failures} failed)" if failures else text


def _title(supervisor: Mapping[str, Any], now: float) -> str:
    title = f"{supervisor.get('name', '?')}: supervisor PID {supervisor.get('pid', '?')}"
    started = supervisor.get("started_at")
    if isinstance(started, str):
        title += f", up {human_duration(now - parse_timestamp(started))}"
    return title


def render_status(status: Mapping[str, Any], now: float) -> Table:
    """The status reply as a table: one row per service, in the supervisor's order.

    Args:
        status: the ``result`` of a ``status`` request (the contract's JSON).
        now: wall-clock seconds since the epoch, for uptimes and "ago".
    """
    supervisor = status.get("supervisor") or {}
    table = Table(title=_title(supervisor, now), title_justify="left", box=box.SIMPLE_HEAD)
    if supervisor.get("config"):
        table.caption = f"{supervisor['config']} (mpsv3 {supervisor.get('version', '?')})"
        table.caption_justify = "left"
    for header, justify in _COLUMNS:
        # Narrow terminals: every column keeps its natural width, the reason wraps in the rest.
        if header == "reason":
            table.add_column(header, justify=justify, ratio=1, min_width=16)
        else:
            table.add_column(header, justify=justify, no_wrap=header in _ONE_LINE)
    for service in status.get("services") or []:
        state = str(service.get("state", "?"))
        pid = service.get("pid")
        next_in = service.get("next_restart_in_s")
        table.add_row(
            Text(str(service.get("id", "?")), style="bold"),
            Text(state, style=STATE_STYLES.get(state, "")),
            str(pid) if pid is not None else _NONE,
            _uptime(service, now),
            _restarts(service),
            describe_exit(service.get("last_exit"), now),
            human_duration(float(next_in)) if next_in is not None else _NONE,
            str(service.get("reason") or ""),
        )
    return table
