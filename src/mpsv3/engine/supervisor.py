"""The supervisor: the lease, the runners, the dependency gate, the watcher, shutdown.

Why one object: it is the single owner of everything that lives as long as ``mpsv3 up`` —
the lease, the event bus, one runner per service, the file watcher, the control server —
and the only place that knows how they relate (who depends on whom, what a reload changes,
in which order things stop). All of it runs on one asyncio loop; nothing here blocks it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any

import psutil

from mpsv3 import __version__, platform
from mpsv3._compat import TaskGroup, timeout
from mpsv3.config.schema import Config, ServiceSpec
from mpsv3.engine.console import Console
from mpsv3.engine.events import EventBus, utc_timestamp
from mpsv3.engine.legacy_locks import clean_legacy_locks
from mpsv3.engine.probes import ProbeRunner
from mpsv3.engine.reporter import Reporter
from mpsv3.engine.run_record import RuntimeState
from mpsv3.engine.runner import RunnerContext, ServiceRunner
from mpsv3.errors import EXIT_OK, EXIT_TEMPFAIL, ConfigError, ConfigInvalid, MpsvError
from mpsv3.platform import SingletonLease
from mpsv3.policy.graph import DependencyGraph
from mpsv3.policy.states import RESTING, State

#: Variables the supervisor strips from what it passes on, so that a supervisor started by
#: another one (tests, benchmarks) never marks its services as the outer one's.
INHERITED_MARKERS = ("MPSV3_INSTANCE", "MPSV3_SERVICE", "NOTIFY_SOCKET")


class Supervisor:
    """Supervises one stack until ``down`` or a stop signal.

    Args:
        config: the validated config.
        overrides: the ``--set`` values (kept for ``reload``).
        only: start only these services and their dependencies (``up --only``).
        console: where service output and supervisor lines are echoed; None for none.
    """

    def __init__(
        self,
        config: Config,
        *,
        overrides: dict[str, str] | None = None,
        only: Sequence[str] = (),
        console: Console | None = None,
    ) -> None:
        self.config = config
        self.overrides = dict(overrides or {})
        self.graph = DependencyGraph.from_services(config.services)
        unknown = [sid for sid in only if sid not in self.graph.start_order()]
        if unknown:
            valid = ", ".join(self.graph.start_order())
            raise MpsvError(f"--only: unknown service {', '.join(unknown)} (valid: {valid})", 2)
        self.selected = set(self.graph.closure(only) if only else self.graph.start_order())
        self.console = console
        self.state_dir = config.state_dir
        self.lease = SingletonLease(config.name)
        self.runners: dict[str, ServiceRunner] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.started_at = time.time()
        self._dependency_events: dict[str, asyncio.Event] = {}
        self._any_change: asyncio.Event | None = None
        self._shutdown: asyncio.Event | None = None
        self._group: TaskGroup | None = None
        self.bus: EventBus | None = None
        self.runtime: RuntimeState | None = None
        self._watcher: Any = None
        self._metrics: Any = None
        self._pending_dependents_restart: set[str] = set()
        self._chores: set[asyncio.Task[None]] = set()
        self._ctx: RunnerContext | None = None
        self._probes: ProbeRunner | None = None

    # ------------------------------------------------------------------------- lifecycle

    async def run(self) -> int:
        """Acquire the lease, start everything, serve until shutdown; the exit code."""
        if not self.lease.acquire():
            holder = self.lease.holder_pid()
            who = f"PID {holder}" if holder else "another process"
            raise MpsvError(f"instance '{self.config.name}' is already supervised by {who}", EXIT_TEMPFAIL)
        try:
            return await self._run_leased()
        finally:
            self.lease.release()

    async def _run_leased(self) -> int:
        loop = asyncio.get_running_loop()
        platform.prepare_supervisor(loop)
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "run").mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir / "run", 0o700)
        self.bus = bus = EventBus(self.state_dir / "events.jsonl")
        reporter = Reporter(self.state_dir / "logs" / "mpsv3.log", self.console)
        bus.subscribe(reporter.on_event)
        bus.on_flush(reporter.flush)
        self._shutdown = asyncio.Event()
        self._any_change = asyncio.Event()
        self._install_signal_handlers(loop)  # before anything slow: a stop during start-up is clean
        bus.emit("lease_acquired", pid=os.getpid(), instance=self.config.name, config=str(self.config.path))
        self._clean_legacy_locks()
        self.runtime = RuntimeState(self.state_dir / "run" / "state.json", self.config.name)
        await self._reclaim_leftovers()
        self._probes = probes = ProbeRunner()
        try:
            async with TaskGroup() as group:
                self._group = group
                for spec in self.config.services:
                    if spec.id in self.selected:
                        self._add_runner(spec)
                await self._start_control_plane()
                self._start_watcher()
                for sid in self.graph.start_order():
                    if sid in self.runners and not self._shutdown.is_set():
                        self.runners[sid].start()
                await self._shutdown.wait()
                await self._stop_all()
                for task in [*self.tasks.values(), *self._chores]:
                    task.cancel()
                await self._stop_control_plane()
        finally:
            await probes.aclose()
            bus.emit("shutdown", pid=os.getpid())
            self.runtime.clear()
            bus.close()
            reporter.close()
        return EXIT_OK

    def _background(self, chore: Coroutine[Any, Any, None]) -> None:
        """Run a chore (watcher, alert, reload) in the supervisor's task group until shutdown."""
        assert self._group is not None
        task = self._group.create_task(chore)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def request_shutdown(self) -> None:
        if self._shutdown is not None:
            self._shutdown.set()

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        for signame in ("SIGINT", "SIGTERM", "SIGBREAK"):
            signum = getattr(signal, signame, None)
            if signum is None:
                continue
            try:
                loop.add_signal_handler(signum, self.request_shutdown)
            except (NotImplementedError, RuntimeError):  # Windows' loops have no signal handlers
                signal.signal(signum, lambda *_: loop.call_soon_threadsafe(self.request_shutdown))

    async def _stop_all(self) -> None:
        """Stop every service in reverse dependency order, a layer at a time."""
        for runner in self.runners.values():
            if runner.tree is None:
                runner.stop_nowait()  # nothing new starts while we stop
        for layer in reversed(self.graph.layers()):
            runners = [self.runners[sid] for sid in layer if sid in self.runners]
            for runner in runners:
                runner.stop_nowait()
            await asyncio.gather(*(self._wait_resting(r) for r in runners))

    async def _wait_resting(self, runner: ServiceRunner) -> None:
        while not (runner.state in RESTING and runner.tree is None):
            await self.wait_any_change()

    async def wait_any_change(self) -> None:
        assert self._any_change is not None
        event = self._any_change
        await event.wait()

    # ------------------------------------------------------------------------ the runners

    def _add_runner(self, spec: ServiceSpec) -> ServiceRunner:
        assert self.bus is not None and self._group is not None and self._probes is not None
        if self._ctx is None:
            self._ctx = RunnerContext(
                instance=self.config.name,
                state_dir=self.state_dir,
                bus=self.bus,
                probes=self._probes,
                logs=self.config.stack.logs,
                console=self.console,
                base_env=self._base_env(),
                dependencies_ready=self._dependencies_ready,
                wait_dependencies_changed=self._wait_dependencies_changed,
                check_ports=self._check_ports,
                on_change=self._on_runner_change,
                on_quarantine=self._on_quarantine,
            )
        runner = ServiceRunner(spec, self._ctx)
        self.runners[spec.id] = runner
        self._dependency_events[spec.id] = asyncio.Event()
        self.tasks[spec.id] = self._group.create_task(runner.run(), name=f"runner:{spec.id}")
        if self.console is not None:
            self.console.set_names(list(self.runners))
        return runner

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_MARKERS}
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["MPSV3_STATE_DIR"] = str(self.state_dir)
        env["MPSV3_PYTHON"] = sys.executable
        return env

    def _dependencies_ready(self, spec: ServiceSpec) -> tuple[bool, str]:
        for dep in spec.requires:
            runner = self.runners.get(dep)
            if runner is None:
                return False, f"waiting for {dep} (not supervised)"
            if not runner.satisfies_dependents:
                detail = runner.state.value
                if runner.state is State.QUARANTINED:
                    detail = f"quarantined: {runner.reason}"
                return False, f"waiting for {dep} ({detail})"
        return True, ""

    async def _wait_dependencies_changed(self, spec: ServiceSpec) -> None:
        event = self._dependency_events[spec.id]
        await event.wait()
        event.clear()

    def _on_runner_change(self, runner: ServiceRunner) -> None:
        sid = runner.spec.id
        # A service removed by a reload is no longer in the graph while it stops.
        dependents = self.graph.dependents(sid, transitive=False) if self.graph.has(sid) else []
        for dependent in dependents:
            event = self._dependency_events.get(dependent)
            if event is not None:
                event.set()
        if self._any_change is not None:
            self._any_change.set()
            self._any_change = asyncio.Event()
        if self.runtime is not None:
            self.runtime.mark_dirty(self.runners)
        if runner.state is State.READY and runner.spec.id in self._pending_dependents_restart:
            self._pending_dependents_restart.discard(runner.spec.id)
            assert self._group is not None
            self._background(self._restart_dependents(runner.spec.id))

    def _on_quarantine(self, runner: ServiceRunner, reason: str) -> None:
        alert_cmd = self.config.stack.alert_cmd
        if alert_cmd and runner.spec.criticality in ("critical", "core") and self._group is not None:
            self._background(self._run_alert(list(alert_cmd), runner.spec.id, reason))

    async def _run_alert(self, argv: list[str], service: str, reason: str) -> None:
        assert self.bus is not None
        env = dict(self._base_env(), MPSV3_ALERT_SERVICE=service, MPSV3_ALERT_REASON=reason,
                   MPSV3_ALERT_INSTANCE=self.config.name)
        try:
            tree = await platform.spawn(argv, self.config.root, env)
        except platform.SpawnError as exc:
            self.bus.emit("alert", service, level="alert", reason=reason, alert_cmd_error=str(exc))
            return
        self.bus.emit("alert", service, level="alert", reason=reason, alert_cmd_pid=tree.pid)
        drain = asyncio.ensure_future(tree.output.read())
        try:
            async with timeout(30):
                await tree.wait()
        except (asyncio.TimeoutError, TimeoutError):
            await platform.terminate(tree, "SIGTERM", 2)
        finally:
            drain.cancel()

    async def _check_ports(self, spec: ServiceSpec) -> str | None:
        """None when every declared port is free (leftovers of ours are reclaimed first)."""
        if not spec.ports:
            return None
        assert self.bus is not None
        for port in spec.ports:
            holders = await asyncio.to_thread(platform.port_holders, port)
            for pid, cmdline in holders:
                if await self._reclaim_if_ours(pid):
                    continue
                message = f"port {port} is held by PID {pid} ({cmdline}), not ours"
                self.bus.emit("port_conflict", spec.id, port=port, pid=pid, cmdline=cmdline, level="error")
                return message
        return None

    async def _reclaim_if_ours(self, pid: int) -> bool:
        assert self.bus is not None
        proc = await asyncio.to_thread(_own_process, pid, self.config.name)
        if proc is None:
            return False
        procs = [proc]
        for reclaimed in await platform.reclaim(procs):
            self.bus.emit("orphan_reclaimed", pid=reclaimed, why="held a declared port")
        return True

    # ----------------------------------------------------------------- start-up chores

    def _clean_legacy_locks(self) -> None:
        assert self.bus is not None
        patterns = self.config.stack.legacy_locks
        if not patterns:
            return
        for verdict in clean_legacy_locks(self.config.root, patterns):
            name = "legacy_lock_removed" if verdict.action == "removed" else "legacy_lock_kept"
            level = "info" if verdict.action == "removed" else "warning"
            self.bus.emit(name, path=str(verdict.path), pid=verdict.pid, reason=verdict.reason, level=level)

    async def _reclaim_leftovers(self) -> None:
        assert self.bus is not None and self.runtime is not None
        records = self.runtime.load_previous()
        procs = await asyncio.to_thread(platform.find_leftovers, self.config.name, records)
        if procs:
            for pid in await platform.reclaim(procs):
                self.bus.emit("orphan_reclaimed", pid=pid, why="left by a previous run of this instance")

    # ------------------------------------------------------------------ the file watcher

    def _watch_table(self) -> dict[str, tuple[list[str], int]]:
        return {
            sid: (list(r.spec.watch.paths), r.spec.watch.debounce_ms)
            for sid, r in self.runners.items()
            if r.spec.watch is not None
        }

    def _start_watcher(self) -> None:
        table = self._watch_table()
        if not table:
            return
        from mpsv3.engine.watcher import FileWatcher

        assert self.bus is not None
        self._watcher = FileWatcher(
            self.config.root,
            table,
            excluded_dirs=[self.state_dir],
            on_change=self._on_files_changed,
            on_problem=self._on_watcher_problem,
        )
        self._background(self._watcher.run())
        self.bus.emit("watcher_started", services=sorted(table))

    def _on_watcher_problem(self, message: str) -> None:
        assert self.bus is not None
        self.bus.emit("watcher_fallback", reason=message, level="warning")

    def _on_files_changed(self, batch: Any) -> None:
        runner = self.runners.get(batch.service)
        if runner is None or runner.spec.watch is None:
            return
        if runner.spec.watch.restart_dependents and runner.spec.watch.on_change == "restart" and runner.wanted:
            self._pending_dependents_restart.add(runner.spec.id)
        runner.file_changed(list(batch.paths))

    async def _restart_dependents(self, sid: str) -> None:
        """After ``sid`` is ready again: restart its dependents, layer by layer, in order."""
        dependents = set(self.graph.dependents(sid, transitive=True))
        for layer in self.graph.layers():
            runners = [self.runners[d] for d in layer if d in dependents and d in self.runners]
            runners = [r for r in runners if r.wanted]
            for runner in runners:
                runner.restart("reload")
            await asyncio.gather(*(self._wait_ready_or_resting(r) for r in runners))

    async def _wait_ready_or_resting(self, runner: ServiceRunner) -> None:
        await self.wait_any_change()  # let the restart begin
        while not (runner.state is State.READY or runner.state in RESTING or runner.state is State.BACKOFF):
            await self.wait_any_change()

    # ------------------------------------------------------------- control plane + metrics

    async def _start_control_plane(self) -> None:
        from mpsv3.control.protocol import socket_path
        from mpsv3.control.server import ControlServer

        self._control = ControlServer(socket_path(self.config), self.handle)
        await self._control.start()
        metrics = self.config.stack.metrics
        if metrics is not None:
            from mpsv3.engine.metrics import MetricsExporter

            assert self.bus is not None
            self._metrics = MetricsExporter(self.bus, list(self.runners))
            self._metrics.start(metrics.host, metrics.port)

    async def _stop_control_plane(self) -> None:
        await self._control.close()
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.stop)  # its HTTP thread takes a poll tick to end

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request -> one reply (``{"ok": ..., "result"|"error": ...}``)."""
        from mpsv3.engine.verbs import dispatch

        return await dispatch(self, request)

    def status(self) -> dict[str, Any]:
        return {
            "supervisor": {
                "pid": os.getpid(),
                "name": self.config.name,
                "config": str(self.config.path),
                "started_at": utc_timestamp(self.started_at),
                "version": __version__,
            },
            "services": [self.runners[s.id].status() for s in self.config.services if s.id in self.runners],
        }

    # ------------------------------------------------------------------------- reload

    def reload_config(self) -> dict[str, list[str]]:
        """Re-read the config and apply the difference; raises ConfigInvalid and changes nothing."""
        from mpsv3.config.loader import load_config

        new = load_config(self.config.path, self.overrides)
        problems = [
            ConfigError(str(self.config.path), 0, f"{key} changed from {old} to {now}: restart the supervisor to apply it")
            for key, old, now in (
                ("name", self.config.name, new.name),
                ("state_dir", self.config.state_dir, new.state_dir),
            )
            if old != now
        ]
        if problems:
            raise ConfigInvalid(problems)
        return self._apply(new)

    def _apply(self, new: Config) -> dict[str, list[str]]:
        old_ids = set(self.runners)
        new_specs = {s.id: s for s in new.services}
        removed = [sid for sid in self.graph.stop_order() if sid in old_ids and sid not in new_specs]
        added = [s.id for s in new.services if s.id not in old_ids and (s.id in self.selected or not self._only)]
        changed = [sid for sid in old_ids & set(new_specs) if self.runners[sid].spec != new_specs[sid]]
        self.config = new
        self.graph = DependencyGraph.from_services(new.services)
        assert self._group is not None
        self._background(self._apply_changes(removed, added, changed, new_specs))
        return {"added": added, "removed": removed, "changed": sorted(changed)}

    @property
    def _only(self) -> bool:
        return self.selected != set(self.graph.start_order())

    async def _apply_changes(
        self, removed: list[str], added: list[str], changed: list[str], specs: dict[str, ServiceSpec]
    ) -> None:
        """Stop what went away or changed, then start what is new or changed, in order.

        A changed service that an operator had stopped stays stopped (with its new config).
        """
        was_wanted = {sid: self.runners[sid].wanted for sid in changed}
        for sid in removed + changed:
            runner = self.runners[sid]
            runner.stop_nowait()
            await self._wait_resting(runner)
            self.tasks.pop(sid).cancel()
            del self.runners[sid]
            self._dependency_events.pop(sid, None)
        self.selected.update(added)
        for sid in self.graph.start_order():
            if sid in added or sid in changed:
                runner = self._add_runner(specs[sid])
                if was_wanted.get(sid, True):
                    runner.start()
        if self._metrics is not None:
            self._metrics.set_services(list(self.runners))
        if self._watcher is not None:
            self._watcher.update(self._watch_table())
        elif self._watch_table():
            self._start_watcher()
        for runner in self.runners.values():
            self._dependency_events[runner.spec.id].set()


def _own_process(pid: int, instance: str) -> psutil.Process | None:
    """The process ``pid`` if it carries this instance's marker (a leftover of ours), else None."""
    try:
        proc = psutil.Process(pid)
        if proc.environ().get("MPSV3_INSTANCE") == instance:
            return proc
    except (psutil.Error, OSError):
        return None
    return None
