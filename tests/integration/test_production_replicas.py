"""Issue 17's ``replicas`` against a real ``mpsv3 up``: a rolling restart never has fewer
than all but one replica ready (status sampled all along, and every transition replayed) and
does not go past a replica that does not come back; a change to a replicated service's files
rolls it too; ``scale`` adds and removes replicas.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from production_support import SLEEPER

from support import Event, Stack, alive, config, log_lines, ok, py, service, wait_for

REPLICA = py("""
    import os, sys, time
    time.sleep(float(os.environ.get('DELAY', '0.6')))
    if os.path.exists('broken'): sys.exit('a bad release')
    print('ready', os.environ['MPSV3_REPLICA'], os.environ['SLOT'], flush=True)
    while True: time.sleep(1)
""")


def replicated(make_stack: Any, count: int, *others: dict[str, Any], delay: float = 0.6, **keys: Any) -> Stack:
    """``count`` replicas of ``worker`` (with more ``keys``) beside ``others``, all ready."""
    env = {"SLOT": "slot-${MPSV3_REPLICA}", "DELAY": str(delay)}
    worker = service("worker", REPLICA, replicas=count, env=env, readiness={"log": {"pattern": "^ready"}},
                     stop={"grace_s": 2}, **keys)
    stack: Stack = make_stack(config(worker, *others))
    (stack.root / "code.py").write_text("v = 1\n")
    stack.start()
    for n in range(1, count + 1):
        stack.wait_event(lambda e, n=n: e["event"] == "ready" and e["service"] == f"worker-{n}")
    return stack


def fewest_ready(events: list[Event], ready: set[str]) -> int:
    """Replay ``state`` events from a moment when ``ready`` were ready: the fewest at any time."""
    fewest = len(ready)
    for event in events:
        if event["event"] != "state" or not str(event["service"]).startswith("worker-"):
            continue
        if event["to"] == "ready":
            ready.add(event["service"])
        elif event["from"] == "ready":
            ready.discard(event["service"])
        fewest = min(fewest, len(ready))
    return fewest


def assert_rolled(stack: Stack, mark: int, ids: list[str]) -> None:
    """Each replica restarted, the next spawned only once the one before was ready again."""
    after = stack.events()[mark:]
    for before, nxt in itertools.pairwise(ids):
        ready_at = next(i for i, e in enumerate(after) if e["service"] == before and e["event"] == "ready")
        spawn_at = next(i for i, e in enumerate(after) if e["service"] == nxt and e["event"] == "spawned")
        assert ready_at < spawn_at, f"{nxt} spawned before {before} was ready again"
    assert fewest_ready(after, set(ids)) == len(ids) - 1


def test_a_rolling_restart_of_three_replicas_never_has_fewer_than_two_ready(make_stack: Any) -> None:
    stack = replicated(make_stack, 3, delay=1.5)
    ids = ["worker-1", "worker-2", "worker-3"]
    old = {s["id"]: s["pid"] for s in stack.status()["services"]}
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            services = stack.status()["services"]
            samples.append(sum(1 for s in services if s["id"] in ids and s["state"] == "ready"))

    sampler = threading.Thread(target=sample)
    mark = len(stack.events())
    sampler.start()
    try:
        assert "one at a time" in ok(stack.cli("restart", "worker"))
        for sid in ids:
            stack.wait_event(lambda e, sid=sid: e["event"] == "ready" and e["service"] == sid, after=mark)
    finally:
        done.set()
        sampler.join()
    assert len(samples) >= 4 and min(samples) >= 2, samples
    assert 2 in samples  # the sampler saw the roll, not only its end
    assert_rolled(stack, mark, ids)
    now = {s["id"]: s for s in stack.status()["services"]}
    assert all(now[sid]["pid"] != old[sid] and now[sid]["replica"] == n for n, sid in enumerate(ids, 1))
    assert [line for line in log_lines(stack, "worker-2") if line.startswith("ready")] == ["ready 2 slot-2"] * 2
    assert stack.stop() == 0


def test_a_rolling_restart_does_not_go_past_a_replica_that_does_not_come_back(make_stack: Any) -> None:
    stack = replicated(make_stack, 3, restart={"backoff": {"base_ms": 200, "factor": 1}, "max_retries": 100})
    old = {s["id"]: s["pid"] for s in stack.status()["services"]}
    (stack.root / "broken").write_text("yes")
    mark = len(stack.events())
    ok(stack.cli("restart", "worker"))
    stack.wait_event(lambda e: e["event"] == "backoff" and e["service"] == "worker-1" and e["attempt"] >= 3, after=mark)
    time.sleep(1.0)
    now = {s["id"]: s for s in stack.status()["services"]}
    assert [(now[sid]["pid"], now[sid]["state"]) for sid in ("worker-2", "worker-3")] == [
        (old["worker-2"], "ready"), (old["worker-3"], "ready")]
    assert stack.stop() == 0


def test_a_change_to_a_replicated_services_files_rolls_it(make_stack: Any) -> None:
    stack = replicated(make_stack, 2, watch={"paths": ["code.py"], "debounce_ms": 100})
    stack.wait_event(lambda e: e["event"] == "watcher_started")
    time.sleep(0.3)
    mark = len(stack.events())
    (stack.root / "code.py").write_text("v = 2\n")
    for sid in ("worker-1", "worker-2"):
        stack.wait_event(lambda e, sid=sid: e["event"] == "ready" and e["service"] == sid, after=mark)
    assert_rolled(stack, mark, ["worker-1", "worker-2"])
    assert stack.stop() == 0


def test_scale_adds_and_removes_replicas_at_run_time(make_stack: Any) -> None:
    stack = replicated(make_stack, 2, service("single", SLEEPER))
    assert "added: worker-3, worker-4" in ok(stack.cli("scale", "worker", "4"))
    for sid in ("worker-3", "worker-4"):
        stack.wait_event(lambda e, sid=sid: e["event"] == "ready" and e["service"] == sid)
    assert log_lines(stack, "worker-4") == ["ready 4 slot-4"]
    shown = ok(stack.cli("logs", "worker", "-c", str(stack.config_path))).splitlines()
    assert sorted(line.split(" | ")[0].strip() for line in shown) == [f"worker-{n}" for n in range(1, 5)]
    pids = {s["id"]: s["pid"] for s in stack.status()["services"]}

    removed = ok(stack.cli("scale", "worker", "1")).strip().rpartition("removed: ")[2].rstrip(")")
    assert sorted(removed.split(", ")) == ["worker-2", "worker-3", "worker-4"]
    wait_for("three replicas gone", lambda: sorted(s["id"] for s in stack.status()["services"]) == ["single", "worker-1"])
    wait_for("their processes gone", lambda: not any(alive(pids[f"worker-{n}"]) for n in (2, 3, 4)))
    assert stack.service("worker-1")["pid"] == pids["worker-1"]  # untouched
    refused = stack.cli("scale", "single", "2")
    assert refused.returncode != 0 and "single has no replicas" in refused.stderr
    assert stack.stop() == 0


