"""What each control request does to the running supervisor.

Why apart from the transport: ``control.py`` knows sockets and framing; this module knows
the verbs (status, start, stop, restart, release, reload, down) and their rules (an unknown id
lists the valid ones; ``start`` brings up stopped dependencies first; ``reload`` with a bad
config changes nothing). Runs on the supervisor's loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mpsv3.errors import ConfigInvalid
from mpsv3.policy.states import State

if TYPE_CHECKING:
    from mpsv3.engine.supervisor import Supervisor

SERVICE_VERBS = ("start", "stop", "restart", "release")


def _ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


async def dispatch(sup: Supervisor, request: dict[str, Any]) -> dict[str, Any]:
    verb = request.get("cmd")
    if verb == "status":
        return _ok(sup.status())
    if verb in SERVICE_VERBS:
        sid = request.get("id")
        if not isinstance(sid, str) or sid not in sup.runners:
            valid = ", ".join(sup.runners) or "none"
            return _error(f"unknown service {sid!r} (valid: {valid})")
        return _ok({"message": _service_verb(sup, str(verb), sid)})
    if verb == "reload":
        assert sup.bus is not None
        try:
            applied = sup.reload_config()
        except ConfigInvalid as exc:
            lines = [str(e) for e in exc.errors]
            sup.bus.emit("config_rejected", errors=lines, level="warning")
            return _error("the new config is invalid; nothing was changed:\n" + "\n".join(lines))
        sup.bus.emit("config_reloaded", None, added=applied["added"], removed=applied["removed"], changed=applied["changed"])
        return _ok(applied)
    if verb == "down":
        sup.request_shutdown()
        return _ok({"message": "stopping all services, then the supervisor", "pid": sup.status()["supervisor"]["pid"]})
    return _error(f"unknown command {verb!r} (valid: status, {', '.join(SERVICE_VERBS)}, reload, down)")


def _service_verb(sup: Supervisor, verb: str, sid: str) -> str:
    runner = sup.runners[sid]
    if verb == "stop":
        if not runner.wanted and runner.state in (State.STOPPED, State.EXITED, State.QUARANTINED):
            return f"{sid} is already {runner.state.value}"
        runner.stop_nowait()
        return f"stopping {sid}"
    if verb == "release" and runner.state is not State.QUARANTINED:
        return f"{sid} is not quarantined (state {runner.state.value})"
    if verb == "restart" and runner.wanted:
        runner.restart("manual")
        return f"restarting {sid}"
    # start, release, or restart of a service that is down: bring up what it needs, in order.
    started = []
    for dep in sup.graph.closure([sid]):
        dep_runner = sup.runners.get(dep)
        if dep_runner is not None and not dep_runner.wanted:
            dep_runner.start()
            started.append(dep)
    if not started:
        return f"{sid} is already {runner.state.value}"
    others = [d for d in started if d != sid]
    suffix = f" (and its dependencies {', '.join(others)})" if others else ""
    return f"starting {sid}{suffix}"
