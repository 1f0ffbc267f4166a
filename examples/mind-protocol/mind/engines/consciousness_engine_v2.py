"""The eight consciousness engines that ws_api runs: each ticks on its own task.

Why a module of its own: this is the code the supervisor watches. Saving this file makes
mpsv3 restart ws_api (and only ws_api), which then resumes every engine's tick count from the
graph. An engine's state is small: a tick counter and an ``energy`` level that stimuli raise
and that decays back towards a baseline on every tick. ``EngineSet`` owns the engines' tasks
and the task that persists their counters as ``(:Engine)`` nodes; it lives in ws_api's event
loop and is not thread-safe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from mind.graph_store import GraphStore, GraphUnavailable
from mind.runtime import log

ENGINE_VERSION = "2.0"

#: The engines, in display order.
ENGINE_NAMES = (
    "perception",
    "attention",
    "memory",
    "emotion",
    "reasoning",
    "language",
    "planning",
    "reflection",
)

BASELINE_ENERGY = 0.5
DECAY = 0.9  # per tick, the share of the distance to the baseline that remains


@dataclass(frozen=True)
class Tick:
    """One engine step, as published to the WebSocket feed."""

    engine: str
    ticks: int
    energy: float
    at: float  # UNIX seconds

    def as_json(self) -> dict[str, object]:
        return {
            "type": "tick",
            "engine": self.engine,
            "ticks": self.ticks,
            "energy": round(self.energy, 4),
            "at": self.at,
        }


class Engine:
    """One engine: a counter and an energy level. Pure state; ``EngineSet`` drives it.

    Args:
        name: one of ``ENGINE_NAMES``.
        ticks: the count to resume from.
    """

    def __init__(self, name: str, ticks: int = 0) -> None:
        self.name = name
        self.ticks = ticks
        self.energy = BASELINE_ENERGY
        self.last_tick: float | None = None  # monotonic time of the last step

    def step(self, now: float) -> Tick:
        """Advance one tick: count it and let the energy decay towards the baseline."""
        self.ticks += 1
        self.energy = BASELINE_ENERGY + (self.energy - BASELINE_ENERGY) * DECAY
        self.last_tick = now
        return Tick(self.name, self.ticks, self.energy, time.time())

    def stimulate(self, intensity: float) -> None:
        """Raise the energy by ``intensity`` (0..1), capped at 1."""
        self.energy = min(1.0, self.energy + max(0.0, intensity))


class EngineSet:
    """The eight engines, their tick tasks and the persister; owned by ws_api's lifespan.

    Args:
        store: the graph the counters are persisted to.
        publish: called with every tick (the WebSocket hub).
        period_s: time between two ticks of one engine.
        persist_every_s: time between two writes of all counters to the graph.
    """

    def __init__(
        self,
        store: GraphStore,
        publish: Callable[[Tick], None],
        period_s: float = 0.5,
        persist_every_s: float = 1.0,
    ) -> None:
        self.store = store
        self.publish = publish
        self.period_s = period_s
        self.persist_every_s = persist_every_s
        self.engines = {name: Engine(name) for name in ENGINE_NAMES}
        self.stimuli = 0
        self.last_persist_ok: float | None = None  # monotonic time
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Resume the counters from the graph, then start every engine and the persister."""
        saved = await self.store.load_engine_counters()
        self.last_persist_ok = time.monotonic()  # the graph just answered
        for name, ticks in saved.items():
            if name in self.engines:
                self.engines[name].ticks = ticks
        resumed = sum(saved.get(name, 0) for name in ENGINE_NAMES)
        log(
            f"engines v{ENGINE_VERSION}: starting {len(self.engines)} engines, resuming {resumed} ticks"
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(engine), name=f"engine-{engine.name}")
            for engine in self.engines.values()
        ]
        self._tasks.append(loop.create_task(self._persist_forever(), name="engine-persister"))

    async def stop(self) -> None:
        """Cancel every task, then persist the final counters once."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            await self.store.save_engine_counters(self.rows())
        except GraphUnavailable as exc:
            log(f"engines: final counters not saved: {exc}")
        log("engines: stopped")

    def counters(self) -> dict[str, int]:
        """Engine name -> tick count."""
        return {name: engine.ticks for name, engine in self.engines.items()}

    def rows(self) -> list[dict[str, object]]:
        """The counters as graph rows."""
        return [
            {"name": e.name, "ticks": e.ticks, "energy": round(e.energy, 4)}
            for e in self.engines.values()
        ]

    def ticking(self, now: float) -> int:
        """How many engines ticked within the last four periods (at least two seconds)."""
        horizon = max(2.0, 4 * self.period_s)
        return sum(
            1
            for e in self.engines.values()
            if e.last_tick is not None and now - e.last_tick <= horizon
        )

    def graph_fresh(self, now: float) -> bool:
        """Whether the counters reached the graph recently (within three persist periods + 2 s)."""
        horizon = 3 * self.persist_every_s + 2.0
        return self.last_persist_ok is not None and now - self.last_persist_ok <= horizon

    async def stimulate(self, name: str, intensity: float, source: str) -> str:
        """Apply a stimulus to one engine and record it in the graph; return its id.

        Raises:
            KeyError: no engine has this name.
            GraphUnavailable: the graph is unreachable (the stimulus is not applied).
        """
        engine = self.engines[name]
        stimulus_id = await self.store.record_stimulus(name, intensity, source)
        engine.stimulate(intensity)
        self.stimuli += 1
        return stimulus_id

    async def _run(self, engine: Engine) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.period_s
            if next_at < loop.time() - self.period_s:  # fell far behind (a busy machine)
                next_at = loop.time()
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.publish(engine.step(time.monotonic()))

    async def _persist_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.persist_every_s)
            try:
                await self.store.save_engine_counters(self.rows())
            except GraphUnavailable as exc:
                if not failing:
                    log(f"engines: cannot persist counters: {exc}")
                failing = True
                continue
            if failing:
                log("engines: persisting counters again")
            failing = False
            self.last_persist_ok = time.monotonic()
