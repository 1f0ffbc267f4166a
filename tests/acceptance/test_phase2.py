"""Phase 2 acceptance, criteria 1 to 5, against private copies of the Mind Protocol stack.

Each test copies ``examples/mind-protocol`` (fixture ``mind_stack``), starts the real
``mpsv3 up`` on free ports under a unique instance name, and checks the criterion from
outside, as an operator would: exit codes and messages, ``status --json``, ``events.jsonl``,
the services' own endpoints, and ``psutil``.

1. Singleton: two ``up`` at once -> one supervisor; SIGKILL it -> the next ``up`` starts at once.
2. No stale locks: legacy lock files naming dead PIDs are removed at start; one naming a live
   process is kept and reported.
3. All 7 services reach ``ready`` through their probes.
4. A touch of ``consciousness_engine_v2.py`` restarts ``ws_api`` only.
5. Crash recovery: backoff 1, 2, 4, 8 s with the example's values; quarantine at 10 failures
   (scaled base); ``release`` brings the service back.

The failure switch of ws_api (``WS_API_FAIL_ON_START``) is read from its environment, fixed
when the config is loaded. The tests put it behind a file instead (``ws_api.fail`` in the
copy, see ``MindStack.use_fail_file``): touching the file turns it on for every later spawn
without touching the running ws_api, so the first failure is the SIGKILL itself; removing it
before ``release`` lets the released ws_api come up. Patching the yaml and ``mpsv3 reload``
would not do: a changed spec replaces the runner, which restarts ws_api itself, and the same
again when the switch is turned off, so ``release`` would not be what brings it back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from mindstack import READY_TIMEOUT_S, SERVICES, MindStack, MindStackFactory, skip_on_windows

from mpsv3.config.loader import load_config

pytestmark = [pytest.mark.acceptance, skip_on_windows]

Event = dict[str, Any]

#: How long the next ``up`` may take to hold the lease after a SIGKILL of the holder: the
#: time to start Python and load the config on a busy machine; a lease that outlived its
#: holder would instead make ``up`` exit 75 at once.
NEXT_UP_LEASE_S = 20.0
#: Margin on a backoff delay: the restart comes after the delay, and this soon after it.
BACKOFF_LATE_S = 2.0


def when(event: Event) -> float:
    """An event's ``ts`` as a POSIX timestamp."""
    return datetime.strptime(event["ts"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def of(events: list[Event], name: str, sid: str | None = None) -> list[Event]:
    return [e for e in events if e["event"] == name and (sid is None or e["service"] == sid)]


def supervisors_of(stack: MindStack) -> list[psutil.Process]:
    """Live ``mpsv3 up`` processes of this copy's config."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if "up" in cmdline and str(stack.config_path) in cmdline:
            found.append(proc)
    return found


def redis_ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def wait_exited(pids: list[int], timeout: float) -> list[int]:
    """The PIDs among ``pids`` still alive (not zombies) after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def wait_count(
    stack: MindStack, predicate: Any, count: int, timeout: float, after: int
) -> list[Event]:
    """The first ``count`` events from index ``after`` that satisfy ``predicate``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in stack.events()[after:] if predicate(e)]
        if len(found) >= count:
            return found[:count]
        if stack.process is not None and stack.process.poll() is not None:
            raise AssertionError(f"supervisor exited with {stack.process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(found)} of {count} events within {timeout:g}s:\n{stack.describe_failures()}"
            )
        time.sleep(0.1)


def kill_and_reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# ------------------------------------------------------------------------ 1. singleton


def test_two_ups_at_once_make_one_supervisor_and_kill_9_frees_the_lease_at_once(
    mind_stack: MindStackFactory,
) -> None:
    stack = mind_stack("singleton")
    outputs = [stack.root / "up-1.out", stack.root / "up-2.out"]
    contenders = [stack.launch(out) for out in outputs]
    try:
        deadline = time.monotonic() + 60
        while all(p.poll() is None for p in contenders) and time.monotonic() < deadline:
            time.sleep(0.05)
        ended = [i for i, p in enumerate(contenders) if p.poll() is not None]
        assert len(ended) == 1, f"expected exactly one `up` to give way, ended: {ended}"
        loser, winner = contenders[ended[0]], contenders[1 - ended[0]]
        said = outputs[ended[0]].read_text()
        assert loser.returncode == 75, said
        expected = f"mpsv3: instance '{stack.instance}' is already supervised by PID {winner.pid}"
        assert expected in said
        stack.process = winner
    finally:
        for proc in contenders:
            if proc is not stack.process:
                kill_and_reap(proc)

    stack.wait_all_ready()
    leases = of(stack.events(), "lease_acquired")
    assert [e["pid"] for e in leases] == [winner.pid]
    assert [p.pid for p in supervisors_of(stack)] == [winner.pid]
    service_pids = [pid for pid in stack.pids().values() if pid is not None]
    assert len(service_pids) == len(SERVICES)

    # SIGKILL the holder: the OS frees the lease, the services die with it (parent-death
    # signal), and the next `up` takes over at once on the same ports.
    before = len(stack.events())
    winner.kill()
    winner.wait()
    stack.process = None
    started = time.monotonic()
    successor = stack.start()
    lease = stack.wait_event(
        lambda e: e["event"] == "lease_acquired", NEXT_UP_LEASE_S, after=before
    )
    took = time.monotonic() - started
    assert lease["pid"] == successor.pid
    assert took < NEXT_UP_LEASE_S
    assert successor.poll() is None, stack.console_text()
    assert wait_exited(service_pids, 15) == [], "services of the killed supervisor outlived it"
    status = stack.wait_all_ready()
    assert status["supervisor"]["pid"] == successor.pid
    assert [p.pid for p in supervisors_of(stack)] == [successor.pid]


# ------------------------------------------------------------------- 2. no stale locks


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_legacy_locks_naming_dead_pids_are_removed_and_a_live_one_is_kept_and_reported(
    mind_stack: MindStackFactory,
) -> None:
    stack = mind_stack("locks")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        time.sleep(0.2)  # the lock is written after its holder started, as a launcher would
        launcher_lock = stack.path(".launcher.lock")
        dead_lock = stack.path(".locks/ws_api.pid")
        live_lock = stack.path(".locks/falkordb.pid")
        dead_lock.parent.mkdir()
        first_dead, second_dead = dead_pid(), dead_pid()
        launcher_lock.write_text(f"{first_dead}\n")
        dead_lock.write_text(json.dumps({"pid": second_dead, "service": "ws_api"}))
        live_lock.write_text(json.dumps({"pid": holder.pid, "service": "falkordb"}))

        stack.start()
        stack.wait_event(lambda e: e["event"] == "spawned")
        events = stack.events()
        first_spawn = next(i for i, e in enumerate(events) if e["event"] == "spawned")
        removed = {e["path"]: e for e in of(events[:first_spawn], "legacy_lock_removed")}
        kept = {e["path"]: e for e in of(events[:first_spawn], "legacy_lock_kept")}
        assert set(removed) == {str(launcher_lock), str(dead_lock)}
        assert removed[str(launcher_lock)]["pid"] == first_dead
        assert removed[str(dead_lock)]["pid"] == second_dead
        assert "not running" in removed[str(dead_lock)]["reason"]
        assert set(kept) == {str(live_lock)}
        assert kept[str(live_lock)]["pid"] == holder.pid
        assert kept[str(live_lock)]["level"] == "warning"
        assert f"PID {holder.pid} is alive" in kept[str(live_lock)]["reason"]
        assert not launcher_lock.exists()
        assert not dead_lock.exists()
        assert live_lock.exists()
        assert holder.poll() is None, "the live holder of a legacy lock was killed"
        log = (stack.state_dir / "logs" / "mpsv3.log").read_text()
        assert str(live_lock) in log, "the kept lock is not reported in the supervisor's log"
        assert stack.stop() == 0
        assert live_lock.exists()
        assert holder.poll() is None
    finally:
        kill_and_reap(holder)


# ------------------------------------------------------------------------ 3. all ready


class ProbeWatch(threading.Thread):
    """Asks what the readiness probes ask, from outside, from before the supervisor starts.

    For each target it keeps the start time of its last failed attempt: the service was
    not answering then, so a gate that really waits for its probe passes after that moment.
    """

    def __init__(self, checks: dict[str, Callable[[], bool]]) -> None:
        super().__init__(daemon=True)
        self.checks = checks
        self.last_failure: dict[str, float] = {}
        self.first_success: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.done.is_set() and time.monotonic() < deadline:
            pending = [sid for sid in self.checks if sid not in self.first_success]
            if not pending:
                return
            for sid in pending:
                began = time.time()
                try:
                    ok = self.checks[sid]()
                except (OSError, httpx.HTTPError, ValueError, KeyError):
                    ok = False
                if ok:
                    self.first_success[sid] = began
                else:
                    self.last_failure[sid] = began
            time.sleep(0.02)


def outside_checks(stack: MindStack, client: httpx.Client) -> dict[str, Callable[[], bool]]:
    """The network-visible readiness probes of the example, asked the same way."""

    def http_ok(variable: str, path: str) -> Callable[[], bool]:
        return lambda: client.get(stack.url(variable, path)).status_code == 200

    def tcp(variable: str) -> Callable[[], bool]:
        def connect() -> bool:
            with socket.create_connection(("127.0.0.1", stack.port(variable)), timeout=2):
                return True

        return connect

    def stimulus_recorded() -> bool:
        url = stack.url("WS_PORT", "/api/stimulus/stats?source=stimulus_injection&within_s=10")
        return bool(client.get(url).json()["recent"])

    return {
        "falkordb": lambda: redis_ping(stack.port("FALKORDB_PORT")).startswith(b"+PONG"),
        "ws_api": http_ok("WS_PORT", "/api/ping"),
        "dashboard": http_ok("DASHBOARD_PORT", "/healthz"),
        "signals_collector": tcp("SIGNALS_PORT"),
        "stimulus_injection": stimulus_recorded,
    }


def test_all_seven_services_reach_ready_through_their_probes(mind_stack: MindStackFactory) -> None:
    stack = mind_stack("ready")
    with httpx.Client(timeout=2) as client:
        watch = ProbeWatch(outside_checks(stack, client))
        stack.start()
        watch.start()
        try:
            status = stack.wait_all_ready()
        finally:
            watch.done.set()
            watch.join()

    services = {s["id"]: s for s in status["services"]}
    assert list(services) == list(SERVICES)
    for sid, entry in services.items():
        assert entry["state"] == "ready", entry
        assert entry["pid"] is not None and psutil.pid_exists(entry["pid"]), entry
        assert entry["ready_since"] is not None, entry
        assert (entry["restarts"], entry["failures"], entry["reason"]) == (0, 0, None), (sid, entry)

    # Each gate passed once, after the gates of everything the service requires...
    events = stack.events()
    ready = {e["service"]: e for e in events if e["event"] == "ready"}
    ready_at = {e["service"]: i for i, e in enumerate(events) if e["event"] == "ready"}
    spawned_at = {e["service"]: i for i, e in enumerate(events) if e["event"] == "spawned"}
    assert set(ready_at) == set(SERVICES)
    config = load_config(stack.config_path, stack.variables)
    for spec in config.services:
        assert spec.readiness is not None, f"{spec.id} has no readiness probe"
        for dep in spec.requires:
            assert ready_at[dep] < spawned_at[spec.id], f"{spec.id} started before {dep} was ready"

    # ...and not before its probe could pass: seen failing from outside at T, ready after T.
    assert set(watch.last_failure) == set(watch.checks), "the outside checks started too late"
    for sid, failed_at in watch.last_failure.items():
        assert when(ready[sid]) > failed_at - 0.002, (
            f"{sid} was declared ready {failed_at - when(ready[sid]):.3f}s before it answered"
        )
    assert set(watch.first_success) == set(watch.checks)

    # The two probes not visible on the network: the log line and the notify message.
    watcher_log = (stack.state_dir / "logs" / "conversation_watcher.log").read_text()
    # Every log line starts with its stamp (2026-12-01T15:04:05.123Z), then the service's text.
    assert re.search(r"^\S+Z watching ", watcher_log, re.MULTILINE), watcher_log
    orchestrator_log = (stack.state_dir / "logs" / "autonomy_orchestrator.log").read_text()
    assert "deciding every" in orchestrator_log, orchestrator_log
    ping = httpx.get(stack.url("WS_PORT", "/api/ping"), timeout=5)
    assert ping.json()["pid"] == services["ws_api"]["pid"]


# --------------------------------------------------------------------- 4. hot reload


def test_touching_the_engines_file_restarts_ws_api_and_only_it(
    mind_stack: MindStackFactory,
) -> None:
    stack = mind_stack("reload")
    stack.start()
    before_pids = {s["id"]: s["pid"] for s in stack.wait_all_ready()["services"]}
    mark = len(stack.events())

    stack.path("mind/engines/consciousness_engine_v2.py").touch()
    reload = stack.wait_event(lambda e: e["event"] == "reload", 20, after=mark)
    assert reload["service"] == "ws_api"
    assert any(p.endswith("consciousness_engine_v2.py") for p in reload["paths"]), reload
    respawned = stack.wait_event(lambda e: e["event"] == "spawned", 60, after=mark)
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "ws_api", 60, after=mark)
    time.sleep(3.0)  # well past the debounce: a late restart of anything else would show now

    after_pids = stack.pids()
    assert respawned["service"] == "ws_api"
    assert after_pids["ws_api"] == respawned["pid"] != before_pids["ws_api"]
    others = [sid for sid in SERVICES if sid != "ws_api"]
    assert {sid: after_pids[sid] for sid in others} == {sid: before_pids[sid] for sid in others}
    since = stack.events()[mark:]
    touched = {
        e["service"] for e in since if e["event"] in ("reload", "spawned", "stopping", "exited")
    }
    assert touched == {"ws_api"}, [e for e in since if e["service"] != "ws_api"]
    assert stack.states() == dict.fromkeys(SERVICES, "ready")
    assert httpx.get(stack.url("WS_PORT", "/api/ping"), timeout=5).json()["pid"] == respawned["pid"]


# ----------------------------------------------------------------- 5. crash recovery


def expected_delays(stack: MindStack, count: int) -> tuple[list[float], int]:
    """ws_api's first ``count`` backoff delays (s) and ``max_retries``, from the copy's config."""
    spec = next(
        s for s in load_config(stack.config_path, stack.variables).services if s.id == "ws_api"
    )
    backoff = spec.restart.backoff
    assert backoff.jitter == 0.0
    delays = [
        min(backoff.base_ms * backoff.factor ** (n - 1), backoff.max_ms) / 1000
        for n in range(1, count + 1)
    ]
    return delays, spec.restart.max_retries


def kill_ws_api_with_the_switch_on(stack: MindStack, fail_file: Path) -> tuple[int, int]:
    """Turn ws_api's failure switch on and SIGKILL it; (its PID, the event index before)."""
    pid = stack.pids()["ws_api"]
    assert pid is not None
    fail_file.touch()
    mark = len(stack.events())
    os.kill(pid, signal.SIGKILL)
    return pid, mark


def test_a_crashing_ws_api_backs_off_1_2_4_8_seconds_with_the_example_values(
    mind_stack: MindStackFactory,
) -> None:
    stack = mind_stack("backoff")
    fail_file = stack.use_fail_file()
    delays, _ = expected_delays(stack, 4)
    assert delays == [1.0, 2.0, 4.0, 8.0]
    stack.start()
    stack.wait_all_ready()
    killed, mark = kill_ws_api_with_the_switch_on(stack, fail_file)

    # The 4th restart comes 8 s after the 4th backoff: 1 + 2 + 4 + 8 s after the kill.
    wait_count(
        stack, lambda e: e["event"] == "restarting" and e["service"] == "ws_api", 4, 90, mark
    )
    events = [e for e in stack.events()[mark:] if e["service"] == "ws_api"]
    exits = of(events, "exited")
    assert exits[0]["pid"] == killed and exits[0]["signal"] == "SIGKILL", exits[0]
    assert [e["code"] for e in exits[1:4]] == [1, 1, 1], exits
    backoffs = of(events, "backoff")[:4]
    assert [(e["delay_s"], e["attempt"]) for e in backoffs] == [
        (d, n) for n, d in enumerate(delays, 1)
    ]
    restarts = [e for e in of(events, "restarting") if e["reason"] == "crash"][:4]
    for backoff, restart, delay in zip(backoffs, restarts, delays, strict=True):
        waited = when(restart) - when(backoff)
        assert delay - 0.05 <= waited <= delay + BACKOFF_LATE_S, (delay, waited)
    log = (stack.state_dir / "logs" / "ws_api.log").read_text()
    assert "WS_API_FAIL_ON_START=1: failing on purpose" in log


def test_a_crashing_ws_api_is_quarantined_at_max_retries_and_release_brings_it_back(
    mind_stack: MindStackFactory,
) -> None:
    stack = mind_stack("quarantine")
    fail_file = stack.use_fail_file()
    stack.scale_ws_api_backoff(10)
    delays, max_retries = expected_delays(stack, 9)
    assert max_retries == 10
    stack.start()
    stack.wait_all_ready()
    killed, mark = kill_ws_api_with_the_switch_on(stack, fail_file)

    quarantined = stack.wait_event(
        lambda e: e["event"] == "quarantined" and e["service"] == "ws_api", timeout=120, after=mark
    )
    events = [e for e in stack.events()[mark:] if e["service"] == "ws_api"]
    upto = events.index(quarantined)
    exits = of(events[:upto], "exited")
    assert len(exits) == max_retries
    assert exits[0]["pid"] == killed and exits[0]["signal"] == "SIGKILL"
    assert {e["code"] for e in exits[1:]} == {1}
    backoffs = of(events[:upto], "backoff")
    assert [(e["delay_s"], e["attempt"]) for e in backoffs] == [
        (round(d, 3), n) for n, d in enumerate(delays, 1)
    ]
    assert quarantined["level"] == "alert"  # ws_api is a core service
    entry = stack.service("ws_api")
    assert (entry["state"], entry["pid"], entry["failures"]) == ("quarantined", None, max_retries)

    time.sleep(2.0)  # it stays down: no spawn without an operator
    assert of(stack.events()[mark:], "spawned", "ws_api") == of(events[:upto], "spawned")

    fail_file.unlink()
    before_release = len(stack.events())
    result = stack.cli("release", "ws_api")
    assert result.returncode == 0, result.stderr
    stack.wait_event(
        lambda e: e["event"] == "released" and e["service"] == "ws_api", 10, before_release
    )
    back = stack.wait_event(
        lambda e: e["event"] == "ready" and e["service"] == "ws_api", 60, before_release
    )
    assert back["service"] == "ws_api"
    entry = stack.service("ws_api")
    assert (entry["state"], entry["failures"]) == ("ready", 0)
    assert httpx.get(stack.url("WS_PORT", "/api/ping"), timeout=5).json()["pid"] == entry["pid"]
