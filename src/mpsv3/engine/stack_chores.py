"""Everything around the services that ``up`` runs for its whole life: files, leftovers, the
control server, the watcher, metrics, legacy locks, alerts.

Why apart from the supervisor: these are I/O chores with no say in any service's lifecycle.
The supervisor decides; this object opens and closes what it needs, in the right order:
private folders and the event files first, leftovers of a previous run before anything
starts, and the control server, watcher, metrics and legacy-lock cleanup only after the first
services were spawned (nothing here may delay a spawn). Owned by one supervisor, on its loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpsv3 import platform
from mpsv3.engine.alerts import run_alert
from mpsv3.engine.events import EventBus
from mpsv3.engine.legacy_locks import clean_legacy_locks
from mpsv3.engine.reporter import Reporter
from mpsv3.engine.run_record import RunRecord

if TYPE_CHECKING:
    from mpsv3.engine.runner import ServiceRunner
    from mpsv3.engine.supervisor import Supervisor


class StackChores:
    """The supervisor's I/O around its services (see the module docstring)."""

    def __init__(self, supervisor: Supervisor, *, verbose: bool = False) -> None:
        self._sup = supervisor
        self.verbose = verbose
        self._bus: EventBus | None = None
        self._reporter: Reporter | None = None
        self._control: Any = None
        self._watcher: Any = None
        self._metrics: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Leftovers this supervisor ended (``status --json``: ``supervisor.reclaimed``).
        self.reclaimed: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------- files

    def open_files(self) -> EventBus:
        """The private folders, ``events.jsonl`` and ``logs/mpsv3.log``; the bus writing them."""
        plan, state_dir = self._sup.plan, self._sup.state_dir
        platform.ensure_private_dir(state_dir / "logs")
        platform.ensure_private_dir(state_dir / "run")
        self._bus = bus = EventBus(
            state_dir / "events.jsonl", max_bytes=plan.logs_max_bytes, backups=plan.logs_backups
        )
        self._reporter = reporter = Reporter(
            state_dir / "logs" / "mpsv3.log", self._sup.console,
            max_bytes=plan.logs_max_bytes, backups=plan.logs_backups, verbose=self.verbose,
        )
        bus.subscribe(reporter.on_event)
        bus.on_flush(reporter.flush)
        return bus

    def close_files(self) -> None:
        if self._bus is not None:
            self._bus.close()
        if self._reporter is not None:
            self._reporter.close()

    # --------------------------------------------------------------------- leftovers

    async def reclaim_leftovers(self, record: RunRecord) -> None:
        """Stop what a killed previous run of this instance left, before anything starts."""
        found = await asyncio.to_thread(platform.find_leftovers, self._sup.plan.name, record.load_previous())
        await self._reclaim(found, "left by a previous run of this instance")

    async def reclaim_pids(self, pids: list[int]) -> None:
        """Stop these processes of ours (leftovers holding a port) and what they started."""
        import psutil

        found = []
        for pid in pids:
            try:
                found.append(platform.Leftover(psutil.Process(pid), None, "marker"))
            except psutil.Error:
                continue
        await self._reclaim(found, "held a declared port")

    async def sweep(self) -> None:
        """At shutdown, once every service stopped: end any process of ours still alive."""
        found = await asyncio.to_thread(platform.stray_descendants)
        await self._reclaim(found, "outlived its service's stop")

    async def _reclaim(self, found: list[platform.Leftover], why: str) -> None:
        if not found:
            return
        assert self._bus is not None
        for item in found:
            self.reclaimed.append({"pid": item.pid, "service": item.service, "found_by": item.found_by})
            self._bus.emit("orphan_reclaimed", item.service, pid=item.pid, found_by=item.found_by, why=why, level="warning")
        await platform.reclaim(found)

    # --------------------------------------------------------- after the first spawns

    async def start(self) -> None:
        """The control server, the watcher, metrics and the legacy-lock cleanup."""
        await self._start_control()  # without it the stack cannot be stopped: a failure is fatal
        for name, chore in (("watcher", self._start_watcher), ("metrics", self._start_metrics),
                            ("legacy_locks", self._clean_legacy_locks)):
            try:
                chore()
            except Exception as exc:  # the supervisor's own trouble: reported, the stack runs on
                self._sup.trouble.report(f"{name}:{type(exc).__name__}", exc)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._control is not None:
            await self._control.close()
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.stop)  # its HTTP thread takes a poll tick to end

    def background(self, coro: Any, kind: str = "chore") -> None:
        """A chore task in the supervisor's task group, cancelled at shutdown.

        Its exception is reported and ends only the chore: never the supervisor.
        """
        task = self._sup.spawn_task(self._guarded(coro, kind))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coro: Any, kind: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._sup.trouble.report(f"{kind}:{type(exc).__name__}", exc)

    async def _start_control(self) -> None:
        from mpsv3.control.protocol import InstanceRef, socket_path
        from mpsv3.control.server import ControlServer
        from mpsv3.engine.verbs import dispatch

        plan = self._sup.plan
        where = InstanceRef(plan.name, Path(plan.state_dir), Path(plan.config_path))

        async def handle(request: dict[str, Any]) -> dict[str, Any]:
            return await dispatch(self._sup, request)

        self._control = ControlServer(socket_path(where), handle)
        await self._control.start()

    def _watch_table(self) -> dict[str, tuple[list[str], int]]:
        return {
            sid: (list(r.spec.watch.paths), r.spec.watch.debounce_ms)
            for sid, r in self._sup.runners.items()
            if r.spec.watch is not None
        }

    def _start_watcher(self) -> None:
        table = self._watch_table()
        if not table:
            return
        from mpsv3.engine.watcher import ChangeBatch, FileWatcher

        assert self._bus is not None
        bus = self._bus

        def on_change(batch: ChangeBatch) -> None:
            self._sup.on_files_changed(batch.service, list(batch.paths))

        def on_problem(message: str) -> None:
            bus.emit("watcher_fallback", reason=message, level="warning")

        self._watcher = FileWatcher(
            Path(self._sup.plan.root), table, excluded_dirs=[self._sup.state_dir],
            on_change=on_change, on_problem=on_problem,
        )
        self.background(self._watcher.run(), "watcher")
        bus.emit("watcher_started", services=sorted(table))

    def _start_metrics(self) -> None:
        plan = self._sup.plan
        if plan.metrics_port is None:
            return
        from mpsv3.engine.metrics import MetricsExporter

        assert self._bus is not None
        self._metrics = MetricsExporter(self._bus, list(self._sup.runners))
        self._metrics.start(plan.metrics_host, plan.metrics_port)

    def _clean_legacy_locks(self) -> None:
        assert self._bus is not None
        plan = self._sup.plan
        for verdict in clean_legacy_locks(Path(plan.root), plan.legacy_locks):
            name = "legacy_lock_removed" if verdict.action == "removed" else "legacy_lock_kept"
            level = "info" if verdict.action == "removed" else "warning"
            self._bus.emit(name, path=str(verdict.path), pid=verdict.pid, reason=verdict.reason, level=level)

    def services_changed(self) -> None:
        """After a reload: the watcher and metrics follow the new set of services."""
        if self._metrics is not None:
            self._metrics.set_services(list(self._sup.runners))
        if self._watcher is not None:
            self._watcher.update(self._watch_table())
        elif self._watch_table():
            self._start_watcher()

    # --------------------------------------------------------------------------- alerts

    def alert(self, runner: ServiceRunner) -> None:
        """A critical or core service was quarantined: run ``alert_cmd`` (the event says so)."""
        spec, plan = runner.spec, self._sup.plan
        if not plan.alert_cmd or spec.criticality not in ("critical", "core") or self._bus is None:
            return
        self.background(run_alert(
            self._bus, list(plan.alert_cmd), Path(plan.root), self._sup.base_env(),
            instance=plan.name, service=spec.id, reason=runner.reason or "",
        ))
