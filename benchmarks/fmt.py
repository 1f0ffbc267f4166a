"""How numbers look in the tables and the prose: one place, so both agree."""

from __future__ import annotations

from typing import Any


def fmt_s(seconds: float | None) -> str:
    """Seconds for a table cell: ``6.2 ms``, ``273 ms``, ``2.31 s``; ``-`` for no value."""
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def fmt_cpu(seconds: float | None) -> str:
    """CPU seconds as ms; 0 shows as ``< 10 ms``, since the kernel counts CPU in 10 ms ticks."""
    if seconds is None:
        return "-"
    return "< 10 ms" if seconds < 0.005 else f"{seconds * 1000:.0f} ms"


def fmt_mib(count: float | None) -> str:
    """Bytes as MiB with one decimal; ``-`` for no value."""
    return "-" if count is None else f"{count / 1048576:.1f} MiB"


def stop_cell(entry: dict[str, Any] | None) -> str:
    """A stop-all time, or ``> CAP s (K left)`` for a stop that was cut."""
    if entry is None:
        return "-"
    if entry["stop_timeouts"]:
        return f"> {entry['stop_cap_s']:.0f} s ({entry['left_at_timeout']} left)"
    return fmt_s(entry["stop_s"])
