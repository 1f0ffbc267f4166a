"""``ServiceRunner`` replayed through scripted histories, honcho-style, with fake processes.

Each row of ``HISTORIES`` is one service history: what each spawn does (``tests/fakes.py``),
what the operator or the watcher does when a given event is emitted, and the states and key
events the runner must produce. The runner is the real one; only the seams of its
``RunnerContext`` are fakes, and the backoff timers are real asyncio timers of a few
milliseconds. An operator step runs on the loop right after its trigger (``call_soon``), that
is, at the runner's next suspension point, as a command from another task would.

Notation. States: ``"backoff"``, or ``"backoff: <reason>"`` to check the reason too. Events:
``spawned``, ``exited <code|signal>``, ``backoff <delay_s> #<attempt>``, ``restarting
<reason>``, ``quarantined``, ``released``, ``spawn_failed``, ``stopped``, ``reload``. Triggers:
an event name (``"ready"``) or a state entered (``"state=backoff"``), with ``#n`` for the n-th
occurrence (``"spawned#2"``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fakes import (
    FakeProbeRunner,
    FakeSpawner,
    Plan,
    cannot_spawn,
    exits,
    killed_by,
    runs,
    stubborn,
)
from mpsv3._compat import timeout
from mpsv3.config.schema import LogsSpec, ServiceSpec
from mpsv3.engine.events import Event, EventBus
from mpsv3.engine.runner import RunnerContext, ServiceRunner
from mpsv3.policy.states import ALLOWED, State

#: How long a history may take to produce its expected states before it is judged as is.
SETTLE_S = 1.0
#: After the expected states: how long nothing more may happen (a respawn would, in ~1-5 ms).
QUIET_S = 0.03
#: The guard around each whole history.
GUARD_S = 5.0

NO_SUCH_FILE = "cannot start 'fake-service': No such file or directory"
PORT_HELD = "port 8080 is held by PID 42 (nc -l 8080), not ours"
LOG_READY = {"readiness": {"log": {"pattern": "up"}}}
WATCHED = {"watch": {"paths": ["app/*.py"]}}
WATCHED_LOG_READY = {**LOG_READY, **WATCHED}
SLOW_BACKOFF = {"restart": {"backoff": {"base_ms": 60000, "max_ms": 60000}}}

Action = Callable[[ServiceRunner], None]


def stop(runner: ServiceRunner) -> None:
    runner.stop_nowait()


def start(runner: ServiceRunner) -> None:
    runner.start()


def restart(runner: ServiceRunner) -> None:
    runner.restart("manual")


def change(runner: ServiceRunner) -> None:
    runner.file_changed(["app/main.py"])


@dataclass(frozen=True)
class History:
    """One scripted history and what the runner must make of it.

    ``states`` is the states entered, joined by `` -> ``; ``events`` the key events, joined
    by ``, `` (see the module docstring for both notations).
    """

    name: str
    plans: Sequence[Plan]
    states: str
    events: str
    steps: Sequence[tuple[str, Action]] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)
    #: Answers of ``check_ports``, in order; None (all free) once they run out.
    ports: Sequence[str | None] = ()
    #: Answers of ``dependencies_ready``; the last one repeats.
    deps: Sequence[tuple[bool, str]] = ((True, ""),)
    liveness: Sequence[bool | str] = ()
    failures: int | None = None
    #: Signals each tree received while alive (only checked when given).
    signals: Sequence[Sequence[str]] | None = None


CRASH = "backoff 0.001 #1, restarting crash"
CRASH_LOOP = "starting -> ready -> backoff"

# fmt: off
HISTORIES = [
    # ------------------------------------------------------------------ the exit-code table
    History(
        "exit 0 ends in exited",
        plans=[exits(0)],
        states="pending: starting -> starting -> ready -> exited: exit 0",
        events="spawned, exited 0",
        failures=0,
    ),
    History(
        "exit 0 under always restarts after the base delay and resets failures",
        spec={"restart": {"policy": "always"}},
        plans=[exits(1), exits(0), runs()],
        states="pending -> starting -> ready -> backoff: exit 1 -> starting -> ready"
               " -> backoff: exit 0; policy always -> starting -> ready",
        events=f"spawned, exited 1, {CRASH}, spawned, exited 0, backoff 0.001 #0,"
               " restarting crash, spawned",
        failures=0,
    ),
    History(
        "exit 99 restarts at once and resets failures",
        plans=[exits(1), exits(99), runs()],
        states=f"pending -> {CRASH_LOOP} -> starting -> ready -> starting -> ready",
        events=f"spawned, exited 1, {CRASH}, spawned, exited 99, restarting reload, spawned",
        failures=0,
    ),
    History(
        # DESIGN: 99 is an immediate restart; a crash after it is a crash (backoff), not a
        # broken watched-file save: a service without `watch` would wait for a change forever.
        "a crash while starting after exit 99 backs off",
        spec=LOG_READY,
        plans=[exits(99, output=("up",)), exits(1, at="spawn"), runs("up")],
        states="pending -> starting -> ready -> starting -> backoff: exit 1 -> starting -> ready",
        events=f"spawned, exited 99, restarting reload, spawned, exited 1, {CRASH}, spawned",
        failures=1,
    ),
    History(
        "exit 78 quarantines at once",
        plans=[exits(78)],
        states="pending -> starting -> ready"
               " -> quarantined: exit 78: the service quarantined itself",
        events="spawned, exited 78, quarantined",
        failures=0,
    ),
    History(
        "exit 1 is a crash",
        plans=[exits(1), runs()],
        states="pending -> starting -> ready -> backoff: exit 1 -> starting -> ready",
        events=f"spawned, exited 1, {CRASH}, spawned",
        failures=1,
    ),
    History(
        "killed by a signal is a crash",
        plans=[killed_by("SIGKILL"), runs()],
        states="pending -> starting -> ready -> backoff: killed by SIGKILL -> starting -> ready",
        events=f"spawned, exited SIGKILL, {CRASH}, spawned",
        failures=1,
    ),
    History(
        "a crash while starting backs off without ever being ready",
        plans=[exits(3, at="spawn"), runs()],
        states="pending -> starting -> backoff: exit 3 -> starting -> ready",
        events=f"spawned, exited 3, {CRASH}, spawned",
        failures=1,
    ),
    History(
        "policy never leaves a crash exited",
        spec={"restart": {"policy": "never"}},
        plans=[exits(1)],
        states="pending -> starting -> ready -> exited: exit 1; restart policy is never",
        events="spawned, exited 1",
        failures=1,
    ),
    # ------------------------------------------------------------- backoff and quarantine
    History(
        "backoff doubles, is capped, then quarantines at max_retries",
        spec={"restart": {"backoff": {"base_ms": 1, "factor": 2, "max_ms": 5}, "max_retries": 5}},
        plans=[exits(1)] * 5,
        states=f"pending -> {CRASH_LOOP} -> {CRASH_LOOP} -> {CRASH_LOOP} -> {CRASH_LOOP}"
               " -> starting -> ready"
               " -> quarantined: 5 consecutive failures (max_retries 5); last: exit 1",
        events="spawned, exited 1, backoff 0.001 #1, restarting crash,"
               " spawned, exited 1, backoff 0.002 #2, restarting crash,"
               " spawned, exited 1, backoff 0.004 #3, restarting crash,"
               " spawned, exited 1, backoff 0.005 #4, restarting crash,"
               " spawned, exited 1, quarantined",
        failures=5,
    ),
    History(
        "release from quarantine resets the failure count",
        spec={"restart": {"max_retries": 2}},
        plans=[exits(1), exits(1), exits(1), runs()],
        steps=[("quarantined", start)],
        states=f"pending -> {CRASH_LOOP} -> starting -> ready -> quarantined"
               f" -> pending -> {CRASH_LOOP} -> starting -> ready",
        events=f"spawned, exited 1, {CRASH}, spawned, exited 1, quarantined, released,"
               f" spawned, exited 1, {CRASH}, spawned",
        failures=1,
    ),
    History(
        "start after a self-quarantine releases it",
        plans=[exits(78), runs()],
        steps=[("quarantined", start)],
        states="pending -> starting -> ready -> quarantined -> pending: starting"
               " -> starting -> ready",
        events="spawned, exited 78, quarantined, released, spawned",
        failures=0,
    ),
    History(
        "ready for reset_after_s forgets past failures",
        spec={"restart": {"reset_after_s": 0.1}},
        plans=[exits(1), exits(1), exits(1, after_s=0.2), runs()],
        states=f"pending -> {CRASH_LOOP} -> {CRASH_LOOP} -> {CRASH_LOOP} -> starting -> ready",
        events=f"spawned, exited 1, {CRASH}, spawned, exited 1, backoff 0.002 #2,"
               f" restarting crash, spawned, exited 1, {CRASH}, spawned",
        failures=1,
    ),
    History(
        "a spawn failure counts as a failure",
        plans=[cannot_spawn(NO_SUCH_FILE), cannot_spawn(NO_SUCH_FILE), runs()],
        states=f"pending -> backoff: {NO_SUCH_FILE} -> starting -> ready",
        events=f"spawn_failed, {CRASH}, spawn_failed, backoff 0.002 #2, restarting crash,"
               " spawned",
        failures=2,
    ),
    History(
        "spawn failures alone reach quarantine",
        spec={"restart": {"max_retries": 2}},
        plans=[cannot_spawn(NO_SUCH_FILE), cannot_spawn(NO_SUCH_FILE)],
        states="pending -> backoff"
               f" -> quarantined: 2 consecutive failures (max_retries 2); last: {NO_SUCH_FILE}",
        events=f"spawn_failed, {CRASH}, spawn_failed, quarantined",
        failures=2,
    ),
    History(
        "a port held by a stranger is a failed start, then the port frees up",
        spec={"ports": [8080]},
        ports=[PORT_HELD, None],
        plans=[runs()],
        states=f"pending -> backoff: {PORT_HELD} -> starting -> ready",
        events=f"{CRASH}, spawned",
        failures=1,
    ),
    History(
        "a readiness timeout stops the process and counts as a failure",
        spec={"readiness": {"log": {"pattern": "up"}, "timeout_s": 0.02}},
        plans=[runs("booting"), runs("up")],
        states="pending -> starting -> stopping"
               " -> backoff: not ready after 0.02s (log 'up'); last: no matching line yet"
               " -> starting -> ready",
        events=f"spawned, exited SIGTERM, {CRASH}, spawned",
        failures=1,
    ),
    History(
        "liveness failing up to the threshold restarts with reason liveness",
        spec={"liveness": {"exec": {"cmd": ["check"]}, "interval_s": 0.001,
                           "failure_threshold": 2}},
        liveness=["down", True, "down", "down"],
        plans=[runs(), runs()],
        states="pending -> starting -> ready -> unhealthy: liveness failing (1/2): down"
               " -> ready -> unhealthy -> stopping"
               " -> backoff: liveness failed 2 times: down -> starting -> ready",
        events="spawned, exited SIGTERM, backoff 0.001 #1, restarting liveness, spawned",
        failures=1,
    ),
    # ------------------------------------------------------------------ operator commands
    History(
        "stop during backoff ends stopped and nothing respawns",
        spec=SLOW_BACKOFF,
        plans=[exits(1)],
        steps=[("backoff", stop)],
        states="pending -> starting -> ready -> backoff -> stopped",
        events="spawned, exited 1, backoff 60 #1, stopped",
    ),
    History(
        "stop during starting terminates the process",
        spec=LOG_READY,
        plans=[runs()],
        steps=[("spawned", stop)],
        states="pending -> starting -> stopping -> stopped",
        events="spawned, exited SIGTERM, stopped",
        signals=[["SIGTERM"]],
    ),
    History(
        "stop when ready terminates the process",
        plans=[runs()],
        steps=[("ready", stop)],
        states="pending -> starting -> ready -> stopping -> stopped",
        events="spawned, exited SIGTERM, stopped",
        failures=0,
    ),
    History(
        "stop of a process that ignores SIGTERM kills it after the grace period",
        plans=[stubborn()],
        steps=[("ready", stop)],
        states="pending -> starting -> ready -> stopping -> stopped",
        events="spawned, exited SIGKILL, stopped",
        signals=[["SIGTERM", "SIGKILL"]],
    ),
    History(
        "stop while stopping for a restart ends stopped",
        plans=[stubborn()],
        steps=[("ready", restart), ("state=stopping", stop)],
        states="pending -> starting -> ready -> stopping: restart (manual) -> stopped",
        events="spawned, restarting manual, exited SIGKILL, stopped",
    ),
    History(
        "stop while waiting for dependencies",
        deps=[(False, "waiting for db (starting)")],
        plans=[],
        steps=[("state=pending", stop)],
        states="pending: starting -> stopped",
        events="stopped",
    ),
    History(
        # The supervisor stops idle runners first so that "nothing new starts while we stop";
        # a stop that arrives while the ports are being checked must not spawn.
        "stop while the ports are checked starts nothing",
        spec={"ports": [8080]},
        plans=[],
        steps=[("state=pending", stop)],
        states="pending: starting -> stopped",
        events="stopped",
    ),
    History(
        "start once the dependencies are ready",
        deps=[(False, "waiting for db (starting)"), (True, "")],
        plans=[runs()],
        states="pending -> starting -> ready",
        events="spawned",
    ),
    History(
        "operator restart when ready",
        plans=[runs(), runs()],
        steps=[("ready", restart)],
        states="pending -> starting -> ready -> stopping: restart (manual) -> starting -> ready",
        events="spawned, restarting manual, exited SIGTERM, spawned",
        failures=0,
    ),
    History(
        "restart during backoff skips the delay",
        spec=SLOW_BACKOFF,
        plans=[exits(1), runs()],
        steps=[("backoff", restart)],
        states=f"pending -> {CRASH_LOOP} -> starting -> ready",
        events="spawned, exited 1, backoff 60 #1, restarting manual, spawned",
        failures=1,
    ),
    # --------------------------------------------------------------------- watched files
    History(
        "a failed reload waits for a change, and the next change restarts at once",
        spec={**WATCHED, **SLOW_BACKOFF},
        plans=[runs(), exits(1, at="spawn"), runs()],
        steps=[("ready", change), ("state=backoff", change)],
        states="pending -> starting -> ready -> stopping: restart (reload) -> starting"
               " -> backoff: waiting for a change after a failed reload -> starting -> ready",
        events="spawned, reload, restarting reload, exited SIGTERM,"
               " spawned, exited 1, reload, restarting reload, spawned",
        failures=0,
    ),
    History(
        "a change during a crash's backoff restarts at once",
        spec={**WATCHED, **SLOW_BACKOFF},
        plans=[exits(1), runs()],
        steps=[("backoff", change)],
        states=f"pending -> {CRASH_LOOP} -> starting -> ready",
        events="spawned, exited 1, backoff 60 #1, reload, restarting reload, spawned",
        failures=1,
    ),
    History(
        "stop while waiting for a change after a failed reload",
        spec=WATCHED,
        plans=[runs(), exits(1, at="spawn")],
        steps=[("ready", change), ("state=backoff", stop)],
        states="pending -> starting -> ready -> stopping -> starting -> backoff -> stopped",
        events="spawned, reload, restarting reload, exited SIGTERM, spawned, exited 1, stopped",
    ),
    History(
        "a change during the first start restarts it",
        spec=WATCHED_LOG_READY,
        plans=[runs(), runs("up")],
        steps=[("spawned", change)],
        states="pending -> starting -> stopping: restart (reload) -> starting -> ready",
        events="spawned, reload, restarting reload, exited SIGTERM, spawned",
    ),
    History(
        "a change during a reload's start restarts once that start is ready",
        spec=WATCHED_LOG_READY,
        plans=[runs("up"), runs("up", output_after_s=0.02), runs("up")],
        steps=[("ready", change), ("spawned#2", change)],
        states="pending -> starting -> ready -> stopping -> starting -> ready -> stopping"
               " -> starting -> ready",
        events="spawned, reload, restarting reload, exited SIGTERM,"
               " spawned, reload, restarting reload, exited SIGTERM, spawned",
    ),
    History(
        # The second change asked for "one more restart once this start is ready"; that
        # start was stopped instead, so the next, unrelated start must not restart itself.
        "a pending extra reload does not outlive a stop",
        spec=WATCHED_LOG_READY,
        plans=[runs("up"), runs(), runs("up")],
        steps=[("ready", change), ("spawned#2", change), ("reload#2", stop), ("stopped", start)],
        states="pending -> starting -> ready -> stopping -> starting -> stopping -> stopped"
               " -> pending -> starting -> ready",
        events="spawned, reload, restarting reload, exited SIGTERM,"
               " spawned, reload, exited SIGTERM, stopped, spawned",
    ),
    History(
        "on_change signal sends the signal and keeps the process",
        spec={"watch": {"paths": ["app/*.py"], "on_change": "signal:SIGHUP"}},
        plans=[runs()],
        steps=[("ready", change)],
        states="pending -> starting -> ready",
        events="spawned, reload",
        signals=[["SIGHUP"]],
    ),
]
# fmt: on


# ---------------------------------------------------------------------------- the harness


@dataclass
class Outcome:
    """What one replay produced, collected before the runner task is cancelled."""

    events: list[Event]
    #: Bus events and ``on_change`` calls, interleaved in the order they happened.
    timeline: list[tuple[str, str]]
    failures: int
    signals: list[list[str]]
    quarantines: list[str]
    spawner: FakeSpawner
    runner: ServiceRunner
    unfired: list[str]


def make_spec(overrides: Mapping[str, Any]) -> ServiceSpec:
    base: dict[str, Any] = {
        "id": "svc",
        "cmd": ["fake-service", "--port", "8080"],
        "restart": {"backoff": {"base_ms": 1, "factor": 2, "max_ms": 1000}, "max_retries": 3},
        "stop": {"grace_s": 0.05},
    }
    return ServiceSpec.model_validate(_merge(base, overrides))


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_trigger(trigger: str) -> tuple[str, str | None, int]:
    """``"state=backoff#2"`` -> ("state", "backoff", 2); ``"ready"`` -> ("ready", None, 1)."""
    what, _, nth = trigger.partition("#")
    name, _, state = what.partition("=")
    return name, state or None, int(nth or 1)


class Triggers:
    """Runs each step's action once, on the loop, right after its n-th triggering event."""

    def __init__(self, steps: Sequence[tuple[str, Action]], runner: ServiceRunner) -> None:
        self._pending = [(_parse_trigger(trigger), trigger, action) for trigger, action in steps]
        self._seen: dict[tuple[str, str | None], int] = {}
        self._runner = runner

    @property
    def unfired(self) -> list[str]:
        return [trigger for _, trigger, _ in self._pending]

    def on_event(self, event: Event) -> None:
        keys = [(event["event"], None)]
        if event["event"] == "state":
            keys.append(("state", event["to"]))
        for key in keys:
            self._seen[key] = self._seen.get(key, 0) + 1
        loop = asyncio.get_running_loop()
        for entry in list(self._pending):
            (name, state, nth), _, action = entry
            if self._seen.get((name, state), 0) >= nth:
                self._pending.remove(entry)
                loop.call_soon(action, self._runner)


