"""Phase 2 acceptance, criterion 6: two instances side by side under chaos, invariants throughout.

Two copies of the Mind Protocol stack (different names and ports) run for the soak duration
(``MPSV3_SOAK_SECONDS``, default 120 s; ``--soak-hours 24`` for the real run, see conftest)
while a seeded random chaos acts on them: SIGKILL of a random service, touch of a watched file
(ws_api's engines or the dashboard's page), and once, at 40 % of the run, SIGKILL of one
supervisor followed at once by a new ``up``. Chaos acts on an instance only when all of its
services are ready, so that it disturbs and never quarantines (a service killed 10 times within
its ``reset_after_s`` is quarantined, by design). ``MPSV3_SOAK_SEED`` replays a run.

Checked about every second, from outside (``psutil``, ``events.jsonl``, the control socket):

* one supervisor per instance;
* at most one live process tree per service (the ``MPSV3_INSTANCE``/``MPSV3_SERVICE``
  markers, grouped by process group; FalkorDB's redis-server overwrites its environment
  with its process title, so it is known by the port in that title);
* no process of one instance touched by the other: every process carrying an instance's
  marker runs under that instance's supervisor; every exit an instance reports is of a PID
  it spawned, and a service only ever dies by the chaos, by its own supervisor's stop, or by
  itself (a non-zero exit); reclaimed orphans are the instance's own;
* after ``down``: no process of either instance left;
* each supervisor's RSS and open file descriptors stay flat (growth under 20 MiB and 20 fds
  from the first to the last third of its samples).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from mindstack import SERVICES, MindStack, MindStackFactory, skip_on_windows

from mpsv3.cli.client_verbs import Target, locate
from mpsv3.control.client import request
from mpsv3.errors import MpsvError

pytestmark = [pytest.mark.acceptance, skip_on_windows]

Event = dict[str, Any]

SAMPLE_EVERY_S = 1.0
CHAOS_EVERY_S = (1.5, 4.0)
#: A service is a chaos target only while its failure count is this low (see module doc).
MAX_FAILURES_TO_KILL = 2
TOUCHED_FILES = ("mind/engines/consciousness_engine_v2.py", "mind/dashboard/static/dashboard.css")
RSS_GROWTH_LIMIT = 20 * 1024 * 1024
FD_GROWTH_LIMIT = 20
#: Supervisor samples from its first seconds (imports, first spawns) are not "steady".
WARMUP_S = 10.0
SETTLE_TIMEOUT_S = 180.0


class EventTail:
    """Reads an ``events.jsonl`` incrementally (the soak may run for a day)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read_new(self) -> list[Event]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]


@dataclass
class Sample:
    at: float
    rss: int
    fds: int


@dataclass
class Instance:
    """What the soak knows and checks about one instance of the stack."""

    stack: MindStack
    target: Target
    tail: EventTail
    spawned: dict[int, str] = field(default_factory=dict)  # pid -> service, every run
    killed: set[int] = field(default_factory=set)  # by the chaos
    stopping: dict[str, bool] = field(default_factory=dict)  # own stop under way
    supervisor_started: dict[int, float] = field(default_factory=dict)
    samples: dict[int, list[Sample]] = field(default_factory=dict)  # supervisor pid -> samples
    settled: bool = True  # False from a supervisor's SIGKILL until its successor answers
    actions: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.stack.instance

    def count(self, action: str) -> None:
        self.actions[action] = self.actions.get(action, 0) + 1


