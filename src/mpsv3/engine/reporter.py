"""The supervisor's own human log: events turned into one readable line each.

Why separate from the event bus: ``events.jsonl`` is for machines; an operator reading
``logs/mpsv3.log`` or the console wants ``ws_api: ready after 412 ms``. Subscribed to the bus
by the supervisor; writes the file synchronously (small, line-buffered) and the console
through its queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from mpsv3.engine.console import Console

QUIET_EVENTS = frozenset({"probe_passed"})


def describe(event: dict[str, Any]) -> str | None:
    """One human line for an event, or None for events not worth a line."""
    name = event["event"]
    if name in QUIET_EVENTS:
        return None
    fields = {k: v for k, v in event.items() if k not in ("ts", "service", "event", "level")}
    if name == "state":
        text = f"{fields['from']} -> {fields['to']}"
        if fields.get("reason"):
            text += f" ({fields['reason']})"
    elif name == "spawned":
        text = f"spawned pid {fields['pid']}"
    elif name == "ready":
        text = f"ready after {fields['after_ms']:.0f} ms"
    elif name == "exited":
        text = f"pid {fields['pid']} exited: " + (
            f"code {fields['code']}" if fields.get("code") is not None else f"signal {fields.get('signal')}"
        )
    elif name == "backoff":
        text = f"restart in {fields['delay_s']:g}s (failure {fields['attempt']}: {fields.get('reason')})"
    else:
        detail = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        text = f"{name} {detail}".rstrip()
    level = event.get("level", "info")
    if level != "info":
        text = f"{level.upper()}: {text}"
    service = event.get("service")
    return f"{service}: {text}" if service else text


class Reporter:
    def __init__(self, path: Path, console: Console | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Flushed together with events.jsonl: the bus calls ``flush`` once per loop turn.
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._console = console

    def on_event(self, event: dict[str, Any]) -> None:
        line = describe(event)
        if line is None:
            return
        self._file.write(f"{event['ts']} {line}\n")
        if self._console is not None:
            self._console.supervisor_line(line)

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        self._file.close()
