"""The moves of the lifecycle: the model, and the named steps every handler is built from.

Why apart from the handler table (``lifecycle.py``): these are the systemd-style
``service_enter_*`` steps (enter a state, launch, begin a stop, decide after an ending) that
several events share; ``lifecycle.py`` says which event leads to which of them. :func:`enter`
is the only writer of ``Model.state``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mpsv3.policy import backoff
from mpsv3.policy.backoff import Ending, Verdict
from mpsv3.policy.messages import (
    ArmBackoff,
    CancelBackoff,
    CancelProbes,
    CheckPorts,
    Effect,
    Emit,
    StartLiveness,
    StopTree,
)
from mpsv3.policy.rules import Rules
from mpsv3.policy.states import RESTING, SATISFIES_DEPENDENTS, State


@dataclass(frozen=True)
class Model:
    """Everything the lifecycle knows about one service; replaced, never mutated.

    Attributes:
        state, reason: what status shows.
        wanted: the operator (or ``up``) wants it running; a stop, an ending that is not
            restarted and a quarantine clear it.
        process: a process tree exists (from ``Spawned`` until ``Exited``/``TreeStopped``).
        launching: a port check or a spawn is in flight.
        stopping: we asked the tree to stop; ``ending`` says why (None: an operator's stop or
            restart).
        ending, detail: why the tree is being stopped, in the probe's words, for the decision
            once it is gone.
        restart: a restart asked for (``manual``, ``reload``), carried out once the tree is gone.
        after_reload: this run was started by a watched-file change and has not been ready
            yet: if it fails, it waits for the next change instead of burning retries.
        reload_again: a change arrived while such a run was starting; restart once ready.
        failures: consecutive failures (``backoff.effective_failures`` holds the reset rule).
        ready_since: ``now`` when it became ready (None when not ready).
        retry_at, retry_reason: when the backoff ends, and the ``restarting`` reason then.
        waiting_for_change: backing off until the next watched-file change.
        liveness_failures: consecutive failed liveness probes.
        immediate: times of recent exit-99 restarts (the storm guard).
        deps_ok, deps_reason: the dependency gate's last answer, from the supervisor.
    """

    state: State = State.STOPPED
    reason: str | None = None
    wanted: bool = False
    process: bool = False
    launching: bool = False
    stopping: bool = False
    ending: Ending | None = None
    detail: str | None = None
    restart: str | None = None
    after_reload: bool = False
    reload_again: bool = False
    failures: int = 0
    restarts: int = 0
    spawns: int = 0
    ready_since: float | None = None
    retry_at: float | None = None
    retry_reason: str = "crash"
    waiting_for_change: bool = False
    liveness_failures: int = 0
    immediate: tuple[float, ...] = ()
    deps_ok: bool = True
    deps_reason: str = ""

    @property
    def satisfies_dependents(self) -> bool:
        return self.state in SATISFIES_DEPENDENTS


@dataclass(frozen=True)
class Ctx:
    rules: Rules
    now: float
    out: list[Effect]

    def emit(self, name: str, **fields: Any) -> None:
        self.out.append(Emit(name, fields))


# ------------------------------------------------------------------------ moving around


def enter(m: Model, state: State, reason: str | None, ctx: Ctx) -> Model:
    """The one writer of ``state``: moves, keeps ``ready_since``, emits ``state``."""
    if m.state is state:
        return m if m.reason == reason else replace(m, reason=reason)
    ctx.emit("state", **{"from": m.state.value, "to": state.value, "reason": reason})
    healthy = state in (State.READY, State.UNHEALTHY)
    was_healthy = m.state in (State.READY, State.UNHEALTHY)
    ready_since = (m.ready_since if was_healthy else ctx.now) if healthy else None
    retry_at = m.retry_at if state is State.BACKOFF else None
    return replace(m, state=state, reason=reason, ready_since=ready_since, retry_at=retry_at)


def settle_stopped(m: Model, ctx: Ctx) -> Model:
    """Not wanted and nothing running: rest in ``stopped`` (unless already resting)."""
    if m.state in RESTING:
        return m
    if m.retry_at is not None or m.waiting_for_change:
        ctx.out.append(CancelBackoff())
    m = enter(replace(m, waiting_for_change=False, restart=None), State.STOPPED, None, ctx)
    ctx.emit("stopped")
    return m


def try_start(m: Model, ctx: Ctx) -> Model:
    """Launch the process if it is wanted, nothing runs and nothing holds it back."""
    if not m.wanted or m.process or m.launching or m.state is State.COMPLETED:
        return m
    if m.state is State.BACKOFF and (m.retry_at is not None or m.waiting_for_change):
        return m
    if m.state in RESTING:
        m = enter(m, State.PENDING, "starting", ctx)
    if not m.deps_ok:
        return enter(m, State.PENDING, m.deps_reason, ctx)
    ctx.out.append(CheckPorts())
    return replace(m, launching=True, after_reload=m.restart == "reload", restart=None, reload_again=False)


def begin_stop(m: Model, ending: Ending | None, detail: str | None, ctx: Ctx) -> Model:
    """Ask the tree to stop: the stop signal, ``grace_s``, then SIGKILL (the driver's routine)."""
    stop = ctx.rules.stop
    ctx.out.append(CancelProbes())
    reason = f"restart ({m.restart})" if m.restart else None
    m = enter(replace(m, stopping=True, ending=ending, detail=detail), State.STOPPING, reason, ctx)
    ctx.emit("stopping", signal=stop.signal, grace_s=stop.grace_s)
    ctx.out.append(StopTree(stop.signal, stop.grace_s))
    return m


def request_restart(m: Model, reason: str, ctx: Ctx) -> Model:
    """Stop the running tree and start again at once, or cut short a backoff."""
    m = replace(m, wanted=True)
    if m.process:
        if m.stopping:
            return replace(m, restart=reason)
        ctx.emit("restarting", reason=reason)
        return begin_stop(replace(m, restart=reason), None, None, ctx)
    if m.launching:
        return m  # the start under way reads the new files and config anyway
    if m.state is State.BACKOFF:
        ctx.out.append(CancelBackoff())
        ctx.emit("restarting", reason=reason)
        return try_start(replace(m, retry_at=None, waiting_for_change=False, restart=reason), ctx)
    if m.state is State.QUARANTINED:
        m = release(m, ctx)
    if m.state is State.COMPLETED:
        m = enter(m, State.PENDING, "starting", ctx)
    return try_start(replace(m, restart=reason), ctx)


def release(m: Model, ctx: Ctx) -> Model:
    ctx.emit("released")
    return replace(m, failures=0)


def become_ready(m: Model, after_ms: float, ctx: Ctx) -> Model:
    if ctx.rules.has_readiness:
        m = replace(m, after_reload=False)  # the gate passed: the save was good
    m = enter(m, State.READY, None, ctx)
    ctx.emit("ready", after_ms=after_ms)
    if ctx.rules.has_liveness:
        ctx.out.append(StartLiveness())
    if m.reload_again:
        return request_restart(replace(m, reload_again=False), "reload", ctx)
    return m


# ------------------------------------------------------------------ after a run ended


def after_ending(m: Model, ending: Ending, code: int | None, detail: str | None, ctx: Ctx) -> Model:
    """Decide (the exit-code table and the restart policy) and go where the verdict says."""
    rules = ctx.rules
    failures = backoff.effective_failures(m.failures, m.ready_since, ctx.now, rules.restart.reset_after_s)
    immediate = backoff.recent_immediate_restarts(m.immediate, ctx.now)
    decision = backoff.decide(
        rules.restart, ending, code, failures, after_reload=broken_save(m, ctx), detail=detail,
        task=rules.is_task, immediate_restarts=len(immediate),
    )
    m = replace(m, failures=decision.failures, liveness_failures=0)
    verdict = decision.verdict
    if verdict is Verdict.RESTART_NOW:
        ctx.emit("restarting", reason="reload", why=decision.reason)
        return try_start(replace(m, immediate=(*immediate, ctx.now)), ctx)
    if verdict in (Verdict.EXITED, Verdict.COMPLETED):
        state = State.EXITED if verdict is Verdict.EXITED else State.COMPLETED
        return enter(replace(m, wanted=verdict is Verdict.COMPLETED), state, decision.reason, ctx)
    if verdict is Verdict.QUARANTINE:
        level = "alert" if rules.criticality in ("critical", "core") else "warning"
        m = enter(replace(m, wanted=False), State.QUARANTINED, decision.reason, ctx)
        ctx.emit("quarantined", reason=decision.reason, level=level, criticality=rules.criticality)
        return m
    if verdict is Verdict.WAIT_FOR_CHANGE:
        return enter(replace(m, waiting_for_change=True), State.BACKOFF, decision.reason, ctx)
    m = enter(m, State.BACKOFF, decision.reason, ctx)
    m = replace(m, retry_at=ctx.now + decision.delay_s, retry_reason=decision.restart_reason)
    ctx.emit("backoff", delay_s=round(decision.delay_s, 3), attempt=m.failures, reason=decision.reason)
    if decision.delay_s > 0:
        ctx.out.append(ArmBackoff(decision.delay_s))
        return m
    ctx.emit("restarting", reason=decision.restart_reason)  # no delay: respawn at once
    return try_start(replace(m, retry_at=None), ctx)


def broken_save(m: Model, ctx: Ctx) -> bool:
    """This run, started by a file change, failed before it proved the change good.

    With a readiness gate, passing it proves it (``after_reload`` is cleared then). Without
    one, "ready" comes at once and proves nothing: the run must stay up ``reset_after_s``.
    """
    if not m.after_reload:
        return False
    reset_after_s = ctx.rules.restart.reset_after_s
    return m.ready_since is None or ctx.now - m.ready_since < reset_after_s


