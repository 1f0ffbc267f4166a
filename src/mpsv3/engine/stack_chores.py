"""Everything around the services that ``up`` runs for its whole life: files, leftovers, the
control server (and what its followers follow: the console, the events), the watcher,
metrics, legacy locks, alerts, the systemd notify protocol.

Why apart from the supervisor: these are I/O chores with no say in any service's lifecycle.
The supervisor decides; this object opens and closes what it needs, in the right order:
private folders and the event files first, leftovers of a previous run before anything
starts, and the control server, watcher, metrics and legacy-lock cleanup only after the first
services were spawned (nothing here may delay a spawn). Owned by one supervisor, on its loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpsv3 import platform
from mpsv3.engine.alerts import run_alert
from mpsv3.engine.console import ConsoleFollower
from mpsv3.engine.events import Event, EventBus
from mpsv3.engine.legacy_locks import clean_legacy_locks
from mpsv3.engine.reporter import Reporter
from mpsv3.engine.run_record import RunRecord
from mpsv3.engine.sd_notify import Entry, NotifyReporter, from_environment
from mpsv3.platform.containment import keeper_pid

if TYPE_CHECKING:
    from mpsv3.engine.runner import ServiceRunner
    from mpsv3.engine.supervisor import Supervisor

#: Events an ``events`` follower may have waiting; past that its stream ends with an error.
EVENTS_BACKLOG = 10_000


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
        self._notify: NotifyReporter | None = None
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
        if self._sup.console is not None:  # up -d: the console is logs/console.log
            self._sup.console.rotate_file(state_dir / "logs" / "console.log", plan.logs_max_bytes, plan.logs_backups)
        self._start_notify(bus)
        return bus

    def close_files(self) -> None:
        if self._notify is not None:
            self._notify.close()
        if self._bus is not None:
            self._bus.close()
        if self._reporter is not None:
            self._reporter.close()

    # --------------------------------------------------------------- systemd notify

    def _start_notify(self, bus: EventBus) -> None:
        """Speak the notify protocol when systemd gave us a socket (``NOTIFY_SOCKET``)."""
        keeper = keeper_pid()
        pids = [os.getpid(), *([keeper] if keeper is not None else [])]
        self._notify = from_environment(os.environ, pids=pids, entries=self._entries, settled=self._settled)
        if self._notify is not None:
            bus.subscribe(self._notify.on_event)
            self._notify.start(asyncio.get_running_loop())

    def _entries(self) -> list[Entry]:
        sup, selected = self._sup, self._sup.selected
        runners = [sup.runners[s.id] for s in sup.plan.services if s.id in selected and s.id in sup.runners]
        return [Entry(r.spec.id, r.state.value, r.status(None)["next_restart_in_s"]) for r in runners]

    def _settled(self) -> bool:
        """Every wanted service ``up`` started runs the current config and is ready."""
        sup = self._sup
        for sid in sup.selected:
            runner = sup.runners.get(sid)
            if runner is None or runner.spec != sup.plan.service(sid):
                return False  # not yet added, or still the old config's (being stopped)
            if runner.wanted and not runner.model.satisfies_dependents:
                return False
        return True

    # --------------------------------------------------------------------- leftovers

    async def reclaim_leftovers(self, record: RunRecord) -> None:
        """Stop what a killed previous run of this instance left, before anything starts.

        Nothing to look for when the previous run ended cleanly (its record is gone); then
        this costs no scan of the machine's processes. The record begins before any spawn.
        """
        previous = record.load_previous()
        if previous is not None:
            found = await asyncio.to_thread(platform.find_leftovers, self._sup.plan.name, previous)
            await self._reclaim(found, "left by a previous run of this instance")
        record.begin()

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

        self._control = ControlServer(socket_path(where), handle, streamer=self._follow)
        await self._control.start()

    async def _follow(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The streaming verbs: ``attach`` (the console) and ``events`` (status, then events)."""
        stream = self._follow_console() if request.get("cmd") == "attach" else self._follow_events()
        async for message in stream:
            yield message

    def _header(self) -> dict[str, Any]:
        return {"instance": self._sup.plan.name, "pid": self._sup.up_pid, "engine_pid": os.getpid()}

    async def _follow_console(self) -> AsyncIterator[dict[str, Any]]:
        console = self._sup.console
        if console is None:
            yield {"ok": False, "error": "this supervisor runs with --quiet: it has no console to follow "
                   "(mpsv3 logs -f follows the log files)"}
            return
        follower = ConsoleFollower(asyncio.get_running_loop())
        console.follow(follower)  # before the reply: no line falls between the two
        try:
            yield {"ok": True, "result": self._header()}
            while (data := await follower.read()) is not None:
                yield {"text": data.decode("utf-8", "replace")}
        finally:
            console.unfollow(follower)

    async def _follow_events(self) -> AsyncIterator[dict[str, Any]]:
        assert self._bus is not None
        queue: asyncio.Queue[Event] = asyncio.Queue()
        lost: list[bool] = []

        def on_event(event: Event) -> None:
            if queue.qsize() >= EVENTS_BACKLOG:
                lost.append(True)
            else:
                queue.put_nowait(event)

        unsubscribe = self._bus.subscribe(on_event)  # with the snapshot below, in one step
        try:
            selected = [s.id for s in self._sup.plan.services if s.id in self._sup.selected]
            yield {"ok": True, "result": {**self._header(), "status": self._sup.status(), "selected": selected}}
            while not (lost and queue.empty()):
                yield {"event": await queue.get()}
            yield {"error": f"this follower fell behind by {EVENTS_BACKLOG} events; the stream ends"}
        finally:
            unsubscribe()

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
