"""Issue 14, acceptance: a day of events on the demo stack, compressed; then nothing is wrong.

A private copy of the demo stack, plus ``flood`` (``programs/flooder.py``: a main process and
a child that print numbered lines), lives through :data:`DAY`, a day's worth of events of an
unattended stack, in ``--soak-hours`` (24: the day at its own pace) or, by default, in
``conftest_soak.DEFAULT_DAY_SECONDS`` (CI). The events come at seeded random times
(``MPSV3_SOAK_SEED`` replays a run):

* SIGKILL of a service's main process (a ready one whose failure count is low: a service
  killed ten times within its ``reset_after_s`` is quarantined, by design), and of the
  flooder's child (a service's child; the flooder starts another);
* the keeper path, as systemd's ``Restart=always`` would live it: SIGKILL of the supervisor
  (``engine_pid``), then a new ``up`` at once; SIGKILL of ``up`` (the keeper), a pause, a
  new ``up`` (it waits while the old supervisor stops the stack in order). Both only in the
  second half of the run, so that the first supervisor lives for minutes even in CI;
* hot reloads (a touch of ws_api's engine or the dashboard's stylesheet), log floods
  (``mpsv3 signal flood USR1``, sometimes ``--group``), ``reload`` (every other one changes
  the flooder's environment, so it is replaced; the first comes first: see below).

Checked while it runs: 2 s after each kill of the supervisor nothing of its run lives; every
process of the stack descends from the current ``up``; no ``port_conflict``, ``quarantined``
or ``supervisor_error`` event. Afterwards: ``status`` agrees with /proc for every service (its
pid alive, its process group, in its cgroup, carrying its marker, below the supervisor), no
process of the stack is outside a service's tree, the flooder's log has no gap within a run
and the tail of every orderly stop, the supervisor's RSS and open fds are flat within each
lifetime longer than :data:`LONG_LIFETIME_S` (median of the first third of its steady samples
against the last third; steady begins after :data:`WARMUP_S` and after its first ``reload``,
which imports the config loader once: a step, not a leak), and after ``down`` nothing is left
and every port is free. The figures go to the test report (``record_property``) and to a JSON
file whose path is printed (and to ``MPSV3_SOAK_REPORT`` when set: pytest removes old temp dirs).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from mindstack import (
    SERVICES,
    MindStack,
    MindStackFactory,
    cgroup_members,
    control_target,
    everything_of,
    held_ports,
    instance_cgroup,
    socket_status,
    still_alive,
    wait_supervised,
)
from soak_support import (
    FloodLedger,
    Lifetime,
    LogFollower,
    kill,
    procs_of,
    stack_agreement,
    wait_gone,
)

pytest_plugins = ("conftest_soak",)

pytestmark = [
    pytest.mark.acceptance,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the keeper (and cgroups) are Linux"),
]

FLOODER = Path(__file__).resolve().parent / "programs" / "flooder.py"
FLOOD_SERVICE = """
  - id: flood
    cmd: ["${{MPSV3_PYTHON:-python}}", "{flooder}"]
    env: {{FLOOD_RATE: "20", FLOOD_BURST: "10000"}}
    criticality: optional
    readiness:
      log: {{pattern: "^flood main-[0-9]+ 0 "}}
      timeout_s: 30
    stop: {{grace_s: 5}}
