"""What each control request does to the running supervisor.

Why apart from the transport: ``control/`` knows sockets and framing; this module knows the
verbs (status, start, stop, restart, release, signal, scale, reload, down) and their rules:
an unknown id lists the valid ones; ``start`` brings up stopped dependencies first;
``restart`` of a replicated service rolls, one replica at a time, each waiting for the new
one to be ready; ``release`` of a service that is not quarantined is an error; ``reload``
with a bad config changes nothing. It sees the supervisor only through :class:`Stack`.
Runs on the supervisor's loop.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from mpsv3.engine.events import EventBus
from mpsv3.engine.runner import ServiceRunner
from mpsv3.errors import ConfigInvalid
from mpsv3.plan import StackPlan
from mpsv3.policy.graph import DependencyGraph
from mpsv3.policy.states import RESTING, State

SERVICE_VERBS = ("start", "stop", "restart", "release", "signal", "scale")


class Stack(Protocol):
    """What the verbs need of the supervisor."""

    @property
    def plan(self) -> StackPlan: ...
    @property
    def runners(self) -> Mapping[str, ServiceRunner]: ...
    @property
    def graph(self) -> DependencyGraph: ...
    @property
    def bus(self) -> EventBus | None: ...
    async def snapshot(self) -> dict[str, Any]: ...
    def reload_config(self, replicas: dict[str, int] | None = None) -> dict[str, list[str]]: ...
    @property
    def up_pid(self) -> int: ...
    def request_shutdown(self) -> None: ...
    def background(self, chore: Coroutine[Any, Any, None]) -> None: ...
    def roll(self, template: str, ids: list[str], reason: str) -> bool: ...
    async def wait_for(self, condition: Callable[[], bool]) -> None: ...


class VerbError(Exception):
    """A refused request; the message goes back to the client."""


def _ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


async def dispatch(stack: Stack, request: dict[str, Any]) -> dict[str, Any]:
    verb = str(request.get("cmd"))
    try:
        if verb == "status":
            return _ok(await stack.snapshot())
        if verb in SERVICE_VERBS:
            return _ok({"message": _service_verb(stack, verb, request)})
        if verb == "reload":
            return _ok(_reload(stack))
        if verb == "down":
            stack.request_shutdown()
            return _ok({"message": "stopping all services, then the supervisor", "pid": stack.up_pid})
    except VerbError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"unknown command {verb!r} (valid: status, {', '.join(SERVICE_VERBS)}, reload, down)"}


def _reload(stack: Stack, replicas: dict[str, int] | None = None) -> dict[str, list[str]]:
    assert stack.bus is not None
    try:
        applied = stack.reload_config(replicas)
    except ConfigInvalid as exc:
        lines = [str(e) for e in exc.errors]
        stack.bus.emit("config_rejected", errors=lines, level="warning")
        raise VerbError("the new config is invalid; nothing was changed:\n" + "\n".join(lines)) from None
    stack.bus.emit("config_reloaded", None, **applied)
    return applied


def targets(stack: Stack, sid: Any) -> list[str]:
    """The services an id names: itself, or every replica of a replicated service."""
    if isinstance(sid, str) and sid in stack.runners:
        return [sid]
    members = stack.plan.members()
    if isinstance(sid, str) and sid in members:
        return [m for m in members[sid] if m in stack.runners]
    valid = ", ".join(dict.fromkeys([*members, *stack.runners])) or "none"
    raise VerbError(f"unknown service {sid!r} (valid: {valid})")


def _service_verb(stack: Stack, verb: str, request: dict[str, Any]) -> str:
    sid = request.get("id")
    if verb == "scale":
        return _scale(stack, sid, request.get("replicas"))
    ids = targets(stack, sid)
    if verb == "signal":
        return _signal(stack, ids, request.get("signal"), bool(request.get("group")))
    if verb == "stop":
        return _stop(stack, ids)
    if verb == "release":
        down = [i for i in ids if stack.runners[i].state is not State.QUARANTINED]
        if down == ids:
            states = ", ".join(f"{i} is {stack.runners[i].state.value}" for i in ids)
            raise VerbError(f"nothing to release: {states} (release applies to a quarantined service)")
        ids = [i for i in ids if i not in down]
    if verb == "restart" and all(stack.runners[i].wanted for i in ids):
        return _restart(stack, str(sid), ids)
    return _start(stack, ids)


def _stop(stack: Stack, ids: list[str]) -> str:
    busy = [i for i in ids if stack.runners[i].wanted or stack.runners[i].state not in RESTING]
    if not busy:
        return "; ".join(f"{i} is already {stack.runners[i].state.value}" for i in ids)
    for i in busy:
        stack.runners[i].stop_nowait()
    return f"stopping {', '.join(busy)}"


def _restart(stack: Stack, sid: str, ids: list[str]) -> str:
    if len(ids) == 1:
        stack.runners[ids[0]].restart("manual")
        return f"restarting {ids[0]}"
    if not stack.roll(sid, ids, "manual"):
        return f"{sid} is already restarting, one replica at a time"
    return f"restarting {sid}: {len(ids)} replicas, one at a time"


def _start(stack: Stack, ids: list[str]) -> str:
    """Start (or release) ``ids``, bringing up what they need first, in order."""
    started = []
    for dep in stack.graph.closure(ids):
        runner = stack.runners.get(dep)
        if runner is None:
            continue
        in_backoff = dep in ids and runner.state is State.BACKOFF
        if not runner.wanted or runner.state is State.QUARANTINED or in_backoff:
            runner.start()
            started.append(dep)
    if not started:
        return "; ".join(f"{i} is already {stack.runners[i].state.value}" for i in ids)
    others = [d for d in started if d not in ids]
    suffix = f" (and its dependencies {', '.join(others)})" if others else ""
    return f"starting {', '.join(d for d in started if d in ids)}{suffix}"


def _signal(stack: Stack, ids: list[str], signame: Any, group: bool) -> str:
    from mpsv3.platform.signals import parse_signal_name

    name = parse_signal_name(signame)
    if name is None:
        raise VerbError(f"unknown signal {signame!r} (use a name such as SIGHUP or USR1)")
    sent = []
    for sid in ids:
        tree = stack.runners[sid].tree
        if tree is not None:
            tree.send_signal(name) if group else tree.signal_leader(name)
            sent.append(sid)
    if not sent:
        raise VerbError(f"{', '.join(ids)}: no process is running")
    where = "the process group of" if group else "the main process of"
    return f"sent {name} to {where} {', '.join(sent)}"


def _scale(stack: Stack, sid: Any, count: Any) -> str:
    members = stack.plan.members()
    if not isinstance(sid, str) or sid not in members:
        raise VerbError(f"unknown service {sid!r} (valid: {', '.join(members)})")
    if not any(stack.plan.service(m).replica is not None for m in members[sid]):
        raise VerbError(f"{sid} has no replicas: key; add one to services.yaml to scale it")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise VerbError(f"scale {sid}: expected a number of replicas >= 1, got {count!r}")
    applied = _reload(stack, {sid: count})
    return f"scaled {sid} to {count} (added: {', '.join(applied['added']) or 'none'}; removed: {', '.join(applied['removed']) or 'none'})"
