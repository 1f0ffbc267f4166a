"""One service's life: spawn, gate, watch, end, decide, again. The one state machine.

Why one task per service: each service waits on different things (its process, its probes,
its backoff timer, an operator's command), and a task that simply awaits them in order reads
like the lifecycle it implements. The runner owns its process tree and its output pump; the
supervisor owns the runners, tells them what is wanted (``start``/``stop``/``restart``), and
learns of every state change through ``on_change``. Only ``_set_state`` writes ``state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpsv3 import platform
from mpsv3._compat import timeout
from mpsv3.config.schema import LogsSpec, ServiceSpec
from mpsv3.engine.console import Console
from mpsv3.engine.events import EventBus, utc_timestamp
from mpsv3.engine.logfile import RotatingLog
from mpsv3.engine.probes import LogMatcher, NotifySocket, ProbeRunner, describe_probe
from mpsv3.engine.pump import OutputPump
from mpsv3.platform import ExitStatus, ProcessTree, SpawnError
from mpsv3.policy.backoff import Decision, Ending, Verdict, decide, should_reset
from mpsv3.policy.states import RESTING, SATISFIES_DEPENDENTS, WITH_PROCESS, State, check_transition

#: How long the pump may drain output after the whole tree has exited.
DRAIN_AFTER_EXIT_S = 2.0


@dataclass
class RunnerContext:
    """What every runner of one supervisor shares. Built by the supervisor."""

    instance: str
    state_dir: Path
    bus: EventBus
    probes: ProbeRunner
    logs: LogsSpec
    console: Console | None
    base_env: dict[str, str]
    #: (ok, reason) for "are all my dependencies ready?"; and an awaitable for "something changed".
    dependencies_ready: Callable[[ServiceSpec], tuple[bool, str]]
    wait_dependencies_changed: Callable[[ServiceSpec], Awaitable[None]]
    check_ports: Callable[[ServiceSpec], Awaitable[str | None]]
    on_change: Callable[[ServiceRunner], None]
    on_quarantine: Callable[[ServiceRunner, str], None]
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    spawn: Callable[[list[str], Path, dict[str, str]], Awaitable[ProcessTree]] = field(
        default=platform.spawn
    )


@dataclass
class LastExit:
    code: int | None
    signal: str | None
    at: float  # wall clock


class ServiceRunner:
    """Runs one service until the supervisor cancels ``run``.

    Args:
        spec: the service's validated config.
        ctx: the shared context (bus, probes, dependency gate, hooks).
    """

    def __init__(self, spec: ServiceSpec, ctx: RunnerContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.state = State.STOPPED
        self.reason: str | None = None
        self.tree: ProcessTree | None = None
        self.restarts = 0
        self.failures = 0
        self.spawns = 0
        self.last_exit: LastExit | None = None
        self.next_restart_at: float | None = None  # monotonic
        self.ready_since: float | None = None  # wall clock
        self._ready_mono: float | None = None
        self._wanted = False
        self._restart_reason: str | None = None
        self._after_reload = False
        self._reload_again = False
        self._poke = asyncio.Event()
        self._log = RotatingLog(ctx.state_dir / "logs" / f"{spec.id}.log", ctx.logs.max_bytes, ctx.logs.backups)
        self._reset_timer: asyncio.TimerHandle | None = None
        #: Why the last run ended, in the probe's or the OS's words, for the next decision.
        self._ending_detail: str | None = None

    # ------------------------------------------------------------------ commands (any task)

    @property
    def wanted(self) -> bool:
        return self._wanted

    def start(self) -> None:
        """Want it up: from stopped, exited or quarantined (a release) it starts again."""
        if self.state is State.QUARANTINED:
            self.failures = 0
            self.ctx.bus.emit("released", self.spec.id)
        self._wanted = True
        self._poke.set()

    def stop_nowait(self) -> None:
        """Want it down; the run loop stops the process and settles in ``stopped``."""
        self._wanted = False
        self._restart_reason = None
        self._poke.set()

    def restart(self, reason: str = "manual") -> None:
        """Stop the process (if any) and start it again at once, skipping any backoff."""
        self._wanted = True
        self._restart_reason = reason
        self._poke.set()

    def file_changed(self, paths: list[str]) -> None:
        """A watched file changed: restart, signal, or only record it, per ``watch.on_change``."""
        watch = self.spec.watch
        assert watch is not None
        self.ctx.bus.emit("reload", self.spec.id, paths=paths[:5], count=len(paths), action=watch.on_change)
        if watch.on_change == "none" or not self._wanted:
            return
        if watch.signal is not None:
            if self.tree is not None:
                self.tree.send_signal(watch.signal)
            return
        if self.state is State.STARTING and self._after_reload:
            self._reload_again = True  # one more restart once this start is ready
            return
        if self.state is State.STOPPING or (self.state is State.PENDING and self.tree is None):
            return  # the coming start reads the new files anyway
        self.restart("reload")

    # ------------------------------------------------------------------------ the machine

    def _set_state(self, new: State, reason: str | None = None) -> None:
        old = self.state
        if old is new and reason == self.reason:
            return
        if old is not new:
            check_transition(old, new)
        self.state = new
        self.reason = reason
        if new is not State.BACKOFF:
            self.next_restart_at = None
        if new in (State.READY, State.UNHEALTHY):
            if old not in (State.READY, State.UNHEALTHY):
                self.ready_since = self.ctx.wall_clock()
                self._ready_mono = self.ctx.clock()
        else:
            self.ready_since = None
            self._ready_mono = None
            self._cancel_reset_timer()
        if old is not new:
            self.ctx.bus.emit("state", self.spec.id, **{"from": old.value, "to": new.value, "reason": reason})
        self.ctx.on_change(self)

    async def run(self) -> None:
        """The lifecycle loop; ends only when cancelled (shutdown stops the process first)."""
        try:
            while True:
                await self._step()
        finally:
            self._cancel_reset_timer()
            self._log.close()

    async def _step(self) -> None:
        if not self._wanted:
            if self.state not in RESTING:
                self._set_state(State.STOPPED, None)
                self.ctx.bus.emit("stopped", self.spec.id)
            await self._wait_poke()
            return
        if self.state in RESTING:
            self._set_state(State.PENDING, "starting")
        ready, why = self.ctx.dependencies_ready(self.spec)
        if not ready:
            self._set_state(State.PENDING, why)
            await self._wait_poke_or_change()
            return
        self._after_reload = self._restart_reason == "reload"
        self._restart_reason = None
        self._reload_again = False
        ending, status = await self._run_process()
        if ending is None:
            return  # stopped or restarted on request; the loop decides from the wants
        await self._after_ending(ending, status)

    async def _wait_poke(self) -> None:
        await self._poke.wait()
        self._poke.clear()

    async def _wait_poke_or_change(self) -> None:
        poke = asyncio.ensure_future(self._poke.wait())
        change = asyncio.ensure_future(self.ctx.wait_dependencies_changed(self.spec))
        try:
            await asyncio.wait({poke, change}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            poke.cancel()
            change.cancel()
        if self._poke.is_set():
            self._poke.clear()

    # ---------------------------------------------------------------- one run of the process

    async def _run_process(self) -> tuple[Ending | None, ExitStatus | None]:
        spec = self.spec
        problem = await self.ctx.check_ports(spec)
        if not self._wanted:
            return None, None  # stopped while the ports were checked: start nothing
        if problem is not None:
            self._ending_detail = problem
            return Ending.SPAWN_FAILED, None
        notify: NotifySocket | None = None
        env = dict(self.ctx.base_env)
        env.update(spec.env)
        env.update(platform.process_markers(self.ctx.instance, spec.id))
        if spec.readiness is not None and spec.readiness.notify:
            notify = NotifySocket(self.ctx.state_dir / "run" / f"{spec.id}.notify")
            await notify.open()
            env.update(notify.env)
        try:
            self.tree = await self.ctx.spawn(spec.argv(), Path(spec.cwd), env)
        except SpawnError as exc:
            if notify is not None:
                notify.close()
            self._ending_detail = str(exc)
            self.ctx.bus.emit("spawn_failed", spec.id, reason=str(exc), level="error")
            return Ending.SPAWN_FAILED, None
        tree = self.tree
        self.spawns += 1
        if self.spawns > 1:
            self.restarts += 1
        self._set_state(State.STARTING, None)
        self.ctx.bus.emit("spawned", spec.id, pid=tree.pid, pgid=tree.pgid, attempt=self.failures + 1)
        started = self.ctx.clock()
        pump = OutputPump(spec.id, self._log, self.ctx.console)
        log_matched = self._listen_for_readiness_line(pump)
        pump_task = asyncio.ensure_future(pump.run(tree.output))
        exit_task = asyncio.ensure_future(tree.wait())
        try:
            return await self._supervise(tree, pump, exit_task, notify, log_matched, started)
        finally:
            if not exit_task.done():
                # Only on cancellation (shutdown): never leave the tree behind.
                with contextlib.suppress(Exception):
                    await platform.terminate(tree, spec.stop.signal, spec.stop.grace_s)
            exit_task.cancel()
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError, asyncio.CancelledError):
                async with timeout(DRAIN_AFTER_EXIT_S):
                    await pump_task
            pump_task.cancel()
            if notify is not None:
                notify.close()
            self.tree = None
            self.ctx.on_change(self)

    async def _supervise(
        self,
        tree: ProcessTree,
        pump: OutputPump,
        exit_task: asyncio.Future[ExitStatus],
        notify: NotifySocket | None,
        log_matched: asyncio.Event | None,
        started: float,
    ) -> tuple[Ending | None, ExitStatus | None]:
        gate = asyncio.ensure_future(self._readiness_gate(notify, log_matched))
        gate.add_done_callback(lambda _: setattr(pump, "line_listener", None))
        try:
            outcome = await self._race(exit_task, gate)
        finally:
            gate.cancel()
        if outcome == "exit":
            return await self._ended_by_itself(tree, exit_task.result())
        if outcome == "poke":
            return await self._stop_on_request(tree)
        if not gate.result():
            status = await self._stop_tree(tree)
            return Ending.READINESS_TIMEOUT, status
        after_ms = round((self.ctx.clock() - started) * 1000, 1)
        self._after_reload = False
        self._set_state(State.READY, None)
        self.ctx.bus.emit("ready", self.spec.id, after_ms=after_ms)
        self._arm_reset_timer()
        if self._reload_again:
            self._reload_again = False
            self.restart("reload")
        liveness = asyncio.ensure_future(self._liveness())
        try:
            outcome = await self._race(exit_task, liveness)
        finally:
            liveness.cancel()
        if outcome == "exit":
            return await self._ended_by_itself(tree, exit_task.result())
        if outcome == "poke":
            return await self._stop_on_request(tree)
        status = await self._stop_tree(tree)
        return Ending.LIVENESS, status

    async def _race(self, exit_task: asyncio.Future[ExitStatus], other: asyncio.Future[Any]) -> str:
        """Wait for the process to end, ``other`` to finish, or a command; name what came first."""
        while True:
            poke = asyncio.ensure_future(self._poke.wait())
            try:
                await asyncio.wait({exit_task, other, poke}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                poke.cancel()
            if exit_task.done():
                return "exit"
            if self._poke.is_set():
                self._poke.clear()
                if not self._wanted or self._restart_reason is not None:
                    return "poke"
                continue  # a start() while already running: nothing to do
            if other.done():
                return "other"

    async def _ended_by_itself(self, tree: ProcessTree, status: ExitStatus) -> tuple[Ending, ExitStatus]:
        self._record_exit(tree, status)
        if status.signal is not None:
            self._ending_detail = f"killed by {status.signal}"
        # The leader is gone; what it left in its group must not outlive it (ports!).
        if tree.alive_members():
            await platform.terminate(tree, self.spec.stop.signal, self.spec.stop.grace_s)
        return Ending.EXIT, status

    async def _stop_on_request(self, tree: ProcessTree) -> tuple[None, ExitStatus]:
        reason = self._restart_reason
        if reason is not None:
            self.ctx.bus.emit("restarting", self.spec.id, reason=reason)
        status = await self._stop_tree(tree)
        return None, status

    async def _stop_tree(self, tree: ProcessTree) -> ExitStatus:
        stop = self.spec.stop
        self._set_state(State.STOPPING, self._restart_reason and f"restart ({self._restart_reason})")
        self.ctx.bus.emit("stopping", self.spec.id, signal=stop.signal, grace_s=stop.grace_s)
        status = await platform.terminate(tree, stop.signal, stop.grace_s)
        self._record_exit(tree, status)
        if not self._wanted:
            self._set_state(State.STOPPED, None)
            self.ctx.bus.emit("stopped", self.spec.id)
        return status

    def _record_exit(self, tree: ProcessTree, status: ExitStatus) -> None:
        self.last_exit = LastExit(status.code, status.signal, self.ctx.wall_clock())
        self.ctx.bus.emit("exited", self.spec.id, pid=tree.pid, code=status.code, signal=status.signal)

    # -------------------------------------------------------------------------- probes

    def _listen_for_readiness_line(self, pump: OutputPump) -> asyncio.Event | None:
        """For a ``log`` probe: watch output from the very first line (before any await)."""
        spec = self.spec.readiness
        if spec is None or spec.log is None:
            return None
        matcher = LogMatcher(spec.log.pattern)
        matched = asyncio.Event()

        def listen(line: str) -> None:
            if matcher.feed(line):
                matched.set()
                pump.line_listener = None

        pump.line_listener = listen
        return matched

    async def _readiness_gate(self, notify: NotifySocket | None, log_matched: asyncio.Event | None) -> bool:
        spec = self.spec.readiness
        if spec is None:
            return True
        last = "no matching line yet" if log_matched is not None else "no answer yet"
        try:
            async with timeout(spec.timeout_s):
                if log_matched is not None:
                    await log_matched.wait()
                    return True
                if notify is not None:
                    await notify.wait_ready()
                    return True
                while True:
                    result = await self.ctx.probes.check(
                        spec, spec.attempt_timeout_s, cwd=Path(self.spec.cwd), env=self._probe_env()
                    )
                    if result.ok:
                        return True
                    last = result.reason
                    await asyncio.sleep(spec.period_ms / 1000)
        except (asyncio.TimeoutError, TimeoutError):
            reason = f"not ready after {spec.timeout_s:g}s ({describe_probe(spec)}); last: {last}"
            self._ending_detail = reason
            self.ctx.bus.emit("probe_failed", self.spec.id, probe="readiness", kind=spec.kind(), reason=reason)
            return False

    async def _liveness(self) -> str:
        """Returns (with the reason) once ``failure_threshold`` consecutive probes failed."""
        spec = self.spec.liveness
        if spec is None:
            await asyncio.Event().wait()  # no liveness: never fails
            raise AssertionError("unreachable")
        consecutive = 0
        while True:
            await asyncio.sleep(spec.interval_s)
            result = await self.ctx.probes.check(spec, spec.timeout_s, cwd=Path(self.spec.cwd), env=self._probe_env())
            if result.ok:
                if consecutive:
                    consecutive = 0
                    self.ctx.bus.emit("probe_passed", self.spec.id, probe="liveness", kind=spec.kind())
                    self._set_state(State.READY, None)
                continue
            consecutive += 1
            self.ctx.bus.emit(
                "probe_failed", self.spec.id, probe="liveness", kind=spec.kind(),
                reason=result.reason, consecutive=consecutive, threshold=spec.failure_threshold,
            )
            if consecutive >= spec.failure_threshold:
                self._ending_detail = f"liveness failed {consecutive} times: {result.reason}"
                return result.reason
            self._set_state(State.UNHEALTHY, f"liveness failing ({consecutive}/{spec.failure_threshold}): {result.reason}")

    def _probe_env(self) -> dict[str, str]:
        env = dict(self.ctx.base_env)
        env.update(self.spec.env)
        return env

    # ------------------------------------------------------------------ after the process

    async def _after_ending(self, ending: Ending, status: ExitStatus | None) -> None:
        if not self._wanted:
            return  # a stop raced with the ending; the loop settles in stopped
        if should_reset(self._ready_mono, self.ctx.clock(), self.spec.restart.reset_after_s):
            self.failures = 0
        code = status.code if status is not None and ending is Ending.EXIT else None
        detail, self._ending_detail = self._ending_detail, None
        decision = decide(
            self.spec.restart, ending, code, self.failures, after_reload=self._after_reload, detail=detail
        )
        self.failures = decision.failures
        reason = decision.reason
        if decision.verdict is Verdict.RESTART_NOW:
            self.ctx.bus.emit("restarting", self.spec.id, reason="reload", why=reason)
            return
        if decision.verdict is Verdict.EXITED:
            self._wanted = False
            self._set_state(State.EXITED, reason)
            return
        if decision.verdict is Verdict.QUARANTINE:
            self._quarantine(reason)
            return
        if decision.verdict is Verdict.WAIT_FOR_CHANGE:
            self._set_state(State.BACKOFF, decision.reason)
            await self._wait_poke()
            if self._wanted and self._restart_reason is not None:
                self.ctx.bus.emit("restarting", self.spec.id, reason=self._restart_reason)
            return
        await self._backoff(decision, reason)

    async def _backoff(self, decision: Decision, reason: str) -> None:
        self._set_state(State.BACKOFF, reason)
        self.next_restart_at = self.ctx.clock() + decision.delay_s
        self.ctx.bus.emit("backoff", self.spec.id, delay_s=round(decision.delay_s, 3), attempt=self.failures, reason=reason)
        if decision.delay_s > 0:  # with no delay, do not even yield: respawn at once
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                async with timeout(decision.delay_s):
                    await self._poke.wait()
        self._poke.clear()
        self.next_restart_at = None
        if self._wanted and self._restart_reason is None:
            self.ctx.bus.emit("restarting", self.spec.id, reason=decision.restart_reason)
        elif self._restart_reason is not None:
            self.ctx.bus.emit("restarting", self.spec.id, reason=self._restart_reason)

    def _quarantine(self, reason: str) -> None:
        self._wanted = False
        self._set_state(State.QUARANTINED, reason)
        level = "alert" if self.spec.criticality in ("critical", "core") else "warning"
        self.ctx.bus.emit("quarantined", self.spec.id, reason=reason, level=level, criticality=self.spec.criticality)
        self.ctx.on_quarantine(self, reason)

    # ------------------------------------------------------------------------ bookkeeping

    def _arm_reset_timer(self) -> None:
        """Forget past failures once the service has been ready for ``reset_after_s``."""
        self._cancel_reset_timer()
        if self.failures:
            loop = asyncio.get_running_loop()
            self._reset_timer = loop.call_later(self.spec.restart.reset_after_s, self._reset_failures)

    def _reset_failures(self) -> None:
        if self.state in (State.READY, State.UNHEALTHY):
            self.failures = 0
            self.ctx.on_change(self)

    def _cancel_reset_timer(self) -> None:
        if self._reset_timer is not None:
            self._reset_timer.cancel()
            self._reset_timer = None

    @property
    def satisfies_dependents(self) -> bool:
        return self.state in SATISFIES_DEPENDENTS

    @property
    def has_process(self) -> bool:
        return self.state in WITH_PROCESS and self.tree is not None

    def status(self) -> dict[str, Any]:
        """This service's entry of ``status --json`` (the contract's shape)."""
        tree = self.tree
        next_in = None
        if self.next_restart_at is not None:
            next_in = round(max(0.0, self.next_restart_at - self.ctx.clock()), 3)
        return {
            "id": self.spec.id,
            "state": self.state.value,
            "pid": tree.pid if tree is not None else None,
            "pgid": tree.pgid if tree is not None else None,
            "restarts": self.restarts,
            "failures": self.failures,
            "last_exit": None
            if self.last_exit is None
            else {"code": self.last_exit.code, "signal": self.last_exit.signal, "at": utc_timestamp(self.last_exit.at)},
            "next_restart_in_s": next_in,
            "ready_since": utc_timestamp(self.ready_since) if self.ready_since is not None else None,
            "reason": self.reason,
        }
