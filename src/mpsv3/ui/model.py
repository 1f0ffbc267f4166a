"""What the UI shows and sends, as pure functions of the status document.

Why apart from the app: the screen is a view of the same status document as
``status --json`` (one source of truth), and every decision about it (which rows a filter
keeps, what the header says, which id a scale acts on, how a reply reads) is testable
without a terminal or a supervisor. The cells come from :func:`mpsv3.cli.status_view.service_cells`,
so the UI and ``status`` never disagree on a figure.
"""

from __future__ import annotations

import signal as signal_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mpsv3.cli.status_view import (
    NONE,
    format_bytes,
    format_percent,
    human_duration,
    parse_timestamp,
    service_cells,
    state_counts,
)

__all__ = [
    "TABLE_COLUMNS",
    "Row",
    "detail_line",
    "matches",
    "parse_signal",
    "reply_text",
    "scale_target",
    "summary_line",
    "table_rows",
]

#: The table's columns: CPU and memory right after the state, so that they stay on screen
#: at 80 columns (the reason of the selected service is also on the line under the table).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("service", "SERVICE"),
    ("state", "STATE"),
    ("cpu", "CPU"),
    ("mem", "MEM"),
    ("pid", "PID"),
    ("uptime", "UPTIME"),
    ("restarts", "RESTARTS"),
    ("next", "NEXT"),
    ("reason", "REASON"),
)


@dataclass(frozen=True)
class Row:
    """One service as the table shows it: its id and every column's text."""

    id: str
    cells: Mapping[str, str]


def matches(cells: Mapping[str, str], query: str) -> bool:
    """Whether a service passes the filter: every word is in its id, its state or its reason.

    ``state:backoff`` (or ``s:back``) matches the state only; an empty query matches all.
    """
    for word in query.lower().split():
        key, _, value = word.partition(":")
        if value and key in ("state", "s"):
            if not cells["state"].startswith(value):
                return False
        elif not any(word in cells[k].lower() for k in ("service", "state", "reason")):
            return False
    return True


def table_rows(status: Mapping[str, Any], now: float, query: str = "") -> list[Row]:
    """The services that pass ``query``, in the supervisor's order."""
    rows = []
    for service in status.get("services") or []:
        cells = service_cells(service, now)
        if matches(cells, query):
            rows.append(Row(cells["service"], cells))
    return rows


def summary_line(status: Mapping[str, Any], now: float) -> str:
    """``mind · pid 4242 · up 2h10m │ 5 ready · 1 backoff │ cpu 0.4% · mem 38.2M``."""
    supervisor = status.get("supervisor") or {}
    parts = [str(supervisor.get("name", "?")), f"pid {supervisor.get('pid', '?')}"]
    started = supervisor.get("started_at")
    if isinstance(started, str):
        parts.append(f"up {human_duration(now - parse_timestamp(started))}")
    services = status.get("services") or []
    counts = " · ".join(f"{n} {state}" for state, n in state_counts(services).items())
    figures = (
        f"cpu {format_percent(supervisor.get('cpu_percent'))}"
        f" · mem {format_bytes(supervisor.get('rss_bytes'))}"
    )
    return " │ ".join([" · ".join(parts), counts or "no services", figures])


def detail_line(service: Mapping[str, Any] | None, now: float) -> str:
    """Everything about the selected service, the reason first (the table may hide it)."""
    if service is None:
        return "no service selected"
    cells = service_cells(service, now)
    parts = [cells["service"], cells["state"]]
    if cells["next"] != NONE:
        parts.append(f"restart in {cells['next']}")
    if cells["reason"]:
        parts.append(cells["reason"])
    if service.get("enabled") is False:
        parts.append("disabled")
    if cells["kind"] != NONE:
        parts.append(cells["kind"])
    if cells["pid"] != NONE:
        parts.append(f"pid {cells['pid']} (group {cells['pgid']})")
    parts.append(f"restarts {cells['restarts']}, failures {cells['failures']}")
    if cells["last_exit"] != NONE:
        parts.append(f"last: {cells['last_exit']}")
    return " · ".join(parts)


def scale_target(status: Mapping[str, Any], sid: str) -> tuple[str, int]:
    """The id a scale request names for ``sid`` and its replicas now.

    A replica ``worker-3`` (``replica: 3``) belongs to ``worker``; a service without replicas
    scales itself, from 1.
    """
    services = status.get("services") or []
    this = next((s for s in services if s.get("id") == sid), None)
    replica = this.get("replica") if this is not None else None
    if not isinstance(replica, int) or not sid.endswith(f"-{replica}"):
        return sid, 1
    base = sid[: -len(f"-{replica}")]
    count = sum(
        1
        for s in services
        if isinstance(s.get("replica"), int) and s.get("id") == f"{base}-{s['replica']}"
    )
    return base, max(1, count)


def parse_signal(text: str) -> tuple[str | None, str | None]:
    """``hup``, ``SIGHUP``, ``1`` -> (``SIGHUP``, None); nonsense -> (None, the error).

    Known names are those of this platform; the supervisor checks again on its side.
    """
    word = text.strip().upper()
    if not word:
        return None, "no signal given"
    if word.isdigit():
        try:
            return signal_module.Signals(int(word)).name, None
        except ValueError:
            return None, f"no signal number {word} here"
    name = word if word.startswith("SIG") else f"SIG{word}"
    if name in signal_module.Signals.__members__:
        return name, None
    return None, f"unknown signal {text.strip()!r}"


def reply_text(what: str, reply: Mapping[str, Any]) -> tuple[str, bool]:
    """How a control reply reads in the message line, and whether it is an error."""
    if not reply.get("ok"):
        return f"{what}: {reply.get('error') or 'refused'}", True
    result = reply.get("result")
    if isinstance(result, Mapping) and isinstance(result.get("message"), str):
        return str(result["message"]), False
    if isinstance(result, str):
        return result, False
    return f"{what}: done", False


def services_by_id(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(s.get("id")): s for s in status.get("services") or []}


def ids_of(status: Mapping[str, Any]) -> Sequence[str]:
    return [str(s.get("id")) for s in status.get("services") or []]
