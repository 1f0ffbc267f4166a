"""The supervisor's own human log: events turned into readable lines.

Why separate from the event bus: ``events.jsonl`` is for machines; an operator reading
``logs/mpsv3.log`` or the console wants ``ws_api: ready after 412 ms``. Two wordings:

- :func:`describe`, every event with its detail: ``logs/mpsv3.log`` always, and the console
  of ``up -v``;
- :class:`ConsoleDigest`, what the console of a plain ``up`` shows: what an operator acts on
  (ready, crashed, backing off, quarantined, a conflict, a reload), the line that says the
  whole stack is ready and where to look, and one line per service on shutdown. The routine
  steps (spawned, state moves, probes passing) stay in the file.

Subscribed to the bus by the supervisor, on its event-loop thread (no lock). The file is a
:class:`RotatingLog` like a service's log, written once per loop turn (on the bus's flush).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mpsv3.engine.console import Console, utc_second
from mpsv3.engine.logfile import RotatingLog

__all__ = ["ConsoleDigest", "Reporter", "describe"]

QUIET_EVENTS = frozenset({"probe_passed"})
_META = ("ts", "service", "event", "level")


def event_seconds(ts: str) -> float | None:
    """Seconds since the epoch of an event's ``ts`` (``2026-11-24T17:08:00.123Z``)."""
    try:
        return utc_second(ts[:19]) + int(ts[20:23]) / 1000
    except (TypeError, ValueError):
        return None


