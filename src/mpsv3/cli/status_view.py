"""The human view of ``mpsv3 status``: the status JSON as a plain-text table that fits.

Why pure and plain: the supervisor's status reply (the contract's JSON) is the one source;
this module only formats it for a given ``now`` and width, so it is unit-tested without a
supervisor, a terminal or a clock. It imports neither rich nor click: ``status`` is the
command an operator runs most, and its start-up time is mostly imports. The UI
(``mpsv3.ui``) builds its rows from the same cells (:func:`service_cells`).

Fitting a width: no header is ever cut and no cell ever wraps. Headers get shorter, columns
of least use are dropped (the next restart is then folded into the reason), and the reason
column takes whatever is left, cut with ``…``. ``wide`` shows every column, nothing cut.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "COLUMNS",
    "STATE_COLOURS",
    "Column",
    "describe_exit",
    "format_bytes",
    "format_percent",
    "human_duration",
    "output_width",
    "parse_timestamp",
    "render_status",
    "service_cells",
    "state_counts",
]

#: ANSI SGR codes per state: green when serving, red only when it needs an operator.
STATE_COLOURS: Mapping[str, str] = {
    "pending": "2",
    "starting": "33",
    "ready": "1;32",
    "completed": "32",
    "unhealthy": "1;33",
    "backoff": "35",
    "quarantined": "1;31",
    "stopping": "33",
    "stopped": "2",
    "exited": "2",
}

NONE = "-"
_LIVE = frozenset({"ready", "unhealthy"})
_GAP = "  "
_REASON_MIN = 12
_DEFAULT_WIDTH = 80


@dataclass(frozen=True)
class Column:
    """One column: its cell key, header (long and short form), alignment, and use.

    ``drop`` orders what goes first when the table does not fit (1 first); 0 never goes.
    ``wide`` columns appear only with ``--wide``.
    """

    key: str
    header: str
    short: str
    right: bool = False
    drop: int = 0
    wide: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("service", "SERVICE", "SERVICE"),
    Column("kind", "KIND", "KIND", wide=True),
    Column("state", "STATE", "STATE"),
    Column("pid", "PID", "PID", right=True, drop=3),
    Column("pgid", "PGID", "PGID", right=True, wide=True),
    Column("uptime", "UPTIME", "UP", right=True, drop=2),
    Column("restarts", "RESTARTS", "RST", right=True, drop=6),
    Column("failures", "FAILURES", "FAIL", right=True, wide=True),
    Column("cpu", "CPU", "CPU", right=True, drop=4),
    Column("mem", "MEM", "MEM", right=True, drop=5),
    Column("last_exit", "LAST EXIT", "LAST EXIT", wide=True),
    Column("next", "NEXT RESTART", "NEXT", right=True, drop=1),
    Column("reason", "REASON", "REASON"),
)


# ------------------------------------------------------------------------------ formats


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


def format_percent(value: Any) -> str:
    """``0.3%``, ``12%``, ``250%`` (several cores); ``-`` when absent."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        return NONE
    return f"{value:.1f}%" if value < 10 else f"{value:.0f}%"


def format_bytes(value: Any) -> str:
    """A memory size in 5 characters at most: ``812K``, ``45.1M``, ``512M``, ``1.2G``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return NONE
    size = float(value)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1000 or unit == "T":
            return f"{size:.1f}{unit}" if size < 100 and unit not in ("B", "K") else f"{size:.0f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


def describe_exit(last_exit: Mapping[str, Any] | None, now: float) -> str:
    """``exit 1, 12s ago`` / ``SIGKILL, 3m05s ago`` / ``-``."""
    if not last_exit:
        return NONE
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
    return NONE


def _number(value: Any) -> str:
    return NONE if value is None else str(value)


def service_cells(service: Mapping[str, Any], now: float) -> dict[str, str]:
    """Every column's text for one service of the status document (absent keys: ``-``)."""
    next_in = service.get("next_restart_in_s")
    return {
        "service": str(service.get("id", "?")),
        "kind": str(service.get("kind") or NONE),
        "state": str(service.get("state", "?")),
        "pid": _number(service.get("pid")),
        "pgid": _number(service.get("pgid")),
        "uptime": _uptime(service, now),
        "restarts": str(service.get("restarts", 0)),
        "failures": str(service.get("failures") or 0),
        "cpu": format_percent(service.get("cpu_percent")),
        "mem": format_bytes(service.get("rss_bytes")),
        "last_exit": describe_exit(service.get("last_exit"), now),
        "next": human_duration(float(next_in)) if next_in is not None else NONE,
        "reason": " ".join(str(service.get("reason") or "").split()),
    }


