"""One service's driver: carries out the lifecycle's effects and reports their outcomes.

Why a driver and not a state machine: every decision is ``policy.lifecycle.step``'s; this
class only does what the effects ask (check ports, spawn, start or cancel a probe, stop or
signal the tree, arm a timer, emit on the bus) and posts what happened back as events. Each
asynchronous piece runs as a task of the runner's own task group, so nothing outlives the
runner. The supervisor owns the runners: it posts commands (``start``, ``stop_nowait``,
``restart``, ``file_changed``, ``deps_changed``) and learns of every change through one
callback, ``RunnerContext.on_change``. Used from the supervisor's event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpsv3 import platform
from mpsv3._compat import TaskGroup
from mpsv3.engine.guarded_tasks import GuardedTasks
from mpsv3.engine.logfile import RotatingLog, open_service_log
from mpsv3.engine.notify import NotifySocket, notify_socket_for
from mpsv3.engine.probing import attach_log_gate, liveness_loop, readiness_gate
from mpsv3.engine.pump import OutputPump
from mpsv3.engine.resources import Usage, watch_memory
from mpsv3.engine.runner_context import LastExit, RunnerContext
from mpsv3.engine.service_status import service_status
from mpsv3.plan import ServicePlan
from mpsv3.platform import ExitStatus, ProcessTree, SpawnError
from mpsv3.platform.pressure import is_exhaustion
from mpsv3.platform.users import account_env
from mpsv3.policy import backoff
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
    PortsChecked,
    Restart,
    SendSignal,
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
from mpsv3.policy.states import RESTING, WITH_PROCESS, State

#: How long the pump may drain output after the whole tree has exited.
DRAIN_AFTER_EXIT_S = 2.0


class ServiceRunner:
    """Drives one service until the supervisor cancels ``run``.

    Args:
        spec: the service's plan.
        ctx: the shared context (bus, probes, ports, hooks).
    """

    def __init__(self, spec: ServicePlan, ctx: RunnerContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.rules = Rules.of(spec)
        self.model = Model()
        self.tree: ProcessTree | None = None
        self.last_exit: LastExit | None = None
        self._log: RotatingLog | None = None  # opened at the first spawn (a failure fails the spawn)
        self._group: TaskGroup | None = None
        self._queue: deque[Event] = deque()
        self._busy = False
        self._closed = asyncio.Event()
        self._probes: list[asyncio.Task[Any]] = []
        self._stop_task: asyncio.Task[None] | None = None
        self._leader_gone = False
        self._timer: asyncio.TimerHandle | None = None
        self._pump: OutputPump | None = None
        self._notify: NotifySocket | None = None
        self._log_matched: asyncio.Event | None = None
        self._spawned_at = 0.0
        self._memory_task: asyncio.Task[None] | None = None
        self._members: list[int] | None = None
        self._tasks = GuardedTasks(ctx.report, spec.id)

    # --------------------------------------------------------------- commands (any task)

    @property
    def state(self) -> State:
        return self.model.state

    @property
    def reason(self) -> str | None:
        return self.model.reason

    @property
    def wanted(self) -> bool:
        return self.model.wanted

    def start(self) -> None:
        """Want it up: from stopped, exited or quarantined (a release) it starts again."""
        self.post(Start())

    def stop_nowait(self) -> None:
        """Want it down; the tree is stopped and the service settles in ``stopped``."""
        self.post(Stop())

    def restart(self, reason: str = "manual") -> None:
        """Stop the process (if any) and start it again at once, skipping any backoff."""
        self.post(Restart(reason))

    def file_changed(self, paths: list[str]) -> None:
        self.post(FilesChanged(tuple(paths)))

    def deps_changed(self, ok: bool, reason: str) -> None:
        if (ok, reason) != (self.model.deps_ok, self.model.deps_reason):
            self.post(DepsChanged(ok, reason))

    def update_probes(self, spec: ServicePlan) -> None:
        """A reload changed only the probes: use them from now on, without a restart."""
        self.spec, self.rules = spec, Rules.of(spec)
        if self.model.state in (State.READY, State.UNHEALTHY) and self.tree is not None:
            for task in self._probes:
                task.cancel()
            self._probes.clear()
            if spec.liveness is not None:
                self._start_liveness()

    def settled_since(self, spawns: int) -> bool:
        """Up again after spawn number ``spawns`` (ready, or a task completed), or given up.

        What a rolling restart and a dependents' restart wait for before the next service.
        """
        m = self.model
        if m.spawns > spawns and m.satisfies_dependents:
            return True
        return m.state in (State.BACKOFF, State.QUARANTINED, State.STOPPED, State.EXITED)

    @property
    def resting(self) -> bool:
        """Nothing runs and nothing is under way: what shutdown waits for."""
        m = self.model
        return m.state in RESTING and not m.process and not m.launching and self.tree is None

    # ----------------------------------------------------------------------- the driver

    def post(self, event: Event) -> None:
        """Apply ``event`` (and whatever its effects post back at once), in order.

        Events posted before ``run`` has started wait for it.
        """
        self._queue.append(event)
        if not self._busy and self._group is not None:
            self._drain()

    def _drain(self) -> None:
        self._busy = True
        try:
            while self._queue:
                old = self.model
                self.model, effects = step(old, self._queue.popleft(), self.ctx.clock(), self.rules)
                for effect in effects:
                    self._apply(effect)
                if self.model != old:
                    self.ctx.on_change(self, old)
        finally:
            self._busy = False

    def _apply(self, effect: Effect) -> None:
        if isinstance(effect, Emit):
            self.ctx.bus.emit(effect.name, self.spec.id, **effect.fields)
        elif isinstance(effect, CheckPorts):
            if self.spec.ports:
                self._tasks.start(self._check_ports(), "ports", on_error=self._tasks.retry_later(self._check_ports))
            else:
                self.post(PortsChecked(None))
        elif isinstance(effect, Spawn):
            attempt = effect.attempt
            self._tasks.start(self._spawn(attempt), "spawn", on_error=self._spawn_failed(attempt))
        elif isinstance(effect, StartGate):
            self._start_gate()
        elif isinstance(effect, StartLiveness):
            self._start_liveness()
        elif isinstance(effect, CancelProbes):
            for task in self._probes:
                task.cancel()
            self._probes.clear()
        elif isinstance(effect, StopTree):
            self._stop(effect.signal, effect.grace_s)
        elif isinstance(effect, SendSignal):
            if self.tree is not None:
                self.tree.send_signal(effect.signal) if effect.group else self.tree.signal_leader(effect.signal)
        elif isinstance(effect, ArmBackoff):
            self._cancel_timer()
            self._timer = asyncio.get_running_loop().call_later(effect.delay_s, self.post, BackoffElapsed())
        elif isinstance(effect, CancelBackoff):
            self._cancel_timer()

    def _spawn_failed(self, attempt: int) -> Callable[[BaseException], None]:
        """A spawn that raised: our shortage is retried; anything else fails this start."""

        def failed(exc: BaseException) -> None:
            if is_exhaustion(exc):
                self._tasks.retry_later(lambda: self._spawn(attempt))(exc)
            else:
                self.post(SpawnFailed(f"cannot start {self.spec.argv[0]!r}: {type(exc).__name__}: {exc}"))

        return failed

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def run(self) -> None:
        """Own the runner's tasks until cancelled; a tree still alive then is stopped."""
        try:
            async with TaskGroup() as group:
                self._group = self._tasks.group = group
                self._drain()
                await self._closed.wait()
        finally:
            self._cancel_timer()
            tree = self.tree
            if tree is not None:
                with contextlib.suppress(Exception):
                    await platform.terminate(tree, self.spec.stop.signal, self.spec.stop.grace_s)
            if self._log is not None:
                self._log.close()

    # -------------------------------------------------------------------- the effects

    async def _check_ports(self) -> None:
        self.post(PortsChecked(await self.ctx.check_ports(self.spec)))

    def _open_log(self) -> RotatingLog | str:
        """The service's log file, or why it cannot be opened (a failed start, not ours)."""
        if self._log is None:
            path = self.ctx.state_dir / "logs" / f"{self.spec.id}.log"
            opened = open_service_log(path, self.ctx.log_max_bytes, self.ctx.log_backups)
            if isinstance(opened, str):
                return opened
            self._log = opened
        return self._log

    async def _spawn(self, attempt: int) -> None:
        spec = self.spec
        log = self._open_log()
        if isinstance(log, str):
            self.post(SpawnFailed(log))
            return
        env = self.environment()
        env.update(platform.process_markers(self.ctx.instance, spec.id))
        notify = await notify_socket_for(spec, self.ctx.state_dir / "run")
        if notify is not None:
            env.update(notify.env)
        try:
            tree = await self.ctx.spawn(
                list(spec.argv), Path(spec.cwd), env, user=spec.user, group=spec.group,
                cgroup=self.ctx.cgroup_of(spec.id),
            )
        except SpawnError as exc:
            if notify is not None:
                notify.close()
            self.post(SpawnFailed(str(exc)))
            return
        self.tree, self._notify, self._leader_gone = tree, notify, False
        self._spawned_at = self.ctx.clock()
        self._pump = pump = OutputPump(spec.id, log, self.ctx.console)
        pump.on_error = lambda exc: self.ctx.report(f"log:{exc.errno}", exc, spec.id)
        self.post(Spawned(tree.pid, tree.pgid, attempt))  # StartGate attaches a log listener
        pump_task = self._tasks.start(pump.run(tree.output))
        self._tasks.start(self._watch_exit(tree, pump_task))
        if spec.memory_mb is not None:
            self._memory_task = self._tasks.start(watch_memory(tree, spec.memory_mb, self.ctx.sampler, spec.id, self.post))

    async def _watch_exit(self, tree: ProcessTree, pump_task: asyncio.Task[None]) -> None:
        """The leader's exit, from the OS; what it left in its group goes too."""
        status = await tree.wait()
        self._leader_gone = True
        if self._stop_task is None:
            try:
                # The leader is gone; what it left in its group must not outlive it (ports!).
                if tree.alive_members():
                    self._stop_task = asyncio.current_task()  # type: ignore[assignment]
                    await platform.terminate(tree, self.spec.stop.signal, self.spec.stop.grace_s)
            except Exception as exc:  # e.g. EMFILE reading the group: the exit still counts
                self.ctx.report(f"exit:{type(exc).__name__}", exc, self.spec.id)
                with contextlib.suppress(Exception):
                    tree.kill()
            self._finish(tree, status, pump_task, stopped=self.model.stopping)
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(pump_task), DRAIN_AFTER_EXIT_S)
        pump_task.cancel()

    def _stop(self, signame: str, grace_s: float) -> None:
        tree = self.tree
        if tree is None or self._stop_task is not None:
            return  # already stopping, or the leader's exit is being handled
        self._stop_task = self._tasks.start(self._stop_tree(tree, signame, grace_s), "stop", on_error=self._force_stop(tree))

    def _force_stop(self, tree: ProcessTree) -> Callable[[BaseException], None]:
        """The stop routine itself failed: kill the tree and go on as if it had stopped."""

        def forced(_: BaseException) -> None:
            with contextlib.suppress(Exception):
                tree.kill()
            self._finish(tree, ExitStatus(code=None, signal="SIGKILL"), None, stopped=True)

        return forced

    async def _stop_tree(self, tree: ProcessTree, signame: str, grace_s: float) -> None:
        status = await platform.terminate(tree, signame, grace_s)
        self._finish(tree, status, None, stopped=True)

    def _finish(self, tree: ProcessTree, status: ExitStatus, pump_task: asyncio.Task[None] | None, *, stopped: bool) -> None:
        """The whole tree is gone: forget it and tell the lifecycle how it ended."""
        if self.tree is not tree:
            return
        self.tree, self._stop_task = None, None
        if self._memory_task is not None:
            self._memory_task.cancel()
            self._memory_task = None
        self.ctx.sampler.forget(self.spec.id)
        self.last_exit = LastExit(status.code, status.signal, self.ctx.wall_clock())
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        outcome = TreeStopped if stopped else Exited
        self.post(outcome(tree.pid, status.code, status.signal))

    def _start_gate(self) -> None:
        spec = self.spec.readiness
        assert spec is not None and self._pump is not None
        log_matched = None
        if spec.check.kind == "log":
            log_matched = attach_log_gate(self._pump, spec.check.pattern)

        async def gate() -> None:
            outcome = await readiness_gate(
                spec, self.ctx.probes, cwd=Path(self.spec.cwd), env=self.environment(),
                notify=self._notify, log_matched=log_matched, started=self._spawned_at, clock=self.ctx.clock,
            )
            self.post(outcome)

        self._probes.append(self._tasks.start(gate()))

    def _start_liveness(self) -> None:
        spec = self.spec.liveness
        assert spec is not None
        loop = liveness_loop(spec, self.ctx.probes, cwd=Path(self.spec.cwd), env=self.environment(), post=self.post)
        self._probes.append(self._tasks.start(loop))

    def environment(self) -> dict[str, str]:
        """The service's environment (without the markers): base, its user's, then its own."""
        env = dict(self.ctx.base_env)
        env.update(account_env(self.spec.user))
        env.update(self.spec.env)
        return env

    # ----------------------------------------------------------------------- reading

    @property
    def has_process(self) -> bool:
        return self.model.state in WITH_PROCESS and self.tree is not None

    def failures(self) -> int:
        """The failure count as status shows it (the reset rule applied as of now)."""
        m = self.model
        return backoff.effective_failures(m.failures, m.ready_since, self.ctx.clock(), self.spec.restart.reset_after_s)

    def sample_usage(self) -> Usage | None:
        """CPU and memory of the tree now (blocking reads: call it in a thread)."""
        tree = self.tree
        if tree is None or self._members is None:
            return None
        return self.ctx.sampler.sample(self.spec.id, self._members, tree.create_time)

    def prepare_sample(self) -> None:
        """On the loop: note the tree's members for :meth:`sample_usage`."""
        self._members = self.tree.alive_members() if self.tree is not None else None

    def status(self, usage: Usage | None = None) -> dict[str, Any]:
        """This service's entry of ``status --json`` (the contract's shape)."""
        return service_status(self, usage)
