"""A service's lifecycle as one pure function: ``step(model, event, now, rules) -> (model, effects)``.

Why pure: every decision about one service (start now or wait, restart or back off,
quarantine, what a stop or a file change means in each state) is made here, from values, with
no process, timer or socket. The runner (``engine/runner.py``) is a thin driver: it turns
effects into actions (spawn, signal, start a probe, arm a timer) and their outcomes back into
events. Tests replay whole histories as rows of (model, event) -> (model, effects) on a fake
clock.

In the spirit of s6-supervise's state x event table and systemd's ``service_enter_*``: each
event type has one handler (``HANDLERS``), and :func:`enter` is the only place that changes
``Model.state`` (and emits the ``state`` event). The allowed transitions are not written down:
``policy/transitions.py`` derives them from this function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mpsv3.policy import backoff
from mpsv3.policy.backoff import Ending
from mpsv3.policy.messages import (
    BackoffElapsed,
    CancelBackoff,
    CancelProbes,
    DepsChanged,
    Effect,
    Event,
    Exited,
    FilesChanged,
    GatePassed,
    GateTimedOut,
    LivenessResult,
    MemoryExceeded,
    PortsChecked,
    Restart,
    SendSignal,
    Spawn,
    Spawned,
    SpawnFailed,
    Start,
    StartGate,
    Stop,
    TreeStopped,
)
from mpsv3.policy.moves import (
    Ctx,
    Model,
    after_ending,
    become_ready,
    begin_stop,
    enter,
    release,
    request_restart,
    settle_stopped,
    try_start,
)
from mpsv3.policy.rules import Rules
from mpsv3.policy.states import State

__all__ = ["HANDLERS", "Model", "step"]


def step(model: Model, event: Event, now: float, rules: Rules) -> tuple[Model, list[Effect]]:
    """Apply one event to one service's model.

    Args:
        model: the service's model before the event.
        event: what happened (a command, an outcome of an effect, a timer).
        now: a monotonic time in seconds (the same clock for every call).
        rules: the service's settings that the lifecycle decides by.

    Returns:
        The new model and the effects to carry out, in order.
    """
    ctx = Ctx(rules, now, [])
    return HANDLERS[type(event)](model, event, ctx), ctx.out



# --------------------------------------------------------------- commands from outside


def _on_start(m: Model, ev: Start, ctx: Ctx) -> Model:
    if m.state is State.QUARANTINED:
        m = release(m, ctx)
    m = replace(m, wanted=True)
    if m.state is State.COMPLETED:
        m = enter(m, State.PENDING, "starting", ctx)
    if m.state is State.BACKOFF and not m.process:
        ctx.out.append(CancelBackoff())
        ctx.emit("restarting", reason="manual")
        m = replace(m, retry_at=None, waiting_for_change=False)
    return try_start(m, ctx)


def _on_stop(m: Model, ev: Stop, ctx: Ctx) -> Model:
    m = replace(m, wanted=False, restart=None, reload_again=False)
    if m.process:
        return m if m.stopping else begin_stop(m, None, None, ctx)
    if m.launching:
        return m  # PortsChecked / Spawned see that it is no longer wanted
    return settle_stopped(m, ctx)


def _on_restart(m: Model, ev: Restart, ctx: Ctx) -> Model:
    if m.state is State.PENDING and m.wanted and not m.process and not m.launching:
        return m  # it starts as soon as its dependencies allow
    return request_restart(m, ev.reason, ctx)


def _on_files_changed(m: Model, ev: FilesChanged, ctx: Ctx) -> Model:
    watch = ctx.rules.watch
    action = watch.on_change if watch is not None else "none"
    ctx.emit("reload", paths=list(ev.paths[:5]), count=len(ev.paths), action=action)
    if watch is None or action == "none" or not m.wanted:
        return m
    if watch.signal is not None:
        if m.process and not m.stopping:
            ctx.out.append(SendSignal(watch.signal, group=watch.signal_to == "group"))
        return m
    if m.state is State.STARTING and m.after_reload:
        return replace(m, reload_again=True)  # one more restart once this start is ready
    if m.state is State.STOPPING or (m.state is State.PENDING and not m.process):
        return m  # the coming start reads the new files anyway
    return request_restart(m, "reload", ctx)


def _on_deps_changed(m: Model, ev: DepsChanged, ctx: Ctx) -> Model:
    m = replace(m, deps_ok=ev.ok, deps_reason=ev.reason)
    if m.state is not State.PENDING or m.process or m.launching:
        return m  # a running service keeps running when a dependency goes down
    if not ev.ok:
        return enter(m, State.PENDING, ev.reason, ctx)
    return try_start(m, ctx)


# ---------------------------------------------------------- outcomes of the driver's work


def _on_ports_checked(m: Model, ev: PortsChecked, ctx: Ctx) -> Model:
    m = replace(m, launching=False)
    if not m.wanted:
        return settle_stopped(m, ctx)
    if ev.problem is not None:
        return after_ending(m, Ending.PORT_HELD, None, ev.problem, ctx)
    if not m.deps_ok:
        return enter(m, State.PENDING, m.deps_reason, ctx)
    failures = backoff.effective_failures(m.failures, m.ready_since, ctx.now, ctx.rules.restart.reset_after_s)
    ctx.out.append(Spawn(attempt=failures + 1))
    return replace(m, launching=True)


def _on_spawn_failed(m: Model, ev: SpawnFailed, ctx: Ctx) -> Model:
    m = replace(m, launching=False)
    ctx.emit("spawn_failed", reason=ev.reason, level="error")
    if not m.wanted:
        return settle_stopped(m, ctx)
    return after_ending(m, Ending.SPAWN_FAILED, None, ev.reason, ctx)


def _on_spawned(m: Model, ev: Spawned, ctx: Ctx) -> Model:
    spawns = m.spawns + 1
    m = replace(
        m, launching=False, process=True, spawns=spawns, restarts=m.restarts + (spawns > 1),
        liveness_failures=0, stopping=False, ending=None, detail=None,
    )
    m = enter(m, State.STARTING, None, ctx)
    ctx.emit("spawned", pid=ev.pid, pgid=ev.pgid, attempt=ev.attempt)
    if not m.wanted:
        return begin_stop(m, None, None, ctx)
    if ctx.rules.is_task:
        return m  # a task's gate is its exit 0
    if ctx.rules.has_readiness:
        ctx.out.append(StartGate())
        return m
    return become_ready(m, 0.0, ctx)


def _on_gate_passed(m: Model, ev: GatePassed, ctx: Ctx) -> Model:
    if m.state is not State.STARTING or not m.process or m.stopping:
        return m
    return become_ready(m, ev.after_ms, ctx)


def _on_gate_timed_out(m: Model, ev: GateTimedOut, ctx: Ctx) -> Model:
    if m.state is not State.STARTING or not m.process or m.stopping:
        return m
    ctx.emit("probe_failed", probe="readiness", kind=ev.kind, reason=ev.reason)
    return begin_stop(m, Ending.READINESS_TIMEOUT, ev.reason, ctx)


def _on_liveness(m: Model, ev: LivenessResult, ctx: Ctx) -> Model:
    if m.state not in (State.READY, State.UNHEALTHY) or m.stopping:
        return m
    if ev.ok:
        if not m.liveness_failures:
            return m
        ctx.emit("probe_passed", probe="liveness", kind=ev.kind)
        return enter(replace(m, liveness_failures=0), State.READY, None, ctx)
    count = m.liveness_failures + 1
    threshold = ctx.rules.liveness_threshold
    ctx.emit("probe_failed", probe="liveness", kind=ev.kind, reason=ev.reason, consecutive=count, threshold=threshold)
    m = replace(m, liveness_failures=count)
    if count >= threshold:
        return begin_stop(m, Ending.LIVENESS, f"liveness failed {count} times: {ev.reason}", ctx)
    return enter(m, State.UNHEALTHY, f"liveness failing ({count}/{threshold}): {ev.reason}", ctx)


def _on_memory(m: Model, ev: MemoryExceeded, ctx: Ctx) -> Model:
    if not m.process or m.stopping:
        return m
    ctx.emit("limit_exceeded", limit="memory", reason=ev.reason, level="warning")
    return begin_stop(m, Ending.MEMORY, ev.reason, ctx)


def _on_exited(m: Model, ev: Exited, ctx: Ctx) -> Model:
    """The leader ended by itself (a stop we asked for ends in ``TreeStopped`` instead)."""
    if m.stopping:
        return _on_tree_stopped(m, TreeStopped(ev.pid, ev.code, ev.signal), ctx)
    ctx.out.append(CancelProbes())
    ctx.emit("exited", pid=ev.pid, code=ev.code, signal=ev.signal)
    m = replace(m, process=False)
    if not m.wanted:
        return settle_stopped(m, ctx)
    detail = f"killed by {ev.signal}" if ev.signal is not None else None
    return after_ending(m, Ending.EXIT, ev.code, detail, ctx)


def _on_tree_stopped(m: Model, ev: TreeStopped, ctx: Ctx) -> Model:
    if not m.stopping:
        return m  # only a stop we asked for ends this way
    ctx.emit("exited", pid=ev.pid, code=ev.code, signal=ev.signal)
    ending, detail = m.ending, m.detail
    m = replace(m, process=False, stopping=False, ending=None, detail=None)
    if not m.wanted:
        return settle_stopped(m, ctx)
    if m.restart is not None or ending is None:
        return try_start(m, ctx)
    return after_ending(m, ending, None, detail, ctx)


def _on_backoff_elapsed(m: Model, ev: BackoffElapsed, ctx: Ctx) -> Model:
    if m.state is not State.BACKOFF or m.retry_at is None:
        return m
    ctx.emit("restarting", reason=m.retry_reason)
    return try_start(replace(m, retry_at=None), ctx)


Handler = Callable[[Model, Any, Ctx], Model]

#: The table: one handler per event type.
HANDLERS: dict[type, Handler] = {
    Start: _on_start,
    Stop: _on_stop,
    Restart: _on_restart,
    FilesChanged: _on_files_changed,
    DepsChanged: _on_deps_changed,
    PortsChecked: _on_ports_checked,
    SpawnFailed: _on_spawn_failed,
    Spawned: _on_spawned,
    GatePassed: _on_gate_passed,
    GateTimedOut: _on_gate_timed_out,
    LivenessResult: _on_liveness,
    MemoryExceeded: _on_memory,
    Exited: _on_exited,
    TreeStopped: _on_tree_stopped,
    BackoffElapsed: _on_backoff_elapsed,
}
