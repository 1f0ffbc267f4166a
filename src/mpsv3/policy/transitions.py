"""The allowed transitions, derived from the lifecycle by exploring it.

Why derived: a table written by hand is a second copy of the state machine that drifts from
the first. Here every state the lifecycle can reach is explored, from ``stopped``, under every
command an operator or the watcher can send at any moment and every outcome the driver can
report *while the effect that produces it is outstanding* (a ``GatePassed`` only while a gate
runs, a ``TreeStopped`` only while a stop runs...), for a handful of representative services
(with and without gates, a task, each restart policy, a signal-on-change watch). The result is
the set of (from, to) moves; ``docs/architecture.md``'s diagram is drawn from it
(``python -m mpsv3.policy.transitions``), and a test keeps the two equal.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace

from mpsv3.plan import (
    BackoffPlan,
    RestartPlan,
    StopPlan,
    WatchPlan,
)
from mpsv3.policy.lifecycle import Model, step
from mpsv3.policy.messages import (
    ArmBackoff,
    BackoffElapsed,
    CancelBackoff,
    CancelProbes,
    CheckPorts,
    DepsChanged,
    Effect,
    Emit,
    Event,
    Exited,
    FilesChanged,
    GatePassed,
    GateTimedOut,
    LivenessResult,
    MemoryExceeded,
    PortsChecked,
    Restart,
    Spawn,
    Spawned,
    SpawnFailed,
    Start,
    StartGate,
    StartLiveness,
    Stop,
    StopTree,
    TreeStopped,
)
from mpsv3.policy.rules import Rules
from mpsv3.policy.states import State

#: What the driver has been asked to do and has not answered yet.
Outstanding = frozenset[str]

COMMANDS: tuple[Event, ...] = (
    Start(), Stop(), Restart("manual"), FilesChanged(("app.py",)),
    DepsChanged(True), DepsChanged(False, "waiting for db (starting)"), MemoryExceeded("over 1 MiB"),
)
OUTCOMES: dict[str, tuple[Event, ...]] = {
    "ports": (PortsChecked(None), PortsChecked("port 80 is held by PID 1 (x), not ours")),
    "spawn": (Spawned(7, 7, 1), SpawnFailed("cannot start 'x'")),
    "process": (Exited(7, 0, None), Exited(7, 1, None), Exited(7, 99, None), Exited(7, 78, None)),
    "gate": (GatePassed(1.0), GateTimedOut("tcp", "connection refused")),
    "liveness": (LivenessResult(True, "tcp"), LivenessResult(False, "tcp", "connection refused")),
    "stop": (TreeStopped(7, None, "SIGTERM"),),
    "timer": (BackoffElapsed(),),
}


def _rules() -> Iterator[Rules]:
    quick = BackoffPlan(0, 2.0, 0, 0.0)
    slow = BackoffPlan(1000, 2.0, 60000, 0.0)
    stop = StopPlan("SIGTERM", 1.0)
    restart = RestartPlan("on-failure", slow, 3, 60.0)
    watch = WatchPlan(("app.py",), 100, "restart", False, "main")
    gated = dict(has_readiness=True, has_liveness=True, liveness_threshold=2)
    yield Rules(restart=restart, stop=stop, watch=watch, **gated)  # type: ignore[arg-type]
    yield Rules(restart=restart, stop=stop, watch=watch)
    yield Rules(restart=replace(restart, backoff=quick), stop=stop, has_liveness=True, liveness_threshold=1)
    yield Rules(restart=replace(restart, policy="always"), stop=stop)
    yield Rules(restart=replace(restart, policy="never"), stop=stop, has_readiness=True)
    yield Rules(restart=restart, stop=stop, is_task=True, watch=watch)
    yield Rules(restart=restart, stop=stop, watch=replace(watch, on_change="signal:SIGHUP"))


#: The answer each effect is owed: it stays outstanding until that answer arrives.
_AWAITS: dict[type, str] = {
    CheckPorts: "ports", Spawn: "spawn", StartGate: "gate", StartLiveness: "liveness", StopTree: "stop",
    ArmBackoff: "timer",
}
#: What cancelling effects take back.
_CANCELS: dict[type, frozenset[str]] = {
    CancelProbes: frozenset({"gate", "liveness"}), CancelBackoff: frozenset({"timer"}),
}


def _outstanding(before: Outstanding, effects: Iterable[Effect], answered: str | None) -> Outstanding:
    pending = set(before)
    if answered is not None:
        pending.discard(answered)
    for effect in effects:
        kind = type(effect)
        if kind in _AWAITS:
            pending.add(_AWAITS[kind])
        pending -= _CANCELS.get(kind, frozenset())
    return frozenset(pending)


def _key(model: Model, pending: Outstanding, rules: Rules) -> tuple[Model, Outstanding]:
    """What cannot change the moves that follow is left out: counters, reasons, the storm times.

    (The storm guard only turns an exit 99 into a crash, a move the crash rows already make.)
    """
    return replace(
        model, restarts=0, spawns=min(model.spawns, 2), immediate=(), reason=None, detail=None,
        deps_reason="", retry_reason="", failures=min(model.failures, rules.restart.max_retries),
    ), pending


def _successors(model: Model, pending: Outstanding, rules: Rules) -> Iterator[tuple[Model, list[Effect], Outstanding]]:
    for event in COMMANDS:
        new, effects = step(model, event, 0.0, rules)
        yield new, effects, _outstanding(pending, effects, None)
    for source in sorted(pending):
        for event in OUTCOMES[source]:
            new, effects = step(model, event, 0.0, rules)
            if source == "spawn" and isinstance(event, Spawned):
                after = _outstanding(pending | {"process"}, effects, "spawn")
            elif source in ("process", "stop"):
                after = _outstanding(pending - {"process", "stop", "gate", "liveness"}, effects, None)
            else:  # the liveness probe keeps running: its answer does not use it up
                after = _outstanding(pending, effects, None if source == "liveness" else source)
            yield new, effects, after


def explore(rules: Rules, limit: int = 200_000) -> set[tuple[State, State]]:
    """Every (from, to) move the lifecycle makes for a service with ``rules``."""
    start = (Model(), frozenset[str]())
    seen = {_key(*start, rules)}
    queue = deque([start])
    moves: set[tuple[State, State]] = set()
    while queue and len(seen) < limit:
        model, pending = queue.popleft()
        for new, effects, after in _successors(model, pending, rules):
            for effect in effects:
                if isinstance(effect, Emit) and effect.name == "state":
                    moves.add((State(effect.fields["from"]), State(effect.fields["to"])))
            key = _key(new, after, rules)
            if key not in seen:
                seen.add(key)
                queue.append((new, after))
    return moves


def allowed_transitions() -> frozenset[tuple[State, State]]:
    """The union of the moves of every representative service."""
    moves: set[tuple[State, State]] = set()
    for rules in _rules():
        moves |= explore(rules)
    return frozenset(moves)


def mermaid(moves: Iterable[tuple[State, State]]) -> str:
    """A Mermaid ``stateDiagram-v2`` of the moves, in a stable order."""
    order = list(State)
    lines = ["stateDiagram-v2", "    [*] --> stopped"]
    for old, new in sorted(moves, key=lambda m: (order.index(m[0]), order.index(m[1]))):
        lines.append(f"    {old.value} --> {new.value}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(mermaid(allowed_transitions()))