async def play(history: History, state_dir: Path) -> Outcome:
    """Replay ``history`` against a real ``ServiceRunner`` and collect what it did."""
    bus = EventBus(None)
    spawner = FakeSpawner(history.plans, bus)
    events: list[Event] = []
    timeline: list[tuple[str, str]] = []
    quarantines: list[str] = []
    progress = asyncio.Event()
    ports: deque[str | None] = deque(history.ports)
    deps: deque[tuple[bool, str]] = deque(history.deps)

    def dependencies_ready(spec: ServiceSpec) -> tuple[bool, str]:
        return deps.popleft() if len(deps) > 1 else deps[0]

    async def wait_dependencies_changed(spec: ServiceSpec) -> None:
        if len(deps) > 1:  # the next answer differs: the change comes soon
            await asyncio.sleep(0.001)
            return
        await asyncio.Event().wait()

    async def check_ports(spec: ServiceSpec) -> str | None:
        await asyncio.sleep(0)
        return ports.popleft() if ports else None

    def on_change(runner: ServiceRunner) -> None:
        timeline.append(("change", runner.state.value))

    def on_quarantine(runner: ServiceRunner, reason: str) -> None:
        quarantines.append(reason)

    ctx = RunnerContext(
        instance="histories",
        state_dir=state_dir,
        bus=bus,
        probes=FakeProbeRunner(liveness=history.liveness),
        logs=LogsSpec(),
        console=None,
        base_env={"PATH": "/usr/bin"},
        dependencies_ready=dependencies_ready,
        wait_dependencies_changed=wait_dependencies_changed,
        check_ports=check_ports,
        on_change=on_change,
        on_quarantine=on_quarantine,
        spawn=spawner,
    )
    runner = ServiceRunner(make_spec(history.spec), ctx)
    triggers = Triggers(history.steps, runner)

    def record(event: Event) -> None:
        events.append(event)
        timeline.append(
            ("event", event["event"] if event["event"] != "state" else f"state={event['to']}")
        )
        triggers.on_event(event)
        progress.set()

    bus.subscribe(record)
    task = asyncio.ensure_future(runner.run())
    task.add_done_callback(lambda _: progress.set())
    runner.start()

    def settled() -> bool:
        states = [e for e in events if e["event"] == "state"]
        keys = [e for e in events if describe(e) is not None]
        return task.done() or (
            not triggers.unfired
            and len(states) >= len(expected_states(history))
            and len(keys) >= len(expected_events(history))
        )

    with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
        async with timeout(SETTLE_S):
            while not settled():
                await progress.wait()
                progress.clear()
    await asyncio.sleep(QUIET_S)
    outcome = Outcome(
        events=list(events),
        timeline=list(timeline),
        failures=runner.failures,
        signals=[list(tree.received) for tree in spawner.trees],
        quarantines=list(quarantines),
        spawner=spawner,
        runner=runner,
        unfired=triggers.unfired,
    )
    if task.done():
        task.result()  # the runner died: show why (an IllegalTransition, for example)
        raise AssertionError("the runner's task ended by itself")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return outcome