class Soak:
    """The chaos and the invariant checks; collects every violation with its time."""

    def __init__(self, instances: list[Instance], rng: random.Random, seed: int) -> None:
        self.instances = instances
        self.rng = rng
        self.seed = seed
        self.violations: list[str] = []
        self.started = time.monotonic()

    def violation(self, instance: Instance, message: str) -> None:
        elapsed = time.monotonic() - self.started
        self.violations.append(f"[{elapsed:7.1f}s] {instance.name}: {message}")

    # ------------------------------------------------------------------ events

    def consume_events(self, instance: Instance) -> None:
        for event in instance.tail.read_new():
            sid, name = event["service"], event["event"]
            if name == "lease_acquired":
                instance.supervisor_started.setdefault(event["pid"], time.monotonic())
            elif name == "spawned":
                instance.spawned[event["pid"]] = sid
                instance.stopping[sid] = False
            elif name == "stopping":
                instance.stopping[sid] = True
            elif name == "exited":
                self.check_exit(instance, event)
            elif name == "orphan_reclaimed" and event["pid"] not in instance.spawned:
                self.violation(instance, f"reclaimed PID {event['pid']}, which it never spawned")

    def check_exit(self, instance: Instance, event: Event) -> None:
        sid, pid = event["service"], event["pid"]
        if instance.spawned.get(pid) != sid:
            self.violation(instance, f"reports the exit of PID {pid} ({sid}), not its own")
            return
        own_stop = instance.stopping.get(sid, False)
        crashed = event["signal"] is None and event["code"] not in (0, None)
        if not (own_stop or pid in instance.killed or crashed):
            how = f"signal {event['signal']}" if event["signal"] else f"exit {event['code']}"
            self.violation(
                instance,
                f"{sid} (PID {pid}) ended by {how}: not by the chaos, its supervisor or itself",
            )

    # --------------------------------------------------------------- processes

    def check_processes(self) -> None:
        procs: dict[int, tuple[int, list[str], dict[str, str]]] = {}
        for proc in psutil.process_iter(["pid", "ppid", "cmdline", "status"]):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            try:
                env = proc.environ()
            except (psutil.Error, OSError):
                env = {}
            procs[proc.pid] = (proc.info["ppid"], proc.info["cmdline"] or [], env)
        for instance in self.instances:
            self.check_instance_processes(instance, procs)

    def check_instance_processes(
        self, instance: Instance, procs: dict[int, tuple[int, list[str], dict[str, str]]]
    ) -> None:
        config = str(instance.stack.config_path)
        supervisors = [pid for pid, (_, cmd, _) in procs.items() if "up" in cmd and config in cmd]
        supervisors = still_alive(supervisors)
        if len(supervisors) > 1:
            self.violation(instance, f"{len(supervisors)} supervisors: {supervisors}")
        current = instance.stack.process
        if current is not None and current.poll() is not None:
            self.violation(instance, f"supervisor exited with {current.returncode}")
        groups: dict[str, dict[int, list[int]]] = {}
        for pid, (_, cmdline, env) in procs.items():
            sid = instance.stack.service_of(cmdline, env)
            if sid is None:
                continue
            with contextlib.suppress(OSError):
                groups.setdefault(sid, {}).setdefault(os.getpgid(pid), []).append(pid)
            if current is None or not instance.settled or descends_from(pid, current.pid, procs):
                continue
            if still_alive([pid]):
                self.violation(
                    instance, f"PID {pid} ({sid}) is not under its supervisor {current.pid}"
                )
        for sid, by_group in groups.items():
            live = [pgid for pgid, pids in by_group.items() if still_alive(pids)]
            if len(live) > 1:
                self.violation(
                    instance, f"{sid} runs in {len(live)} process groups at once: {by_group}"
                )
        if current is not None and current.poll() is None:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(current.pid)
                sample = Sample(time.monotonic(), proc.memory_info().rss, proc.num_fds())
                instance.samples.setdefault(current.pid, []).append(sample)

    # ------------------------------------------------------------------- chaos

    def act(self, elapsed_fraction: float, restarted: bool) -> bool:
        """One chaos action; returns True once the supervisor restart has been done."""
        due = not restarted and elapsed_fraction >= 0.4
        instance = self.instances[-1] if due else self.rng.choice(self.instances)
        services = status_of(instance)
        if services is None or any(s["state"] != "ready" for s in services):
            instance.count("skipped (not all ready)")
            return restarted
        if due:
            self.restart_supervisor(instance)
            return True
        if self.rng.random() < 0.6:
            candidates = [s for s in services if s["failures"] <= MAX_FAILURES_TO_KILL and s["pid"]]
            if candidates:
                victim = self.rng.choice(candidates)
                instance.killed.add(victim["pid"])
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim["pid"], signal.SIGKILL)
                instance.count(f"SIGKILL {victim['id']}")
        else:
            relative = self.rng.choice(TOUCHED_FILES)
            instance.stack.path(relative).touch()
            instance.count(f"touch {relative.rsplit('/', 1)[-1]}")
        return restarted

    def restart_supervisor(self, instance: Instance) -> None:
        """SIGKILL the supervisor, then start a new ``up`` at once: it must take over."""
        old = instance.stack.process
        assert old is not None
        instance.settled = False
        old.kill()
        old.wait()
        instance.stack.process = None
        mark = len(instance.stack.events())
        new = instance.stack.start()
        lease = instance.stack.wait_event(lambda e: e["event"] == "lease_acquired", 30, after=mark)
        if lease["pid"] != new.pid:
            self.violation(
                instance, f"the new supervisor {new.pid} did not take the lease: {lease}"
            )
        # It answers on its control socket only after reclaiming what the old one left:
        # from then on, every process with this instance's marker must be under it.
        deadline = time.monotonic() + 30
        while status_of(instance) is None:
            if time.monotonic() > deadline:
                self.violation(instance, f"the new supervisor {new.pid} does not answer")
                break
            time.sleep(0.1)
        instance.settled = True
        instance.count("SIGKILL supervisor + up")

    # ------------------------------------------------------------------- run

    def run(self, duration: float) -> None:
        deadline = self.started + duration
        restarted = False
        next_chaos = time.monotonic() + self.rng.uniform(*CHAOS_EVERY_S)
        while time.monotonic() < deadline and not self.violations:
            for instance in self.instances:
                self.consume_events(instance)
            self.check_processes()
            if time.monotonic() >= next_chaos:
                fraction = (time.monotonic() - self.started) / duration
                restarted = self.act(fraction, restarted)
                next_chaos = time.monotonic() + self.rng.uniform(*CHAOS_EVERY_S)
            time.sleep(SAMPLE_EVERY_S)

    def wait_settled(self, instance: Instance, timeout: float) -> list[dict[str, Any]]:
        """Every service of ``instance`` ready again (after the chaos), within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            services = status_of(instance)
            if services is not None and all(s["state"] == "ready" for s in services):
                return services
            if time.monotonic() > deadline:
                raise AssertionError(
                    "\n".join(
                        [
                            f"{instance.name} did not settle within {timeout:g}s: {services}",
                            *self.violations,
                            instance.stack.describe_failures(),
                        ]
                    )
                )
            time.sleep(0.5)

    def check_flat_resources(self) -> None:
        for instance in self.instances:
            for pid, samples in instance.samples.items():
                born = instance.supervisor_started.get(pid, samples[0].at)
                steady = [s for s in samples if s.at - born >= WARMUP_S]
                if len(steady) < 6:
                    continue
                third = len(steady) // 3
                first, last = steady[:third], steady[-third:]
                rss = statistics.median(s.rss for s in last) - statistics.median(
                    s.rss for s in first
                )
                fds = statistics.median(s.fds for s in last) - statistics.median(
                    s.fds for s in first
                )
                if rss >= RSS_GROWTH_LIMIT:
                    self.violation(instance, f"supervisor {pid} RSS grew {rss / 2**20:.1f} MiB")
                if fds >= FD_GROWTH_LIMIT:
                    self.violation(instance, f"supervisor {pid} open fds grew by {fds}")

    def report(self) -> str:
        lines = [f"soak seed {self.seed} (MPSV3_SOAK_SEED={self.seed} replays it)"]
        for instance in self.instances:
            done = ", ".join(f"{k}: {v}" for k, v in sorted(instance.actions.items()))
            lines.append(f"{instance.name}: {done or 'no action'}")
            for pid, samples in instance.samples.items():
                lines.append(
                    f"  supervisor {pid}: {len(samples)} samples, RSS {samples[0].rss / 2**20:.1f}"
                    f" -> {samples[-1].rss / 2**20:.1f} MiB, fds {samples[0].fds} -> {samples[-1].fds}"
                )
        return "\n".join(lines)


def still_alive(pids: list[int]) -> list[int]:
    """The PIDs still running (not zombies) now: a snapshot of all processes is not atomic."""
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
    return alive


def descends_from(
    pid: int, ancestor: int, procs: dict[int, tuple[int, list[str], dict[str, str]]]
) -> bool:
    seen = set()
    while pid in procs and pid not in seen:
        seen.add(pid)
        parent = procs[pid][0]
        if parent == ancestor:
            return True
        pid = parent
    return False


def status_of(instance: Instance) -> list[dict[str, Any]] | None:
    """The services of ``status`` through the control socket, or None while there is none."""
    try:
        reply = asyncio.run(request(instance.target, {"cmd": "status"}, 10.0))
    except (MpsvError, OSError):
        return None
    if not reply.get("ok"):
        return None
    services: list[dict[str, Any]] = reply["result"]["services"]
    return services


def processes_of(stack: MindStack) -> list[str]:
    """Every live process of ``stack``'s services, described."""
    found = []
    for proc in stack.processes():
        with contextlib.suppress(psutil.Error):
            found.append(f"{proc.pid} {' '.join(proc.cmdline())}")
    return found


