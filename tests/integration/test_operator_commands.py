"""Every client command against a real `mpsv3 up`: status, logs, stop/start/restart/release,
reload (added, removed, changed, invalid), down, metrics."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from prometheus_client.parser import text_string_to_metric_families

from support import MPSV3, alive, config, py, service

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "status.schema.json").read_text())
SLEEPER = py("import time\nprint('hello from', __import__('os').getpid(), flush=True)\nwhile True: time.sleep(1)")


def base_config(**top: Any) -> str:
    """db, api requiring db, worker requiring api; all ready once started."""
    return config(
        service("db", SLEEPER),
        service("api", SLEEPER, requires=["db"]),
        service("worker", SLEEPER, requires=["api"]),
        **top,
    )


def started(make_stack: Any, **top: Any) -> Any:
    """The stack of :func:`base_config`, started and ready."""
    stack = make_stack(base_config(**top))
    stack.start()
    stack.wait_state("worker", "ready")
    return stack


def test_status_json_matches_the_schema_and_the_table_lists_services(make_stack: Any) -> None:
    stack = started(make_stack)
    status = stack.status()
    jsonschema.validate(status, SCHEMA)
    assert [s["id"] for s in status["services"]] == ["db", "api", "worker"]
    assert all(s["state"] == "ready" and s["pid"] for s in status["services"])
    table = stack.cli("status")
    assert table.returncode == 0
    for sid in ("db", "api", "worker"):
        assert sid in table.stdout
    assert stack.stop() == 0


def test_stop_leaves_dependents_running_and_start_brings_dependencies_first(make_stack: Any) -> None:
    stack = started(make_stack)
    api_pid = stack.service("api")["pid"]
    result = stack.cli("stop", "db")
    assert result.returncode == 0, result.stderr
    stack.wait_state("db", "stopped")
    assert stack.service("api")["pid"] == api_pid  # dependents untouched
    assert stack.service("db")["state"] == "stopped"
    # stop api too, then `start api` must start db first
    stack.cli("stop", "api")
    stack.wait_state("api", "stopped")
    mark = len(stack.events())
    result = stack.cli("start", "api")
    assert result.returncode == 0, result.stderr
    assert "db" in result.stdout
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "api", after=mark)
    spawned = [e["service"] for e in stack.events()[mark:] if e["event"] == "spawned"]
    assert spawned[:2] == ["db", "api"]
    assert stack.stop() == 0


def test_restart_gives_a_new_pid_and_counts(make_stack: Any) -> None:
    stack = started(make_stack)
    old = stack.service("api")["pid"]
    mark = len(stack.events())
    assert stack.cli("restart", "api").returncode == 0
    event = stack.wait_event(lambda e: e["event"] == "restarting" and e["service"] == "api", after=mark)
    assert event["reason"] == "manual"
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "api", after=mark)
    now = stack.service("api")
    assert now["pid"] != old
    assert now["restarts"] == 1
    assert stack.stop() == 0


def test_unknown_id_lists_the_valid_ones(make_stack: Any) -> None:
    stack = started(make_stack)
    result = stack.cli("restart", "nope")
    assert result.returncode != 0
    assert "db, api, worker" in result.stderr
    assert stack.stop() == 0


def test_release_brings_a_quarantined_service_back(make_stack: Any, tmp_path: Path) -> None:
    switch = tmp_path / "broken"
    switch.write_text("yes")
    flaky = py(f"""
        import os, sys, time
        if os.path.exists({str(switch)!r}): sys.exit(1)
        print("up", flush=True)
        while True: time.sleep(1)
    """)
    stack = make_stack(config(
        service("db", flaky, readiness={"log": {"pattern": "^up$"}}, restart={"backoff": {"base_ms": 50}, "max_retries": 3}),
        service("api", SLEEPER, requires=["db"]),
    ))
    stack.start()
    stack.wait_state("db", "quarantined")
    api = stack.service("api")
    assert api["state"] == "pending" and "db" in api["reason"] and "quarantined" in api["reason"]
    switch.unlink()
    mark = len(stack.events())
    result = stack.cli("release", "db")
    assert result.returncode == 0, result.stderr
    stack.wait_event(lambda e: e["event"] == "released" and e["service"] == "db", after=mark)
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "api", after=mark)
    assert stack.service("db")["failures"] == 0
    assert stack.stop() == 0


def test_reload_applies_added_removed_changed_and_rejects_invalid(make_stack: Any) -> None:
    stack = started(make_stack)
    pids = {s["id"]: s["pid"] for s in stack.status()["services"]}
    name = stack.status()["supervisor"]["name"]
    stack.write_config(config(
        service("db", SLEEPER),
        service("api", SLEEPER, requires=["db"], env={"CHANGED": "yes"}),
        service("extra", SLEEPER),
        name=name,
    ))
    mark = len(stack.events())
    result = stack.cli("reload")
    assert result.returncode == 0, result.stderr
    assert "extra" in result.stdout and "worker" in result.stdout and "api" in result.stdout
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "extra", after=mark)
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "api", after=mark)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ids = [s["id"] for s in stack.status()["services"]]
        if "worker" not in ids:
            break
        time.sleep(0.1)
    now = {s["id"]: s["pid"] for s in stack.status()["services"]}
    assert set(now) == {"db", "api", "extra"}
    assert now["db"] == pids["db"]  # unchanged: left alone
    assert now["api"] != pids["api"]  # changed: restarted
    assert not alive(pids["worker"])  # removed: stopped

    stack.write_config("version: 1\nservices:\n  - id: db\n    cmd: []\n    requires: [ghost]\n")
    result = stack.cli("reload")
    assert result.returncode == 78
    assert "ghost" in result.stderr or "ghost" in result.stdout
    assert {s["id"]: s["pid"] for s in stack.status()["services"]} == now  # nothing changed
    assert stack.stop() == 0


def test_logs_tail_and_follow(make_stack: Any) -> None:
    stack = started(make_stack)
    deadline = time.monotonic() + 10
    result = stack.cli("logs", "api", "-c", str(stack.config_path), "-n", "5")
    while "hello from" not in result.stdout and time.monotonic() < deadline:
        time.sleep(0.1)
        result = stack.cli("logs", "api", "-c", str(stack.config_path), "-n", "5")
    assert result.returncode == 0, result.stderr
    assert "hello from" in result.stdout
    follower = subprocess.Popen(
        [*MPSV3, "logs", "api", "-f", "-n", "1", "-c", str(stack.config_path)],
        env=stack.env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()
        assert "hello from" in first
        mark = len(stack.events())
        stack.cli("restart", "api")
        stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "api", after=mark)
        new_pid = stack.service("api")["pid"]
        line = follower.stdout.readline()  # the follower survives the restart
        assert f"hello from {new_pid}" in line
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    bad = stack.cli("logs", "ghost", "-c", str(stack.config_path))
    assert bad.returncode != 0 and "db, api, worker" in bad.stderr
    assert stack.stop() == 0


def test_down_stops_everything_and_the_supervisor(make_stack: Any) -> None:
    stack = started(make_stack)
    proc = stack.process
    pids = [s["pid"] for s in stack.status()["services"]]
    result = stack.cli("down")
    assert result.returncode == 0, result.stderr
    assert proc.wait(timeout=30) == 0
    stack.process = None
    assert not any(alive(pid) for pid in pids)
    stopped = [e["service"] for e in stack.events() if e["event"] == "stopped"]
    assert stopped == ["worker", "api", "db"]
    after = stack.cli("status")
    assert after.returncode == 3
    assert "no supervisor" in after.stderr


def test_metrics_endpoint_counts_restarts(make_stack: Any, port: int) -> None:
    stack = started(make_stack, metrics={"port": port})
    stack.cli("restart", "api")
    stack.wait_event(lambda e: e["event"] == "restarting" and e["service"] == "api")
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "api" and stack.service("api")["restarts"] == 1)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("mpsv3_service_restarts_total", (("reason", "manual"), ("service", "api")))] == 1
    assert samples[("mpsv3_service_up", (("service", "db"),))] == 1
    assert samples[("mpsv3_service_ready", (("service", "worker"),))] == 1
    assert stack.stop() == 0