def replay(history: History, state_dir: Path) -> Outcome:
    return asyncio.run(asyncio.wait_for(play(history, state_dir), GUARD_S))


def describe(event: Event) -> str | None:
    """The compact form of a key event (see the module docstring); None for the others."""
    name = event["event"]
    if name == "exited":
        return f"exited {event['code'] if event['code'] is not None else event['signal']}"
    if name == "backoff":
        return f"backoff {event['delay_s']:g} #{event['attempt']}"
    if name == "restarting":
        return f"restarting {event['reason']}"
    if name in ("spawned", "quarantined", "released", "spawn_failed", "stopped", "reload"):
        return str(name)
    return None


def expected_states(history: History) -> list[str]:
    return history.states.split(" -> ")


def expected_events(history: History) -> list[str]:
    return history.events.split(", ") if history.events else []


def states_as_expected(outcome: Outcome, expected: Sequence[str]) -> list[str]:
    """The entered states, each with its reason wherever the expectation names one."""
    seen = [e for e in outcome.events if e["event"] == "state"]
    shown = []
    for index, event in enumerate(seen):
        with_reason = index < len(expected) and ":" in expected[index]
        shown.append(f"{event['to']}: {event['reason']}" if with_reason else str(event["to"]))
    return shown


# ----------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("history", HISTORIES, ids=[h.name for h in HISTORIES])
def test_history(history: History, tmp_path: Path) -> None:
    outcome = replay(history, tmp_path)
    assert outcome.unfired == [], "these steps never found their trigger"
    expected = expected_states(history)
    states = states_as_expected(outcome, expected)
    keys = [d for d in map(describe, outcome.events) if d is not None]
    seen = f"states seen: {' -> '.join(states)}\nevents seen: {', '.join(keys)}"
    assert states == expected, seen
    assert keys == expected_events(history), seen
    assert len(outcome.spawner.calls) == len(history.plans)
    if history.failures is not None:
        assert outcome.failures == history.failures
    if history.signals is not None:
        assert outcome.signals == [list(s) for s in history.signals]
    quarantined = [e["reason"] for e in outcome.events if e["event"] == "quarantined"]
    assert outcome.quarantines == quarantined