"""
ALL = (*SERVICES, "flood")
PORT_VARIABLES = ("FALKORDB_PORT", "WS_PORT", "DASHBOARD_PORT", "SIGNALS_PORT")

#: A day in the life of an unattended stack that has a bad day: two crashes an hour, a worker
#: lost every hour, a supervisor lost four times and its keeper four times, a developer saving
#: watched files twice an hour, two log floods an hour, a config reload every two hours.
DAY = {"kill_service": 48, "kill_child": 24, "kill_supervisor": 4, "kill_keeper": 4, "touch": 48, "flood": 48, "reload": 12}
KEEPER_PATH = ("kill_supervisor", "kill_keeper")
KEEPER_PATH_WINDOW = (0.5, 0.95)
TOUCHED = ("mind/engines/consciousness_engine_v2.py", "mind/dashboard/static/dashboard.css")
MAX_FAILURES_TO_KILL = 2
GONE_WITHIN_S = 2.0
#: The ordered stop after a lost keeper: the stack's graces (falkordb, ws_api, six of 5 s), summed, and a margin.
ORDERED_STOP_BOUND_S = 15 + 10 + 6 * 5 + 15.0
SAMPLE_EVERY_S = 1.0
SCAN_EVERY_S = 3.0
#: The longest an event may wait for its precondition (a ready target) before it is a failure.
EVENT_PATIENCE_S = 180.0
SETTLE_TIMEOUT_S = 180.0
#: Longer than a touch's debounce and a killed service's first backoff: then nothing is pending.
QUIET_S = 3.0
#: "Flat within each supervisor lifetime longer than a few minutes" (``Lifetime.growth``).
LONG_LIFETIME_S = 180.0


class CompressedDay:
    """Plays :data:`DAY` on one stack and watches it; every violation is kept with its time."""

    def __init__(self, stack: MindStack, target: Any, rng: random.Random, duration: float) -> None:
        self.stack, self.target, self.rng, self.duration = stack, target, rng, duration
        self.started = time.monotonic()
        self.violations: list[str] = []
        self.done: dict[str, int] = {kind: 0 for kind in DAY}
        self.waited: dict[str, int] = {}
        self.kill_gone_s: list[float] = []
        self.ordered_stop_s: list[float] = []
        self.event_counts: dict[str, int] = {}
        self.lifetimes: list[Lifetime] = []
        self.ledger = FloodLedger()
        self.follower = LogFollower(stack.state_dir / "logs" / "flood.log")
        self.events = LogFollower(stack.state_dir / "events.jsonl", stamped=False)
        self.reloads = 0
        self.last_sample = self.last_scan = 0.0

    def violation(self, message: str) -> None:
        self.violations.append(f"[{time.monotonic() - self.started:8.1f}s] {message}")

    # --------------------------------------------------------------------- the plan

    def plan(self) -> list[tuple[float, str]]:
        """When each event of the day happens, in seconds from the start, in order."""
        plan = [(0.02 * self.duration, "reload")]
        for kind, count in DAY.items():
            low, high = KEEPER_PATH_WINDOW if kind in KEEPER_PATH else (0.03, 0.97)
            plan += [(self.rng.uniform(low, high) * self.duration, kind) for _ in range(count - (kind == "reload"))]
        return sorted(plan)

    def run(self) -> None:
        for at, kind in self.plan():
            while time.monotonic() < self.started + at:
                self.observe()
                time.sleep(min(SAMPLE_EVERY_S, max(0.0, self.started + at - time.monotonic())))
            patience = time.monotonic() + EVENT_PATIENCE_S
            while not getattr(self, kind)():
                self.waited[kind] = self.waited.get(kind, 0) + 1
                if time.monotonic() > patience:
                    self.violation(f"{kind}: no moment to do it within {EVENT_PATIENCE_S:g}s")
                    break
                self.observe()
                time.sleep(SAMPLE_EVERY_S)
            else:
                self.done[kind] += 1
            self.observe()

    # ------------------------------------------------------------------ the events

    def services(self) -> dict[str, dict[str, Any]]:
        status = socket_status(self.target)
        return {} if status is None else {s["id"]: s for s in status["services"]}

    def kill_service(self) -> bool:
        ready = [
            s for s in self.services().values()
            if s["state"] == "ready" and s["failures"] <= MAX_FAILURES_TO_KILL and s["pid"]
        ]
        if not ready:
            return False
        victim = self.rng.choice(ready)
        kill(victim["pid"])
        return True

    def kill_child(self) -> bool:
        flood = self.services().get("flood")
        if flood is None or flood["state"] != "ready":
            return False
        try:
            children = psutil.Process(flood["pid"]).children()
        except psutil.Error:
            return False
        if not children:
            return False
        kill(children[0].pid)
        return True

    def touch(self) -> bool:
        self.stack.path(self.rng.choice(TOUCHED)).touch()
        return True

    def flood(self) -> bool:
        flood = self.services().get("flood")
        if flood is None or flood["state"] != "ready":
            return False
        group = ["--group"] if self.rng.random() < 0.5 else []
        result = self.stack.cli("signal", "flood", "USR1", *group)
        if "no process is running" in result.stderr:  # replaced or restarted since: try again
            return False
        if result.returncode != 0:
            self.violation(f"signal flood USR1 {group}: {result.returncode} {result.stderr.strip()}")
        return True

    def reload(self) -> bool:
        self.reloads += 1
        if self.reloads % 2 == 0:  # every other reload changes the flooder's environment
            text = self.stack.config_path.read_text()
            rate = '"21"' if '"20"' in text else '"20"'
            self.stack.config_path.write_text(re.sub(r'FLOOD_RATE: "\d+"', f"FLOOD_RATE: {rate}", text))
        result = self.stack.cli("reload")
        if result.returncode != 0:
            self.violation(f"reload: {result.returncode} {result.stderr.strip()}")
        if self.lifetimes[-1].first_reload is None:
            self.lifetimes[-1].first_reload = time.monotonic()
        return True

    def kill_supervisor(self) -> bool:
        """SIGKILL the supervisor: 2 s later nothing of its run lives; ``up`` again at once."""
        status = self.all_ready()
        if status is None:
            return False
        up, procs = self.current()
        kill(status["supervisor"]["engine_pid"])
        began = time.monotonic()
        left = wait_gone(procs, GONE_WITHIN_S)
        self.kill_gone_s.append(round(time.monotonic() - began, 3))
        if left:
            self.violation(f"alive {GONE_WITHIN_S:g}s after kill -9 of the supervisor: {left}")
        if up.wait(timeout=30) != 1:
            self.violation(f"up exited with {up.returncode} after its supervisor was killed")
        self.start_up()
        return True

    def kill_keeper(self) -> bool:
        """SIGKILL ``up``; after a pause a new ``up``, while the old supervisor stops in order."""
        if self.all_ready() is None:
            return False
        up, procs = self.current()
        kill(up.pid)
        up.wait()
        began = time.monotonic()
        time.sleep(self.rng.uniform(0.0, 3.0))
        self.start_up(then=lambda: self.ordered_stop(procs, began))
        return True

    def ordered_stop(self, procs: list[psutil.Process], began: float) -> None:
        left = wait_gone(procs, ORDERED_STOP_BOUND_S)
        self.ordered_stop_s.append(round(time.monotonic() - began, 3))
        if left:
            self.violation(f"alive {ORDERED_STOP_BOUND_S:g}s after kill -9 of the keeper: {left}")

    def current(self) -> tuple[subprocess.Popen[bytes], list[psutil.Process]]:
        """The running ``up`` and every process of its run; its lifetime ends now."""
        up = self.stack.process
        assert up is not None
        self.lifetimes[-1].ended = time.monotonic()
        return up, everything_of(self.stack, up.pid, instance_cgroup(self.stack))

    def all_ready(self) -> dict[str, Any] | None:
        status = socket_status(self.target)
        if status is None or any(s["state"] != "ready" for s in status["services"]):
            return None
        return status

    def start_up(self, then: Callable[[], None] = lambda: None) -> None:
        """A new ``up`` as systemd's ``Restart=always`` would start it; a new lifetime once ready."""
        self.stack.process = None
        self.stack.start()
        then()
        status = wait_supervised(self.stack, self.target, ALL)
        supervisor = status["supervisor"]
        self.lifetimes.append(Lifetime(supervisor["pid"], supervisor["engine_pid"], time.monotonic()))

    # ------------------------------------------------------------------- watching

    def observe(self) -> None:
        now = time.monotonic()
        if now - self.last_sample >= SAMPLE_EVERY_S:
            self.last_sample = now
            life = self.lifetimes[-1]
            try:
                life.sample()
            except psutil.Error as exc:
                self.violation(f"cannot sample the supervisor {life.engine_pid}: {exc!r}")
            self.read_events()
            for line in self.follower.poll():
                self.ledger.consume(line)
        if now - self.last_scan >= SCAN_EVERY_S:
            self.last_scan = now
            self.scan_orphans()

    def read_events(self) -> None:
        for line in self.events.poll():
            event = json.loads(line)
            name = event["event"]
            self.event_counts[name] = self.event_counts.get(name, 0) + 1
            if name in ("port_conflict", "quarantined", "supervisor_error"):
                self.violation(f"event {name}: {event}")

    def scan_orphans(self) -> None:
        """Every process of the stack descends from the current ``up`` (none of an older run)."""
        up = self.lifetimes[-1].up_pid
        for proc in self.stack.processes():
            with contextlib.suppress(psutil.Error):
                if up not in {parent.pid for parent in proc.parents()} and still_alive([proc]):
                    self.violation(f"orphan: PID {proc.pid} {' '.join(proc.cmdline())} is not below up {up}")

    # ---------------------------------------------------------------- afterwards

    def settle(self) -> dict[str, Any]:
        """Every service ready, with the same pids a quiet moment later (a touch is debounced)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        status = wait_supervised(self.stack, self.target, ALL, timeout=SETTLE_TIMEOUT_S)
        while True:
            time.sleep(QUIET_S)
            again = wait_supervised(self.stack, self.target, ALL, timeout=SETTLE_TIMEOUT_S)
            if [s["pid"] for s in again["services"]] == [s["pid"] for s in status["services"]]:
                self.observe()
                return again
            assert time.monotonic() < deadline, f"still restarting after {SETTLE_TIMEOUT_S:g}s: {again}"
            status = again

    def down(self) -> None:
        """``down``: ``up`` exits 0, nothing of the stack is left, every port is free."""
        up, procs = self.current()
        cgroup = instance_cgroup(self.stack)
        ports = {self.stack.port(v) for v in PORT_VARIABLES}
        result = self.stack.cli("down", timeout=120)
        if result.returncode != 0 or up.wait(timeout=120) != 0:
            self.violation(f"down: {result.returncode} {result.stderr.strip()}, up: {up.poll()}")
        self.stack.process = None
        left = wait_gone(procs, 10.0) + still_alive(procs_of(cgroup_members(cgroup))) + still_alive(self.stack.processes())
        if left:
            self.violation(f"left after down: {left}")
        if held_ports(ports):
            self.violation(f"ports held after down: {held_ports(ports)}")

    def check_log(self) -> None:
        for line in self.follower.poll():
            self.ledger.consume(line)
        self.violations += [f"flood log: {problem}" for problem in self.ledger.problems()]
        self.violations += [f"flood log: a line cut at a rotation: {line!r}" for line in self.follower.broken]
        if self.follower.fell_behind:
            self.violation(f"the log reader fell behind {self.follower.fell_behind} rotations (test too slow)")

    def figures(self, seed: int) -> dict[str, Any]:
        return {
            "seed": seed, "day_seconds": self.duration, "ran_s": round(time.monotonic() - self.started, 1),
            "events_planned": DAY, "events_done": self.done, "events_waited": self.waited,
            "kill_supervisor_gone_s": self.kill_gone_s, "kill_keeper_ordered_stop_s": self.ordered_stop_s,
            "supervisor_events": dict(sorted(self.event_counts.items())),
            "lifetimes": [life.figures() for life in self.lifetimes],
            "flood_log": {
                **self.ledger.figures(), "bytes_read": self.follower.bytes,
                "rotations_followed": self.follower.rotations,
            },
            "violations": self.violations,
        }


def test_a_compressed_day_leaves_no_orphan_no_lost_line_and_a_flat_supervisor(
    mind_stack: MindStackFactory, compressed_day_seconds: float, tmp_path: Path, record_property: Any
) -> None:
    seed = int(os.environ.get("MPSV3_SOAK_SEED", random.randrange(2**32)))
    stack = mind_stack("day")
    with stack.config_path.open("a") as config:
        config.write(FLOOD_SERVICE.format(flooder=FLOODER))
    day = CompressedDay(stack, control_target(stack), random.Random(seed), compressed_day_seconds)
    report = tmp_path / "compressed_soak.json"
    try:
        day.start_up()
        day.run()
        day.violations += [f"status and /proc: {p}" for p in stack_agreement(stack, day.settle())]
        for life in day.lifetimes:
            day.violations += [f"supervisor {life.engine_pid}: {p}" for p in life.growth(LONG_LIFETIME_S)]
        day.down()
        day.check_log()
    finally:
        figures = day.figures(seed)
        report.write_text(json.dumps(figures, indent=2))
        if os.environ.get("MPSV3_SOAK_REPORT"):  # a copy that outlives pytest's temp dirs
            Path(os.environ["MPSV3_SOAK_REPORT"]).write_text(report.read_text())
        record_property("compressed_soak", json.dumps(figures))
        print(f"compressed soak figures: {report}")
    assert day.done == DAY, figures
    assert day.violations == [], "\n".join([f"seed {seed}", *day.violations])
