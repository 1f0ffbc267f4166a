"""The supervisor: the lease, one runner per service, the dependency gate, shutdown.

Why one object: it owns everything that lives as long as ``mpsv3 up`` (the lease, the bus,
the runners, the watcher, the control server) and is the only place that knows how services
relate: who waits for whom (``policy.gate``), what a reload changes (``policy.reload_plan``),
in which order things stop. Each runner reports every change through one callback,
:meth:`_on_change`; the supervisor answers with gate updates to dependents and alerts, and
hands ordered restarts (rolling, dependents') to :mod:`mpsv3.engine.rollouts`. All of it runs on one asyncio loop; nothing here blocks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

from mpsv3 import __version__, platform
from mpsv3._compat import TaskGroup
from mpsv3.control import instances
from mpsv3.engine.console import Console
from mpsv3.engine.events import EventBus, utc_timestamp
from mpsv3.engine.ports import PortGuard
from mpsv3.engine.probes import ProbeRunner
from mpsv3.engine.resources import Usage, as_fields
from mpsv3.engine.rollouts import Rollouts
from mpsv3.engine.run_record import RunRecord
from mpsv3.engine.runner import ServiceRunner
from mpsv3.engine.runner_context import RunnerContext
from mpsv3.engine.stack_chores import StackChores
from mpsv3.engine.trouble import Trouble
from mpsv3.errors import EXIT_FAILURE, EXIT_OK, MpsvError
from mpsv3.plan import ServicePlan, StackPlan
from mpsv3.platform.signals import on_stop_signals
from mpsv3.policy.gate import gate
from mpsv3.policy.graph import DependencyGraph
from mpsv3.policy.lifecycle import Model
from mpsv3.policy.reload_plan import ReloadPlan, expand_only, plan_reload, selected
from mpsv3.policy.states import SATISFIES_DEPENDENTS, State

#: Variables the supervisor strips from what it passes on, so that a supervisor started by
#: another one (tests, benchmarks) never marks its services as the outer one's.
INHERITED_MARKERS = ("MPSV3_INSTANCE", "MPSV3_SERVICE", "NOTIFY_SOCKET")

#: Loads the config again for ``reload`` (and ``scale``): the new plan, or ConfigInvalid.
PlanLoader = Callable[[StackPlan, dict[str, int]], StackPlan]


class Supervisor:
    """Supervises one stack until ``down`` or a stop signal.

    Args:
        plan: the validated, compiled stack.
        only: start only these services (ids or replicated ids) and what they require.
        profiles: the active profiles (``up --profile``).
        console: where service output and supervisor lines are echoed; None for none.
        loader: how ``reload`` reads the config again (default: the config loader).
        verbose: the console shows every supervisor line, not the digest (``up -v``).
        lease: the lease, already held (by ``up``, or the keeper before it started us); None
            only to check the arguments (``up`` does before it takes the lease).
    """

    def __init__(
        self,
        plan: StackPlan,
        *,
        only: Sequence[str] = (),
        profiles: Sequence[str] = (),
        console: Console | None = None,
        loader: PlanLoader | None = None,
        verbose: bool = False,
        lease: platform.SingletonLease | None = None,
    ) -> None:
        self.plan = plan
        self.graph = DependencyGraph.from_plan(plan)
        self.only = expand_only(plan, only)
        self.profiles = tuple(profiles)
        self.console = console
        self.state_dir = Path(plan.state_dir)
        self.lease = lease
        self.containment: platform.Containment | None = None
        self.runners: dict[str, ServiceRunner] = {}
        self.started_at = time.time()
        self.bus: EventBus | None = None
        self.chores = StackChores(self, verbose=verbose)
        self._loader = loader or _load_plan
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: TaskGroup | None = None
        self._shutdown = asyncio.Event()
        self._changed = asyncio.Event()
        self._ctx: RunnerContext | None = None
        self.rollouts = Rollouts(self)
        self._stack_ready_sent = False
        self._selected_of: tuple[StackPlan, DependencyGraph, frozenset[str]] | None = None

    @property
    def selected(self) -> set[str]:
        """What ``up`` starts (and a reload starts when added); computed once per plan (a
        stack-ready check after every change walked the graph: O(N²) for a stack of N)."""
        if self._selected_of is None or self._selected_of[0] is not self.plan or self._selected_of[1] is not self.graph:
            self._selected_of = (self.plan, self.graph, frozenset(selected(self.plan, self.graph, self.only, self.profiles)))
        return set(self._selected_of[2])

    # ------------------------------------------------------------------------- lifecycle

    async def run(self) -> int:
        """Serve until shutdown; the caller holds the lease (``up``, or the keeper for us)."""
        lease = self.lease
        if lease is None:
            raise MpsvError("internal: the supervisor runs only under a held lease", EXIT_FAILURE)
        loop = asyncio.get_running_loop()
        platform.prepare_supervisor(loop)
        on_stop_signals(loop, self.request_shutdown)  # first: a stop during start-up is clean
        self.bus = bus = self.chores.open_files()
        self.trouble = trouble = Trouble(bus)
        bus.on_subscriber_error = trouble.subscriber_error
        loop.set_exception_handler(trouble.loop_handler)
        logging.getLogger("mpsv3").addHandler(trouble.logging_handler())
        self.containment = containment = platform.Containment(self.plan.name)
        bus.emit(
            "lease_acquired", pid=self.up_pid, instance=self.plan.name, config=self.plan.config_path,
            supervisor_pid=os.getpid(), containment=containment.mechanisms,
        )
        self._watch_keeper(loop, containment.keeper_pid, lease)
        record = RunRecord(self.state_dir / "run" / "state.json", self.plan.name)
        record.cgroup_base = str(containment.base) if containment.base is not None else None
        await self.chores.reclaim_leftovers(record)
        probes = ProbeRunner()
        try:
            async with TaskGroup() as group:
                self._group = group
                self._ctx = self._context(bus, probes, record)
                for spec in self.plan.services:
                    self._add_runner(spec)
                self._start(self.graph.start_order(), self.selected)
                await self.chores.start()  # after the first spawns: nothing here may delay them
                self._index()
                await self._shutdown.wait()
                await self._stop_all()
                await self.chores.sweep()
                for task in self._tasks.values():
                    task.cancel()
                await self.chores.stop()
        finally:
            await probes.aclose()
            bus.emit("shutdown", pid=os.getpid())
            record.clear()
            with contextlib.suppress(OSError):
                instances.forget(self.plan.name)
            containment.close()
            self.chores.close_files()
        return EXIT_OK

    def _watch_keeper(self, loop: asyncio.AbstractEventLoop, keeper: int | None,
                      lease: platform.SingletonLease) -> None:
        """If the keeper dies, stop the stack in order and exit (nothing would end it later)."""
        if keeper is None:
            return

        def lost() -> None:
            assert self.bus is not None
            self.bus.emit("keeper_lost", pid=keeper, level="alert")
            lease.mark_stopping()  # a new `up` waits for us instead of failing
            self.request_shutdown()

        platform.on_process_exit(loop, keeper, lost)

    def _context(self, bus: EventBus, probes: ProbeRunner, record: RunRecord) -> RunnerContext:
        ports = PortGuard(self.plan.name, bus, self.chores.reclaim_pids)
        assert self.containment is not None

        def on_change(runner: ServiceRunner, old: Model) -> None:
            record.mark_dirty(self.runners)
            self._on_change(runner, old)

        return RunnerContext(
            instance=self.plan.name, state_dir=self.state_dir, bus=bus, probes=probes,
            log_max_bytes=self.plan.logs_max_bytes, log_backups=self.plan.logs_backups,
            console=self.console, base_env=self.base_env(), check_ports=ports.check, on_change=on_change,
            cgroup_of=self.containment.cgroup, report=self.trouble.report,
        )

    @property
    def up_pid(self) -> int:
        """The ``mpsv3 up`` process, holder of the lease: the keeper, or this process."""
        keeper = self.containment.keeper_pid if self.containment is not None else None
        return keeper or os.getpid()

    def request_shutdown(self) -> None:
        if not self._shutdown.is_set() and self.bus is not None:
            self.bus.emit("shutdown_started", pid=self.up_pid)
        self._shutdown.set()

    def spawn_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task in the supervisor's task group (it ends with the supervisor)."""
        assert self._group is not None
        return self._group.create_task(coro)

    def background(self, chore: Coroutine[Any, Any, None]) -> None:
        """Run a chore (alert, reload, dependents' restart) until done or shutdown."""
        self.chores.background(chore)

    async def _stop_all(self) -> None:
        """Stop every service in reverse dependency order, a layer at a time."""
        for runner in self.runners.values():
            if runner.tree is None:
                runner.stop_nowait()  # nothing new starts while we stop
        for layer in reversed(self.graph.layers()):
            runners = [self.runners[sid] for sid in layer if sid in self.runners]
            for runner in runners:
                runner.stop_nowait()
            await asyncio.gather(*(self.wait_for(_resting(r)) for r in runners))

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Until ``condition()`` holds, checked after every change of any service."""
        while not condition():
            changed = self._changed
            await changed.wait()

    # ------------------------------------------------------------------------ the runners

    def _add_runner(self, spec: ServicePlan) -> ServiceRunner:
        assert self._group is not None and self._ctx is not None
        runner = ServiceRunner(spec, self._ctx)
        self.runners[spec.id] = runner
        self._tasks[spec.id] = self._group.create_task(runner.run(), name=f"runner:{spec.id}")
        if self.console is not None:
            self.console.set_names(list(self.runners))
        return runner

    def _remove_runner(self, sid: str) -> None:
        self._tasks.pop(sid).cancel()
        del self.runners[sid]

    def _start(self, order: Iterable[str], ids: set[str]) -> None:
        """Post every service's gate, then start ``ids`` in ``order`` (dependencies first)."""
        for sid in order:
            if sid in self.runners:
                self._refresh_gate(sid)
        for sid in order:
            if sid in ids and sid in self.runners and not self._shutdown.is_set():
                self.runners[sid].start()

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_MARKERS}
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["MPSV3_STATE_DIR"] = str(self.state_dir)
        env["MPSV3_PYTHON"] = sys.executable
        return env

    def _lookup(self, sid: str) -> tuple[State, str | None] | None:
        runner = self.runners.get(sid)
        return None if runner is None else (runner.state, runner.reason)

    def _refresh_gate(self, sid: str) -> None:
        runner = self.runners.get(sid)
        if runner is not None and self.graph.has(sid):
            ok, why = gate(self.graph.dependencies(sid), self._lookup)
            runner.deps_changed(ok, why)

    def _on_change(self, runner: ServiceRunner, old: Model) -> None:
        sid, new = runner.spec.id, runner.model
        if (new.state, new.reason) != (old.state, old.reason) and self.graph.has(sid):
            for dependent in self.graph.dependents(sid, transitive=False):
                self._refresh_gate(dependent)
        if new.state is State.QUARANTINED and old.state is not State.QUARANTINED:
            self.chores.alert(runner)
        if new.state is not old.state and new.state in SATISFIES_DEPENDENTS:
            self.rollouts.became_ready(runner)
        self._changed.set()
        self._changed = asyncio.Event()
        if not self._stack_ready_sent:
            self._check_stack_ready()

    def _check_stack_ready(self) -> None:
        wanted = [self.runners[sid] for sid in self.selected if sid in self.runners]
        if wanted and all(r.model.satisfies_dependents for r in wanted):
            self._stack_ready_sent = True
            assert self.bus is not None
            urls = [
                r.spec.readiness.check.url for r in wanted
                if r.spec.readiness is not None and r.spec.readiness.check.kind == "http_get"
            ]
            after_ms = round((time.time() - self.started_at) * 1000, 1)
            self.bus.emit("stack_ready", after_ms=after_ms, ready=len(wanted), total=len(self.runners), urls=urls)

    def on_files_changed(self, service: str, paths: list[str]) -> None:
        self.rollouts.files_changed(service, paths)

    def roll(self, template: str, ids: list[str], reason: str) -> bool:
        """A rolling restart of ``ids`` (see :mod:`mpsv3.engine.rollouts`)."""
        return self.rollouts.roll(template, ids, reason)

    # -------------------------------------------------------------------------- status

    def status(self, usage: dict[str, Usage | None] | None = None, own: Usage | None = None) -> dict[str, Any]:
        """The status document (``docs/status.schema.json``); figures only when sampled."""
        usage = usage or {}
        runners = [self.runners[s.id] for s in self.plan.services if s.id in self.runners]
        return {
            "supervisor": {
                "pid": self.up_pid,
                "engine_pid": os.getpid(),
                "name": self.plan.name,
                "config": self.plan.config_path,
                "started_at": utc_timestamp(self.started_at),
                "version": __version__,
                "containment": self.containment.mechanisms if self.containment is not None else [],
                "keeper_pid": self.containment.keeper_pid if self.containment is not None else None,
                "reclaimed": list(self.chores.reclaimed),
                **as_fields(own),
            },
            "services": [r.status(usage.get(r.spec.id)) for r in runners],
        }

    async def snapshot(self) -> dict[str, Any]:
        """The status document with CPU and memory, measured off the loop."""
        runners = list(self.runners.values())
        for runner in runners:
            runner.prepare_sample()
        sampler = self._ctx.sampler if self._ctx is not None else None

        keeper = [self.containment.keeper_pid] if self.containment and self.containment.keeper_pid else []

        def measure() -> tuple[dict[str, Usage | None], Usage | None]:
            figures = {r.spec.id: r.sample_usage() for r in runners}
            return figures, sampler.supervisor(keeper) if sampler is not None else None

        figures, own = await asyncio.to_thread(measure)
        return self.status(figures, own)

    # -------------------------------------------------------------------------- reload

    def reload_config(self, replicas: dict[str, int] | None = None) -> dict[str, list[str]]:
        """Re-read the config and apply the difference; raises ConfigInvalid and changes nothing."""
        new = self._loader(self.plan, dict(self.plan.replicas, **(replicas or {})))
        if new.name != self.plan.name or new.state_dir != self.plan.state_dir:
            from mpsv3.errors import ConfigError, ConfigInvalid

            raise ConfigInvalid([
                ConfigError(self.plan.config_path, 0, f"{key} changed from {old} to {now}: restart the supervisor to apply it")
                for key, old, now in (("name", self.plan.name, new.name), ("state_dir", self.plan.state_dir, new.state_dir))
                if old != now
            ])
        old = self.plan
        self.plan, self.graph = new, DependencyGraph.from_plan(new)
        reload = plan_reload(old, new, lambda sid: (self.runners[sid].state, self.runners[sid].wanted), self.selected)
        self.background(self._apply(reload))
        return reload.summary()

    async def _apply(self, reload: ReloadPlan) -> None:
        """Stop what went away or changed, then start what is new or changed, in order."""
        for sid in reload.remove + reload.replace:
            runner = self.runners[sid]
            runner.stop_nowait()
            await self.wait_for(_resting(runner))
            self._remove_runner(sid)
        for sid in reload.update:
            self.runners[sid].update_probes(self.plan.service(sid))
        for sid in reload.add + reload.replace:
            self._add_runner(self.plan.service(sid))
        self._start(self.graph.start_order(), set(reload.start))
        self.chores.services_changed()
        self._index()

    def _index(self) -> None:
        """Tell client commands where this instance is (``control/instances.py``)."""
        plan = self.plan
        stat = (plan.config_stat[0], plan.config_stat[1]) if len(plan.config_stat) == 2 else (0, 0)
        try:
            instances.record(plan.name, plan.config_path, plan.state_dir, [s.id for s in plan.services],
                             plan.overrides, stat)
        except OSError as exc:
            self.trouble.report("index", exc)


def _resting(runner: ServiceRunner) -> Callable[[], bool]:
    return lambda: runner.resting


def _load_plan(current: StackPlan, replicas: dict[str, int]) -> StackPlan:
    """Read and validate the config file again (``reload``), with the same ``--set`` values."""
    from mpsv3.config.loader import load_config
    from mpsv3.planner import compile_plan

    config = load_config(current.config_path, current.overrides, replicas=replicas or None)
    return compile_plan(config, current.overrides, replicas)