@pytest.mark.parametrize("history", HISTORIES, ids=[h.name for h in HISTORIES])
def test_history_keeps_the_machine_invariants(history: History, tmp_path: Path) -> None:
    outcome = replay(history, tmp_path)
    moves = [(e["from"], e["to"]) for e in outcome.events if e["event"] == "state"]
    legal = {(old.value, new.value) for old, new in ALLOWED}
    assert [m for m in moves if m not in legal] == []
    # Each move starts where the previous one ended, from the initial `stopped`.
    assert [old for old, _ in moves] == [State.STOPPED.value, *[new for _, new in moves][:-1]]
    # Every state event is followed at once by on_change, with the runner in the new state.
    for index, (kind, what) in enumerate(outcome.timeline):
        if kind == "event" and what.startswith("state="):
            assert outcome.timeline[index + 1] == ("change", what.removeprefix("state="))
    # Cancelled at the end, the runner leaves no process and no tree behind.
    assert all(not tree.alive for tree in outcome.spawner.trees)
    assert outcome.runner.tree is None


def test_spawn_receives_argv_cwd_and_the_instance_markers(tmp_path: Path) -> None:
    history = History(
        "markers",
        spec={"env": {"MODE": "test"}},
        plans=[runs()],
        states="pending -> starting -> ready",
        events="spawned",
    )
    outcome = replay(history, tmp_path)
    (call,) = outcome.spawner.calls
    assert call.argv == ["fake-service", "--port", "8080"]
    assert call.cwd == Path(".")
    assert call.env["MODE"] == "test"
    assert call.env["PATH"] == "/usr/bin"
    assert call.env["MPSV3_INSTANCE"] == "histories"
    assert call.env["MPSV3_SERVICE"] == "svc"
    spawned = next(e for e in outcome.events if e["event"] == "spawned")
    assert spawned["pid"] == outcome.spawner.trees[0].pid