def state_counts(services: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many services are in each state, in order of first appearance."""
    counts: dict[str, int] = {}
    for service in services:
        state = str(service.get("state", "?"))
        counts[state] = counts.get(state, 0) + 1
    return counts


def output_width(stream: Any, environ: Mapping[str, str] = os.environ) -> int:
    """The width to render for: ``$COLUMNS``, else the terminal's, else 80 (a pipe)."""
    columns = environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns or _DEFAULT_WIDTH
    except (AttributeError, OSError, ValueError):
        pass
    return _DEFAULT_WIDTH


# -------------------------------------------------------------------------------- table


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…" if width > 0 else ""


def _fold_next(cells: dict[str, str]) -> dict[str, str]:
    """The reason of a service waiting to restart, when the NEXT column is not shown."""
    if cells["next"] == NONE:
        return cells
    reason = f"restart in {cells['next']}"
    return {**cells, "reason": f"{reason}: {cells['reason']}" if cells["reason"] else reason}


def _choose(rows: list[dict[str, str]], width: int) -> tuple[list[Column], bool]:
    """The narrow columns that fit ``width`` with room for the reason, and whether short.

    Long headers first, then short headers, then columns dropped by their ``drop`` order
    (columns with nothing but ``-`` first).
    """
    columns = [c for c in COLUMNS if not c.wide]
    reason_need = min(_REASON_MIN, max((len(r["reason"]) for r in rows), default=0))

    def fixed(cols: list[Column], short: bool) -> int:
        widths = [_natural(c, rows, short) for c in cols if c.key != "reason"]
        return sum(widths) + len(_GAP) * len(widths)

    def fits(cols: list[Column], short: bool) -> bool:
        return fixed(cols, short) + max(len("REASON"), reason_need) <= width

    if fits(columns, False):
        return columns, False
    empty = {c.key for c in columns if all(r[c.key] == NONE for r in rows)}
    droppable = sorted((c for c in columns if c.drop), key=lambda c: (c.key not in empty, c.drop))
    while droppable and not fits(columns, True):
        columns.remove(droppable.pop(0))
    return columns, True


def _natural(column: Column, rows: list[dict[str, str]], short: bool) -> int:
    header = column.short if short else column.header
    return max([len(header), *(len(r[column.key]) for r in rows)])


def _paint(text: str, code: str | None, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def _line(
    columns: list[Column], widths: list[int], cells: list[str], colours: list[str | None], colour: bool
) -> str:
    parts = []
    for column, size, text, code in zip(columns, widths, cells, colours, strict=True):
        padded = text.rjust(size) if column.right else text.ljust(size)
        if column is columns[-1]:
            padded = padded.rstrip()
        parts.append(_paint(padded, code, colour))
    return _GAP.join(parts).rstrip()


def _title(status: Mapping[str, Any], now: float, width: int) -> str:
    """``name  pid 4242  up 2h10m  5 ready, 1 backoff  cpu 0.4%  mem 38.2M``, as fits."""
    supervisor = status.get("supervisor") or {}
    parts = [str(supervisor.get("name", "?")), f"pid {supervisor.get('pid', '?')}"]
    started = supervisor.get("started_at")
    if isinstance(started, str):
        parts.append(f"up {human_duration(now - parse_timestamp(started))}")
    counts = state_counts(status.get("services") or [])
    parts.append(", ".join(f"{n} {state}" for state, n in counts.items()) or "no services")
    cpu, mem = format_percent(supervisor.get("cpu_percent")), format_bytes(supervisor.get("rss_bytes"))
    parts += [f"{label} {value}" for label, value in (("cpu", cpu), ("mem", mem)) if value != NONE]
    if supervisor.get("config"):
        parts.append(f"{supervisor['config']} (mpsv3 {supervisor.get('version', '?')})")
    title = parts[0]
    for part in parts[1:]:
        if len(title) + len(_GAP) + len(part) > width:
            break
        title += _GAP + part
    return title


def render_status(
    status: Mapping[str, Any],
    now: float,
    *,
    width: int = _DEFAULT_WIDTH,
    wide: bool = False,
    colour: bool = False,
) -> str:
    """The status reply as a plain-text table, one row per service, in the supervisor's order.

    Args:
        status: the ``result`` of a ``status`` request (the contract's JSON).
        now: wall-clock seconds since the epoch, for uptimes and "ago".
        width: the columns to fit (ignored by ``wide``, which shows everything).
        wide: every column, long headers, the reason uncut.
        colour: ANSI colours for the states and a bold header.

    Returns:
        The lines, each ending with a newline.
    """
    rows = [service_cells(s, now) for s in status.get("services") or []]
    if wide:
        columns, short = list(COLUMNS), False
    else:
        columns, short = _choose(rows, width)
        if not any(c.key == "next" for c in columns):
            rows = [_fold_next(r) for r in rows]
    widths = [_natural(c, rows, short) for c in columns]
    if not wide:
        used = sum(widths[:-1]) + len(_GAP) * (len(widths) - 1)
        widths[-1] = max(len("REASON"), width - used)
    headers = [c.short if short else c.header for c in columns]
    lines = [_title(status, now, width if not wide else 1 << 16)]
    lines.append(_line(columns, widths, headers, ["1"] * len(columns), colour))
    for row in rows:
        cells = [row[c.key] for c in columns]
        cells[-1] = cells[-1] if wide else _cut(cells[-1], widths[-1])
        codes: list[str | None] = [STATE_COLOURS.get(row["state"]) if c.key == "state" else None for c in columns]
        lines.append(_line(columns, widths, cells, codes, colour))
    if not rows:
        lines.append("(no services)")
    return "".join(f"{line}\n" for line in lines)
