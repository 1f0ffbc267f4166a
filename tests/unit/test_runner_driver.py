"""The runner as a driver: effects become actions, outcomes come back as events.

The decisions are ``test_lifecycle_table.py``'s; here the real ``ServiceRunner`` runs on a real loop
against scripted process trees (``tests/fakes.py``), to check that what the lifecycle asks is
done: a spawn with the right environment, the stop routine with the service's own signal
(and SIGCONT), a log gate fed from the first line, a backoff timer, output in the log file.
Each scenario waits for a condition, never a fixed time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from fakes import (
    HANDLED_BY_DEFAULT,
    LIVENESS_TIMEOUT_S,
    FakeProbeRunner,
    FakeSpawner,
    Plan,
    cannot_spawn,
    exits,
    runs,
)
from mpsv3._compat import timeout
from mpsv3.engine.events import Event, EventBus
from mpsv3.engine.runner import ServiceRunner
from mpsv3.engine.runner_context import RunnerContext
from mpsv3.plan import (
    BackoffPlan,
    CheckPlan,
    LivenessPlan,
    ReadinessPlan,
    RestartPlan,
    ServicePlan,
    StopPlan,
)
from mpsv3.policy.states import State

RESTART = RestartPlan("on-failure", BackoffPlan(1, 2.0, 1000, 0.0), 3, 60.0)


def spec(**more: object) -> ServicePlan:
    defaults: dict[str, object] = {"env": {"OWN": "1"}, "restart": RESTART, "stop": StopPlan("SIGINT", 0.05)}
    defaults.update(more)
    return ServicePlan("svc", ("fake-service",), "/srv", **defaults)  # type: ignore[arg-type]


class Harness:
    def __init__(self, plan: ServicePlan, plans: Sequence[Plan], state_dir: Path, probes: FakeProbeRunner) -> None:
        self.bus = EventBus(None)
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.spawner = FakeSpawner(plans, self.bus)
        self.changed = asyncio.Event()

        async def no_ports(_: ServicePlan) -> str | None:
            return None

        def on_change(runner: ServiceRunner, old: object) -> None:
            self.changed.set()

        ctx = RunnerContext(
            instance="t", state_dir=state_dir, bus=self.bus, probes=probes, log_max_bytes=1 << 20, log_backups=1,
            console=None, base_env={"BASE": "1"}, check_ports=no_ports, on_change=on_change, spawn=self.spawner,
        )
        self.runner = ServiceRunner(plan, ctx)

    async def until(self, condition: Callable[[], bool]) -> None:
        async with timeout(5):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def names(self) -> list[str]:
        return [e["event"] for e in self.events if e["event"] != "state"]


def drive(tmp_path: Path, plan: ServicePlan, plans: Sequence[Plan], scenario: Callable[[Harness], object],
          probes: FakeProbeRunner | None = None) -> Harness:
    async def main() -> Harness:
        harness = Harness(plan, plans, tmp_path, probes or FakeProbeRunner())
        task = asyncio.create_task(harness.runner.run())
        try:
            await scenario(harness)  # type: ignore[misc]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return harness

    return asyncio.run(main())


def test_a_spawn_gets_the_environment_and_the_markers(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        h.runner.start()
        await h.until(lambda: h.runner.state is State.READY)

    h = drive(tmp_path, spec(), [runs()], scenario)
    env = h.spawner.calls[0].env
    assert (env["BASE"], env["OWN"], env["MPSV3_INSTANCE"], env["MPSV3_SERVICE"]) == ("1", "1", "t", "svc")
    assert h.spawner.calls[0].argv == ["fake-service"] and h.spawner.calls[0].cwd == Path("/srv")


def test_a_stop_uses_the_services_signal_then_sigcont_then_sigkill(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        h.runner.start()
        await h.until(lambda: h.runner.state is State.READY)
        h.runner.stop_nowait()
        await h.until(lambda: h.runner.resting)

    h = drive(tmp_path, spec(), [Plan(handles=HANDLED_BY_DEFAULT | {"SIGINT"})], scenario)
    assert h.spawner.trees[0].received == ["SIGINT", "SIGCONT", "SIGKILL"]
    assert h.names() == ["spawned", "ready", "stopping", "exited", "stopped"]
    assert h.runner.last_exit is not None and h.runner.last_exit.signal == "SIGKILL"


def test_a_crash_backs_off_on_a_real_timer_and_respawns(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        h.runner.start()
        await h.until(lambda: len(h.spawner.trees) == 2 and h.runner.state is State.READY)

    h = drive(tmp_path, spec(), [exits(1), runs()], scenario)
    assert h.names() == ["spawned", "ready", "exited", "backoff", "restarting", "spawned", "ready"]
    assert h.runner.model.failures == 1 and h.runner.model.restarts == 1


def test_a_log_gate_sees_the_very_first_line(tmp_path: Path) -> None:
    gate = ReadinessPlan(CheckPlan("log", pattern="^up$"), 5.0, 100, 2.0)

    async def scenario(h: Harness) -> None:
        h.runner.start()
        await h.until(lambda: h.runner.state is State.READY)

    drive(tmp_path, spec(readiness=gate), [runs("up")], scenario)
    assert (tmp_path / "logs" / "svc.log").read_text().endswith("up\n")


def test_liveness_failures_restart_through_the_stop_routine(tmp_path: Path) -> None:
    liveness = LivenessPlan(CheckPlan("exec", cmd=("check",)), 0.001, LIVENESS_TIMEOUT_S, 2)

    async def scenario(h: Harness) -> None:
        h.runner.start()
        await h.until(lambda: len(h.spawner.trees) == 2 and h.runner.state is State.READY)

    probes = FakeProbeRunner(liveness=["down", "down"])
    h = drive(tmp_path, spec(liveness=liveness), [runs(), runs()], scenario, probes)
    assert h.spawner.trees[0].received == ["SIGINT"]
    restarting = [e for e in h.events if e["event"] == "restarting"]
    assert [e["reason"] for e in restarting] == ["liveness"]


def test_a_spawn_error_is_reported_and_backs_off(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        h.runner.start()
        await h.until(lambda: h.runner.state is State.READY)

    h = drive(tmp_path, spec(), [cannot_spawn("cannot start 'x': No such file"), runs()], scenario)
    assert h.names()[:3] == ["spawn_failed", "backoff", "restarting"]


def test_new_probes_apply_without_a_restart(tmp_path: Path) -> None:
    liveness = LivenessPlan(CheckPlan("exec", cmd=("check",)), 0.001, LIVENESS_TIMEOUT_S, 1)

    async def scenario(h: Harness) -> None:
        h.runner.start()
        await h.until(lambda: h.runner.state is State.READY)
        h.runner.update_probes(spec(liveness=liveness))
        await h.until(lambda: len(h.spawner.trees) == 2)

    probes = FakeProbeRunner(liveness=["down"])
    h = drive(tmp_path, spec(), [runs(), runs()], scenario, probes)
    assert "restarting" in h.names() and probes.checks[0] == "liveness"
