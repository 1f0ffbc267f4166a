"""Restarts that go in order: a replicated service one replica at a time, dependents by layer.

Why apart from the supervisor: both are long-running sequences (restart one, wait until it is
ready again, go on) that watch the stack through the supervisor's change notifications, and
both decide when to stop going on. The supervisor owns the runners and the graph; this module
only orders restarts among them.

- A **rolling restart** (``restart`` of a replicated service, or a watched file of one)
  restarts each replica once the one before is ready again, and halts at a replica that does
  not come back (backoff, quarantine): a bad release never takes the whole pool down.
- **Dependents** of a service restarted by a file change (``watch.restart_dependents``), or of
  a task that ran again, restart layer by layer once it is ready again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from mpsv3.engine.events import EventBus
from mpsv3.engine.runner import ServiceRunner
from mpsv3.plan import StackPlan
from mpsv3.policy.graph import DependencyGraph
from mpsv3.policy.states import State


class Stack(Protocol):
    """What the rollouts need of the supervisor."""

    @property
    def plan(self) -> StackPlan: ...
    @property
    def graph(self) -> DependencyGraph: ...
    @property
    def runners(self) -> Mapping[str, ServiceRunner]: ...
    @property
    def bus(self) -> EventBus | None: ...
    def background(self, chore: Coroutine[Any, Any, None]) -> None: ...
    async def wait_for(self, condition: Callable[[], bool]) -> None: ...


class Rollouts:
    """The ordered restarts under way in one stack."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._rolling: set[str] = set()
        self._dependents_pending: set[str] = set()

    def files_changed(self, service: str, paths: list[str]) -> None:
        """A watched file of ``service`` changed: restart it (rolling if replicated) or reload."""
        runner = self._stack.runners.get(service)
        if runner is None or runner.spec.watch is None:
            return
        watch = runner.spec.watch
        if watch.restart_dependents and watch.on_change == "restart" and runner.wanted:
            self._dependents_pending.add(service)
        members = self._stack.plan.members().get(runner.spec.template, [service])
        members = [m for m in members if m in self._stack.runners]
        if watch.on_change == "restart" and len(members) > 1:
            # Every replica sees the same change: roll the service once, one at a time.
            if self.roll(runner.spec.template, members, "reload"):
                self._emit("reload", runner.spec.template, paths=paths[:5], count=len(paths),
                           action="restart (rolling)")
            return
        runner.file_changed(paths)

    def became_ready(self, runner: ServiceRunner) -> None:
        """``runner`` satisfies its dependents again: restart them if a change asked for it."""
        sid = runner.spec.id
        rerun_task = runner.model.state is State.COMPLETED and runner.model.spawns > 1
        if sid in self._dependents_pending or rerun_task:
            self._dependents_pending.discard(sid)
            self._stack.background(self._restart_dependents(sid))

    def roll(self, template: str, ids: list[str], reason: str) -> bool:
        """Restart ``ids`` one at a time, each once the one before is ready again.

        False when a roll of ``template`` is already under way (it reads the new files and
        config as it goes, so a second one would only restart the same replicas again).
        """
        if template in self._rolling:
            return False
        self._rolling.add(template)
        self._stack.background(self._roll(template, ids, reason))
        return True

    async def _roll(self, template: str, ids: list[str], reason: str) -> None:
        try:
            for index, sid in enumerate(ids):
                runner = self._stack.runners.get(sid)
                if runner is None or not runner.wanted:
                    continue
                if not await self._restarted_and_ready(runner, reason):
                    self._emit("rollout_halted", template, replica=sid, state=runner.state.value,
                               reason=runner.reason, not_restarted=ids[index + 1 :], level="warning")
                    return
        finally:
            self._rolling.discard(template)

    async def _restart_dependents(self, sid: str) -> None:
        """After ``sid`` is ready again: restart its dependents, layer by layer, in order."""
        graph, runners = self._stack.graph, self._stack.runners
        dependents = set(graph.dependents(sid, transitive=True))
        for layer in graph.layers():
            chosen = [runners[d] for d in layer if d in dependents and d in runners]
            chosen = [r for r in chosen if r.wanted and r.state is not State.PENDING]
            await asyncio.gather(*(self._restarted_and_ready(r, "reload") for r in chosen))

    async def _restarted_and_ready(self, runner: ServiceRunner, reason: str) -> bool:
        """Restart ``runner``; once it settles, whether the new process is ready."""
        spawns = runner.model.spawns
        runner.restart(reason)
        await self._stack.wait_for(functools.partial(runner.settled_since, spawns))
        return runner.model.spawns > spawns and runner.model.satisfies_dependents

    def _emit(self, event: str, service: str, **fields: Any) -> None:
        if self._stack.bus is not None:
            self._stack.bus.emit(event, service, **fields)
