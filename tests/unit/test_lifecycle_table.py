"""The lifecycle replayed as pure rows: a script of events in, states and effects out.

Each row of ``HISTORIES`` is one service history, honcho-style, but with no process, timer or
loop: ``lifecycle.step`` is called for each event of the script on a fake clock, and the row
says which states are entered and what is emitted. The driver's side (what a real spawn or
stop does) is in ``test_runner_driver.py``.

Script tokens (comma separated, ``@T`` sets the clock to T seconds for that event):
``start``, ``stop``, ``restart``, ``change``, ``deps no``, ``deps ok``, ``ports ok``,
``port held``, ``spawned``, ``spawn failed``, ``gate ok``, ``gate timeout``, ``live ok``,
``live fail``, ``memory``, ``exit N``, ``killed SIGNAL``, ``stopped`` (the stop we asked for is
done), ``timer`` (the backoff timer fired).

States: ``backoff``, or ``backoff: <reason>`` to check the reason too, joined by `` -> ``.
Emitted: ``spawned``, ``exited <code|signal>``, ``backoff <delay_s> #<attempt>``, ``restarting
<reason>``, ``quarantined``, ``released``, ``spawn_failed``, ``stopped``, ``reload``,
``probe_failed``, ``limit_exceeded``; ``state``, ``ready`` and ``stopping`` are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from mpsv3.plan import BackoffPlan, RestartPlan, StopPlan, WatchPlan
from mpsv3.policy.backoff import STORM_RESTARTS
from mpsv3.policy.lifecycle import Model, step
from mpsv3.policy.messages import (
    ArmBackoff,
    BackoffElapsed,
    CancelProbes,
    CheckPorts,
    DepsChanged,
    Effect,
    Emit,
    Event,
    Exited,
    FilesChanged,
    GatePassed,
    GateTimedOut,
    LivenessResult,
    MemoryExceeded,
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
from mpsv3.policy.states import State

NO_SUCH_FILE = "cannot start 'fake-service': No such file or directory"
PORT_HELD = "port 8080 is held by PID 42 (nc -l 8080), not ours"
GATE_TIMEOUT = "not ready after 0.02s (log 'up'); last: no matching line yet"
FAST = RestartPlan("on-failure", BackoffPlan(1, 2.0, 1000, 0.0), 3, 60.0)
SLOW = RestartPlan("on-failure", BackoffPlan(60000, 2.0, 60000, 0.0), 3, 60.0)
WATCH = WatchPlan(("app/*.py",), 200, "restart", False, "main")
PLAIN = Rules(restart=FAST, stop=StopPlan("SIGTERM", 0.05))
GATED = replace(PLAIN, has_readiness=True)
WATCHED = replace(PLAIN, watch=WATCH)
WATCHED_GATED = replace(GATED, watch=WATCH)
TASK = replace(PLAIN, is_task=True, watch=WATCH)

CRASH = "backoff 0.001 #1, restarting crash"
UP = "start, ports ok, spawned"  # a start that spawns (no gate: ready at once)
CRASH_LOOP = "starting -> ready -> backoff"


def _exit(text: str) -> Event:
    code = text.split()[1]
    return Exited(7, int(code), None)


TOKENS = {
    "start": lambda _: Start(),
    "stop": lambda _: Stop(),
    "restart": lambda _: Restart("manual"),
    "change": lambda _: FilesChanged(("app/main.py",)),
    "deps no": lambda _: DepsChanged(False, "waiting for db (starting)"),
    "deps ok": lambda _: DepsChanged(True, ""),
    "ports ok": lambda _: PortsChecked(None),
    "port held": lambda _: PortsChecked(PORT_HELD),
    "spawned": lambda _: Spawned(7, 7, 1),
    "spawn failed": lambda _: SpawnFailed(NO_SUCH_FILE),
    "gate ok": lambda _: GatePassed(5.0),
    "gate timeout": lambda _: GateTimedOut("log", GATE_TIMEOUT),
    "live ok": lambda _: LivenessResult(True, "exec"),
    "live fail": lambda _: LivenessResult(False, "exec", "down"),
    "memory": lambda _: MemoryExceeded("memory 600 MiB is over its limit of 512 MiB"),
    "exit": _exit,
    "killed": lambda text: Exited(7, None, text.split()[1]),
    "stopped": lambda _: TreeStopped(7, None, "SIGTERM"),
    "timer": lambda _: BackoffElapsed(),
}


def parse(script: str) -> list[tuple[Event, float | None]]:
    events = []
    for token in filter(None, (t.strip() for t in script.split(","))):
        text, _, at = token.partition("@")
        text = text.strip()
        key = text if text in TOKENS else text.split()[0]
        events.append((TOKENS[key](text), float(at) if at else None))
    return events


def describe(effect: Emit) -> str | None:
    name, f = effect.name, effect.fields
    if name in ("state", "ready", "stopping"):
        return None
    if name == "exited":
        return f"exited {f['code'] if f['signal'] is None else f['signal']}"
    if name == "backoff":
        return f"backoff {f['delay_s']:g} #{f['attempt']}"
    if name == "restarting":
        return f"restarting {f['reason']}"
    return name


@dataclass
class Replay:
    model: Model
    states: list[str] = field(default_factory=list)
    emitted: list[str] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


def replay(script: str, rules: Rules = PLAIN, model: Model | None = None) -> Replay:
    out = Replay(model or Model())
    now = 0.0
    for event, at in parse(script):
        now = at if at is not None else now
        out.model, effects = step(out.model, event, now, rules)
        out.effects += effects
        for effect in effects:
            if isinstance(effect, Emit) and effect.name == "state":
                reason = effect.fields["reason"]
                out.states.append(f"{effect.fields['to']}: {reason}" if reason else effect.fields["to"])
            elif isinstance(effect, Emit) and (text := describe(effect)) is not None:
                out.emitted.append(text)
    return out


@dataclass(frozen=True)
class History:
    name: str
    script: str
    states: str
    emitted: str
    rules: Rules = PLAIN
    failures: int | None = None


def _states_match(expected: str, got: list[str]) -> bool:
    wanted = expected.split(" -> ")
    if len(wanted) != len(got):
        return False
    return all(w == g if ":" in w else w == g.split(":")[0] for w, g in zip(wanted, got, strict=True))


# fmt: off
HISTORIES = [
    # ------------------------------------------------------------------ the exit-code table
    History("exit 0 ends in exited", f"{UP}, exit 0",
            "pending: starting -> starting -> ready -> exited: exit 0", "spawned, exited 0", failures=0),
    History("exit 0 under always restarts after the base delay and resets failures",
            f"{UP}, exit 1, timer, ports ok, spawned, exit 0, timer, ports ok, spawned",
            f"pending -> {CRASH_LOOP}: exit 1 -> starting -> ready -> backoff: exit 0; policy always"
            " -> starting -> ready",
            f"spawned, exited 1, {CRASH}, spawned, exited 0, backoff 0.001 #0, restarting crash, spawned",
            rules=replace(PLAIN, restart=replace(FAST, policy="always")), failures=0),
    History("exit 99 restarts at once and resets failures",
            f"{UP}, exit 1, timer, ports ok, spawned, exit 99, ports ok, spawned",
            f"pending -> {CRASH_LOOP} -> starting -> ready -> starting -> ready",
            f"spawned, exited 1, {CRASH}, spawned, exited 99, restarting reload, spawned", failures=0),
    History("exit 78 quarantines at once", f"{UP}, exit 78",
            "pending -> starting -> ready -> quarantined: exit 78: the service quarantined itself",
            "spawned, exited 78, quarantined", failures=0),
    History("killed by a signal is a crash", f"{UP}, killed SIGKILL, timer, ports ok, spawned",
            "pending -> starting -> ready -> backoff: killed by SIGKILL -> starting -> ready",
            f"spawned, exited SIGKILL, {CRASH}, spawned", failures=1),
    History("a crash while starting backs off without ever being ready",
            f"{UP}, exit 3, timer, ports ok, spawned, gate ok",
            "pending -> starting -> backoff: exit 3 -> starting -> ready",
            f"spawned, exited 3, {CRASH}, spawned", rules=GATED, failures=1),
    History("policy never leaves a crash exited", f"{UP}, exit 1",
            "pending -> starting -> ready -> exited: exit 1; restart policy is never", "spawned, exited 1",
            rules=replace(PLAIN, restart=replace(FAST, policy="never")), failures=1),
    # ------------------------------------------------------------- backoff and quarantine
    History("backoff doubles, is capped, then quarantines at max_retries",
            f"{UP}, exit 1, timer, ports ok, spawned, exit 1, timer, ports ok, spawned, exit 1,"
            " timer, ports ok, spawned, exit 1, timer, ports ok, spawned, exit 1",
            f"pending -> {CRASH_LOOP} -> {CRASH_LOOP} -> {CRASH_LOOP} -> {CRASH_LOOP} -> starting -> ready"
            " -> quarantined: 5 consecutive failures (max_retries 5); last: exit 1",
            "spawned, exited 1, backoff 0.001 #1, restarting crash, spawned, exited 1, backoff 0.002 #2,"
            " restarting crash, spawned, exited 1, backoff 0.004 #3, restarting crash, spawned, exited 1,"
            " backoff 0.005 #4, restarting crash, spawned, exited 1, quarantined",
            rules=replace(PLAIN, restart=RestartPlan("on-failure", BackoffPlan(1, 2.0, 5, 0.0), 5, 60.0)),
            failures=5),
    History("release from quarantine resets the failure count",
            f"{UP}, exit 1, timer, ports ok, spawned, exit 1, timer, ports ok, spawned, exit 1, start,"
            " ports ok, spawned",
            f"pending -> {CRASH_LOOP} -> {CRASH_LOOP} -> starting -> ready -> quarantined -> pending: starting"
            " -> starting -> ready",
            f"spawned, exited 1, {CRASH}, spawned, exited 1, backoff 0.002 #2, restarting crash, spawned,"
            " exited 1, quarantined, released, spawned", failures=0),
    History("ready for reset_after_s forgets past failures",
            f"{UP}, exit 1 @1, timer, ports ok, spawned @1, exit 1 @100, timer, ports ok, spawned",
            f"pending -> {CRASH_LOOP} -> {CRASH_LOOP} -> starting -> ready",
            f"spawned, exited 1, {CRASH}, spawned, exited 1, {CRASH}, spawned", failures=1),
    History("a spawn failure counts as a failure, and so does the next",
            "start, ports ok, spawn failed, timer, ports ok, spawn failed, timer, ports ok, spawned",
            f"pending -> backoff: {NO_SUCH_FILE} -> starting -> ready",
            f"spawn_failed, {CRASH}, spawn_failed, backoff 0.002 #2, restarting crash, spawned", failures=2),
    History("a port held by a stranger is a failed start, restarted for reason port",
            "start, port held, timer, ports ok, spawned",
            f"pending -> backoff: {PORT_HELD} -> starting -> ready",
            "backoff 0.001 #1, restarting port, spawned", failures=1),
    History("a readiness timeout stops the process and counts as a failure",
            f"{UP}, gate timeout, stopped, timer, ports ok, spawned, gate ok",
            f"pending -> starting -> stopping -> backoff: {GATE_TIMEOUT} -> starting -> ready",
            f"spawned, probe_failed, exited SIGTERM, {CRASH}, spawned", rules=GATED, failures=1),
    History("liveness failing up to the threshold restarts with reason liveness",
            f"{UP}, live fail, live ok, live fail, live fail, stopped, timer, ports ok, spawned",
            "pending -> starting -> ready -> unhealthy: liveness failing (1/2): down -> ready -> unhealthy"
            " -> stopping -> backoff: liveness failed 2 times: down -> starting -> ready",
            "spawned, probe_failed, probe_passed, probe_failed, probe_failed, exited SIGTERM,"
            " backoff 0.001 #1, restarting liveness, spawned",
            rules=replace(PLAIN, has_liveness=True, liveness_threshold=2), failures=1),
    History("over the memory limit: stopped and restarted for reason memory, a failure",
            f"{UP}, memory, stopped, timer, ports ok, spawned",
            "pending -> starting -> ready -> stopping -> backoff: memory 600 MiB is over its limit of 512 MiB"
            " -> starting -> ready",
            "spawned, limit_exceeded, exited SIGTERM, backoff 0.001 #1, restarting memory, spawned", failures=1),
    History("exit 99 more than five times in ten seconds falls back to backoff",
            f"{UP}" + ", exit 99, ports ok, spawned" * STORM_RESTARTS + ", exit 99",
            "pending -> starting -> ready" + " -> starting -> ready" * STORM_RESTARTS
            + " -> backoff: exit 99 6 times within 10s: a restart storm, so the backoff policy applies",
            "spawned" + ", exited 99, restarting reload, spawned" * STORM_RESTARTS
            + ", exited 99, backoff 0.001 #1", failures=1),
    # ---------------------------------------------------------------------------- tasks
    History("a task that exits 0 is completed and satisfies its dependents",
            "start, ports ok, spawned, exit 0", "pending -> starting -> completed: exit 0",
            "spawned, exited 0", rules=TASK, failures=0),
    History("a failing task backs off, then completes",
            "start, ports ok, spawned, exit 1, timer, ports ok, spawned, exit 0",
            "pending -> starting -> backoff: exit 1 -> starting -> completed",
            f"spawned, exited 1, {CRASH}, spawned, exited 0", rules=TASK, failures=0),
    History("a completed task runs again on start, and on a change of its files",
            "start, ports ok, spawned, exit 0, start, ports ok, spawned, exit 0, change, ports ok, spawned, exit 0",
            "pending -> starting -> completed -> pending: starting -> starting -> completed -> pending"
            " -> starting -> completed",
            "spawned, exited 0, spawned, exited 0, reload, spawned, exited 0", rules=TASK),
    # ------------------------------------------------------------------ operator commands
    History("stop during backoff ends stopped and nothing respawns", f"{UP}, exit 1, stop",
            "pending -> starting -> ready -> backoff -> stopped", "spawned, exited 1, backoff 60 #1, stopped",
            rules=replace(PLAIN, restart=SLOW)),
    History("start during backoff restarts at once", f"{UP}, exit 1, start, ports ok, spawned",
            f"pending -> {CRASH_LOOP} -> starting -> ready",
            "spawned, exited 1, backoff 60 #1, restarting manual, spawned",
            rules=replace(PLAIN, restart=SLOW), failures=1),
    History("stop during starting stops the process", f"{UP}, stop, stopped",
            "pending -> starting -> stopping -> stopped", "spawned, exited SIGTERM, stopped", rules=GATED),
    History("stop when ready stops the process", f"{UP}, stop, stopped",
            "pending -> starting -> ready -> stopping -> stopped", "spawned, exited SIGTERM, stopped", failures=0),
    History("stop while stopping for a restart ends stopped", f"{UP}, restart, stop, stopped",
            "pending -> starting -> ready -> stopping: restart (manual) -> stopped",
            "spawned, restarting manual, exited SIGTERM, stopped"),
    History("stop while waiting for dependencies", "deps no, start, stop",
            "pending: starting -> stopped", "stopped"),
    History("stop while the ports are checked starts nothing", "start, stop, ports ok",
            "pending: starting -> stopped", "stopped"),
    History("stop while spawning stops the new process at once", "start, ports ok, stop, spawned, stopped",
            "pending -> starting -> stopping -> stopped", "spawned, exited SIGTERM, stopped"),
    History("start once the dependencies are ready", "deps no, start, deps ok, ports ok, spawned",
            "pending: starting -> starting -> ready", "spawned"),
    History("operator restart when ready", f"{UP}, restart, stopped, ports ok, spawned",
            "pending -> starting -> ready -> stopping: restart (manual) -> starting -> ready",
            "spawned, restarting manual, exited SIGTERM, spawned", failures=0),
    History("restart during backoff skips the delay", f"{UP}, exit 1, restart, ports ok, spawned",
            f"pending -> {CRASH_LOOP} -> starting -> ready",
            "spawned, exited 1, backoff 60 #1, restarting manual, spawned",
            rules=replace(PLAIN, restart=SLOW), failures=1),
    # --------------------------------------------------------------------- watched files
    History("a failed reload waits for a change, and the next change restarts at once",
            f"{UP}, gate ok, change, stopped, ports ok, spawned, exit 1, change, ports ok, spawned, gate ok",
            "pending -> starting -> ready -> stopping: restart (reload) -> starting"
            " -> backoff: waiting for a change after a failed reload -> starting -> ready",
            "spawned, reload, restarting reload, exited SIGTERM, spawned, exited 1, reload, restarting reload,"
            " spawned", rules=WATCHED_GATED, failures=0),
    History("without a readiness gate too, a crash after a change waits for the next change",
            f"{UP}, change, stopped, ports ok, spawned @1, exit 1 @2, change, ports ok, spawned",
            "pending -> starting -> ready -> stopping -> starting -> ready"
            " -> backoff: waiting for a change after a failed reload -> starting -> ready",
            "spawned, reload, restarting reload, exited SIGTERM, spawned, exited 1, reload, restarting reload,"
            " spawned", rules=WATCHED, failures=0),
    History("without a gate, a crash long after a change is a crash",
            f"{UP}, change, stopped, ports ok, spawned @1, exit 1 @100",
            "pending -> starting -> ready -> stopping -> starting -> ready -> backoff: exit 1",
            "spawned, reload, restarting reload, exited SIGTERM, spawned, exited 1, backoff 0.001 #1",
            rules=WATCHED, failures=1),
    History("a change during a crash's backoff restarts at once", f"{UP}, exit 1, change, ports ok, spawned",
            f"pending -> {CRASH_LOOP} -> starting -> ready",
            "spawned, exited 1, backoff 60 #1, reload, restarting reload, spawned",
            rules=replace(WATCHED, restart=SLOW), failures=1),
    History("stop while waiting for a change after a failed reload",
            f"{UP}, gate ok, change, stopped, ports ok, spawned, exit 1, stop",
            "pending -> starting -> ready -> stopping -> starting -> backoff -> stopped",
            "spawned, reload, restarting reload, exited SIGTERM, spawned, exited 1, stopped", rules=WATCHED_GATED),
    History("a change during the first start restarts it", f"{UP}, change, stopped, ports ok, spawned, gate ok",
            "pending -> starting -> stopping: restart (reload) -> starting -> ready",
            "spawned, reload, restarting reload, exited SIGTERM, spawned", rules=WATCHED_GATED),
    History("a change during a reload's start restarts once that start is ready",
            f"{UP}, gate ok, change, stopped, ports ok, spawned, change, gate ok, stopped, ports ok, spawned, gate ok",
            "pending -> starting -> ready -> stopping -> starting -> ready -> stopping -> starting -> ready",
            "spawned, reload, restarting reload, exited SIGTERM, spawned, reload, restarting reload,"
            " exited SIGTERM, spawned", rules=WATCHED_GATED),
    History("a pending extra reload does not outlive a stop",
            f"{UP}, gate ok, change, stopped, ports ok, spawned, change, stop, stopped, start, ports ok, spawned,"
            " gate ok",
            "pending -> starting -> ready -> stopping -> starting -> stopping -> stopped -> pending -> starting"
            " -> ready",
            "spawned, reload, restarting reload, exited SIGTERM, spawned, reload, exited SIGTERM, stopped,"
            " spawned", rules=WATCHED_GATED),
    History("on_change signal sends the signal and keeps the process", f"{UP}, change",
            "pending -> starting -> ready", "spawned, reload",
            rules=replace(PLAIN, watch=replace(WATCH, on_change="signal:SIGHUP"))),
]
# fmt: on


@pytest.mark.parametrize("history", HISTORIES, ids=[h.name for h in HISTORIES])
def test_history(history: History) -> None:
    got = replay(history.script, history.rules)
    assert _states_match(history.states, got.states), " -> ".join(got.states)
    assert ", ".join(got.emitted) == history.emitted
    if history.failures is not None:
        assert got.model.failures == history.failures


def test_signal_on_change_goes_to_the_main_process_or_the_group() -> None:
    main = replace(PLAIN, watch=replace(WATCH, on_change="signal:SIGHUP"))
    group = replace(PLAIN, watch=replace(WATCH, on_change="signal:SIGHUP", signal_to="group"))
    assert SendSignal("SIGHUP", group=False) in replay(f"{UP}, change", main).effects
    assert SendSignal("SIGHUP", group=True) in replay(f"{UP}, change", group).effects


def test_the_driver_is_asked_for_each_step_in_order() -> None:
    kinds = [type(e) for e in replay(f"{UP}, gate ok, exit 1", replace(GATED, has_liveness=True)).effects
             if not isinstance(e, Emit)]
    assert kinds == [CheckPorts, Spawn, StartGate, StartLiveness, CancelProbes, ArmBackoff]


def test_a_stop_uses_the_services_signal_and_grace() -> None:
    rules = replace(PLAIN, stop=StopPlan("SIGINT", 30.0))
    assert StopTree("SIGINT", 30.0) in replay(f"{UP}, stop", rules).effects


def test_a_zero_delay_respawns_without_a_timer() -> None:
    rules = replace(PLAIN, restart=replace(FAST, backoff=BackoffPlan(0, 2.0, 0, 0.0)))
    got = replay(f"{UP}, exit 1", rules)
    assert not any(isinstance(e, ArmBackoff) for e in got.effects)
    assert got.effects[-1] == CheckPorts()


def test_backoff_deadline_is_on_the_lifecycle_clock() -> None:
    got = replay(f"{UP}, exit 1 @10", replace(PLAIN, restart=SLOW))
    assert got.model.retry_at == 70.0
    assert got.model.state is State.BACKOFF


def test_events_that_do_not_apply_change_nothing() -> None:
    ready = replay(UP).model
    for event in (GatePassed(1.0), BackoffElapsed(), TreeStopped(7, 0, None)):
        assert step(ready, event, 0.0, PLAIN)[0] == ready