def test_two_instances_side_by_side_keep_their_invariants_under_chaos(
    mind_stack: MindStackFactory, soak_duration: float
) -> None:
    seed = int(os.environ.get("MPSV3_SOAK_SEED", random.randrange(2**32)))
    stacks = [mind_stack("soak-a"), mind_stack("soak-b")]
    for stack in stacks:
        stack.start()
    instances = []
    for stack in stacks:
        stack.wait_all_ready()
        target = locate(stack.config_path, stack.set_args()[1::2])
        instances.append(Instance(stack, target, EventTail(stack.state_dir / "events.jsonl")))
    soak = Soak(instances, random.Random(seed), seed)

    soak.run(soak_duration)
    assert soak.violations == [], "\n".join([soak.report(), *soak.violations])
    for instance in instances:
        services = soak.wait_settled(instance, SETTLE_TIMEOUT_S)
        assert [s["id"] for s in services] == list(SERVICES)
        soak.consume_events(instance)
    soak.check_processes()
    soak.check_flat_resources()
    print(soak.report())
    assert any("SIGKILL supervisor" in key for i in instances for key in i.actions), soak.report()
    assert soak.violations == [], "\n".join([soak.report(), *soak.violations])

    for instance in instances:
        result = instance.stack.cli("down", timeout=120)
        assert result.returncode == 0, result.stderr
        process = instance.stack.process
        assert process is not None
        assert process.wait(timeout=60) == 0
        instance.stack.process = None
        soak.consume_events(instance)
        assert [e["event"] for e in instance.stack.events()][-1] == "shutdown"
    deadline = time.monotonic() + 10
    while any(processes_of(i.stack) for i in instances) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {i.name: processes_of(i.stack) for i in instances} == {i.name: [] for i in instances}
    assert soak.violations == [], "\n".join(soak.violations)