def _duration(seconds: float) -> str:
    """``412 ms``, ``2.3 s``, ``95 s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _exit_text(fields: dict[str, Any]) -> str:
    if fields.get("signal") is not None:
        return str(fields["signal"])
    return f"code {fields.get('code')}"


def _with_level(event: dict[str, Any], text: str) -> str:
    level = event.get("level", "info")
    return text if level == "info" else f"{str(level).upper()}: {text}"


def describe(event: dict[str, Any]) -> str | None:
    """One detailed line for an event (the file's wording), or None for probe passes."""
    name = event["event"]
    if name in QUIET_EVENTS:
        return None
    fields = {k: v for k, v in event.items() if k not in _META}
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
    elif name == "stack_ready":
        text = _stack_ready(fields)
    else:
        detail = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        text = f"{name} {detail}".rstrip()
    text = _with_level(event, text)
    service = event.get("service")
    return f"{service}: {text}" if service else text


def origins(urls: Sequence[Any]) -> list[str]:  # also what `up -d` prints when ready
    """``http://127.0.0.1:3000/`` for ``http://127.0.0.1:3000/healthz``: where to look, once each."""
    seen: list[str] = []
    for url in urls:
        parts = urlsplit(str(url))
        origin = f"{parts.scheme}://{parts.netloc}/" if parts.scheme and parts.netloc else str(url)
        if origin not in seen:
            seen.append(origin)
    return seen


def _stack_ready(fields: dict[str, Any]) -> str:
    """``all 7 services ready in 2.3 s — http://127.0.0.1:3000/ http://127.0.0.1:8000/``."""
    ready, total = fields.get("ready"), fields.get("total")
    noun = "service" if total == 1 else "services"
    count = f"all {total} {noun}" if ready == total else f"{ready} of {total} {noun}"
    text = f"{count} ready in {_duration(float(fields.get('after_ms') or 0) / 1000)}"
    where = origins(fields.get("urls") or [])
    return f"{text} — {' '.join(where)}" if where else text


class ConsoleDigest:
    """The short console wording of a plain ``up``: one line for what matters, None otherwise.

    Remembers, per service, when a stop began and how the process ended, so that a stop is
    one line (``ws_api stopped in 0.2 s (code 0)``) and an exit during a stop is not
    reported as a crash. Pure: no I/O, no clock (times come from the events).
    """

    def __init__(self) -> None:
        self._stopping: dict[str, float | None] = {}
        self._ended: dict[str, str] = {}

    def line(self, event: dict[str, Any]) -> str | None:
        name = str(event["event"])
        service = event.get("service")
        fields = {k: v for k, v in event.items() if k not in _META}
        if service is None:
            text = self._supervisor(name, fields)
        else:
            text = self._service(str(service), name, fields, event.get("ts"))
        if text is None:
            return None
        return _with_level(event, text)

    def _supervisor(self, name: str, fields: dict[str, Any]) -> str | None:
        if name == "lease_acquired":
            return f"instance {fields.get('instance')}, supervisor pid {fields.get('pid')}"
        if name == "stack_ready":
            return _stack_ready(fields)
        if name == "shutdown":
            return "shut down"
        if name == "config_reloaded":
            changes = [f"{k} {', '.join(map(str, fields[k]))}" for k in ("added", "removed", "changed") if fields.get(k)]
            return "config reloaded: " + ("; ".join(changes) if changes else "no changes")
        if name == "config_rejected":
            errors = [str(e) for e in fields.get("errors") or []]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            return f"config rejected, nothing changed: {errors[0] if errors else '?'}{more}"
        if name == "orphan_reclaimed":
            return f"reclaimed pid {fields.get('pid')} ({fields.get('why')})"
        if name in ("legacy_lock_removed", "legacy_lock_kept"):
            verb = "removed" if name == "legacy_lock_removed" else "kept"
            return f"{verb} old lock {fields.get('path')} ({fields.get('reason')})"
        if name == "watcher_fallback":
            return f"file watcher falls back to polling: {fields.get('reason')}"
        return None

    def _service(self, sid: str, name: str, fields: dict[str, Any], ts: Any) -> str | None:
        if name in ("stopping", "exited", "stopped"):
            return self._stop(sid, name, fields, ts)
        if name == "state":
            return self._state(sid, fields)
        simple = {
            "ready": lambda: f"{sid} ready in {_duration(float(fields['after_ms']) / 1000)}",
            "backoff": lambda: f"{sid} restarts in {fields['delay_s']:g} s (failure {fields['attempt']})",
            "quarantined": lambda: f"{sid} quarantined: {fields.get('reason')}; `release {sid}` starts it",
            "released": lambda: f"{sid} released",
            "alert": lambda: f"{sid} alert: {fields.get('reason')}",
            "spawn_failed": lambda: f"{sid} failed to start: {fields.get('reason')}",
            "port_conflict": lambda: f"{sid} cannot start: port {fields.get('port')} is held by PID "
            f"{fields.get('pid')} ({fields.get('cmdline')}), not ours",
            "reload": lambda: self._reload(sid, fields),
        }
        if name in simple:
            return simple[name]()
        if name == "restarting" and fields.get("reason") not in ("crash", "reload"):
            return f"{sid} restarting ({fields.get('reason')})"
        if name == "probe_failed":
            if fields.get("probe") == "readiness":
                return f"{sid} not ready: {fields.get('reason')}"
            return f"{sid} liveness failed ({fields.get('consecutive')}/{fields.get('threshold')}): {fields.get('reason')}"
        return None

    @staticmethod
    def _reload(sid: str, fields: dict[str, Any]) -> str:
        paths = [Path(str(p)).name for p in fields.get("paths") or []]
        count = int(fields.get("count") or len(paths))
        shown = ", ".join(paths[:3]) + (", …" if count > 3 else "")
        action = fields.get("action") or "restart"
        return f"{sid}: {count} file{'s' if count != 1 else ''} changed ({shown}) -> {action}"

    @staticmethod
    def _state(sid: str, fields: dict[str, Any]) -> str | None:
        to, reason = fields.get("to"), fields.get("reason")
        suffix = f": {reason}" if reason else ""
        if to in ("unhealthy", "exited", "completed"):
            return f"{sid} {to}{suffix}"
        if to == "backoff" and str(reason or "").startswith("waiting for a change"):
            return f"{sid} {reason}"  # no backoff event follows: it waits for the next save
        return None

    def _stop(self, sid: str, name: str, fields: dict[str, Any], ts: Any) -> str | None:
        if name == "stopping":
            self._stopping[sid] = event_seconds(ts) if isinstance(ts, str) else None
            return None
        if name == "exited":
            if sid in self._stopping:
                self._ended[sid] = _exit_text(fields)
                return None
            if fields.get("code") == 0:
                return None  # the state line says what follows (exited, completed, restart)
            how = f"killed by {fields['signal']}" if fields.get("signal") is not None else f"exited with code {fields.get('code')}"
            return f"{sid} {how}"
        began = self._stopping.pop(sid, None)
        ended = self._ended.pop(sid, None)
        now = event_seconds(ts) if isinstance(ts, str) else None
        took = f" in {_duration(max(0.0, now - began))}" if began is not None and now is not None else ""
        return f"{sid} stopped{took}" + (f" ({ended})" if ended else "")


class Reporter:
    """Writes every event's line to ``logs/mpsv3.log`` and the short (or full) one to the console.

    Args:
        path: the supervisor's log file; rotated like a service log.
        console: the console of ``up``, or None (``--quiet``, tests).
        max_bytes: rotate the file past this size (the config's ``logs.max_bytes``).
        backups: rotated files kept (``logs.backups``).
        verbose: the console shows every line of the file (``up -v``), not the digest.
    """

    def __init__(
        self,
        path: Path,
        console: Console | None,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 3,
        verbose: bool = False,
    ) -> None:
        self._log = RotatingLog(path, max_bytes, backups)
        self._closed = False
        self._pending: list[str] = []
        self._console = console
        self._verbose = verbose
        self._digest = ConsoleDigest()

    def on_event(self, event: dict[str, Any]) -> None:
        line = describe(event)
        if line is not None:
            self._pending.append(f"{event['ts']} {line}\n")
        if self._console is None:
            return
        shown = line if self._verbose else self._digest.line(event)
        if shown is not None:
            self._console.supervisor_line(shown, str(event.get("level", "info")))

    def flush(self) -> None:
        """Write the lines of this loop turn (the bus calls it once per turn)."""
        if self._pending and not self._closed:
            data = "".join(self._pending).encode("utf-8", "replace")
            self._pending.clear()
            self._log.write(data)

    def close(self) -> None:
        """Write what is left and close the file; later events reach only the console."""
        self.flush()
        self._closed = True
        self._log.close()
