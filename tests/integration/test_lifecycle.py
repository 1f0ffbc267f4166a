"""`mpsv3 up` with real processes: exit codes, backoff, quarantine, shutdown order, logs."""

from __future__ import annotations

import subprocess
import sys
import time
from itertools import pairwise
from typing import Any

import psutil
import pytest

from support import config, py, service, unstamped

SLEEPER = py("import time\nwhile True: time.sleep(1)")


def spawn_times(stack: Any, sid: str) -> list[float]:
    from datetime import datetime

    return [
        datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
        for e in stack.events()
        if e["event"] == "spawned" and e["service"] == sid
    ]


def test_exit_99_restarts_at_once_without_backoff(make_stack: Any, tmp_path: Any) -> None:
    marker = tmp_path / "ran-once"
    code = f"""
        import os, sys, time
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, 'w').close()
            sys.exit(99)
        while True: time.sleep(1)
    """
    stack = make_stack(config(service("api", py(code), restart={"backoff": {"base_ms": 5000}})))
    stack.start()
    exited = stack.wait_event(lambda e: e["event"] == "exited" and e["code"] == 99)
    stack.wait_event(lambda e: e["event"] == "ready" and e["ts"] >= exited["ts"] and e is not exited, after=stack.events().index(exited))
    assert stack.count("spawned", "api") == 2
    assert stack.count("backoff", "api") == 0
    restart = stack.wait_event(lambda e: e["event"] == "restarting")
    assert restart["reason"] == "reload"
    assert stack.service("api")["failures"] == 0
    assert stack.stop() == 0


def test_exit_78_quarantines_at_once_and_alerts(make_stack: Any, tmp_path: Any) -> None:
    alert_file = tmp_path / "alert.txt"
    alert = ["sh", "-c", f"echo $MPSV3_ALERT_SERVICE: $MPSV3_ALERT_REASON > {alert_file}"]
    stack = make_stack(config(service("db", ["sh", "-c", "exit 78"]), alert_cmd=alert))
    stack.start()
    event = stack.wait_event(lambda e: e["event"] == "quarantined")
    assert event["level"] == "alert"
    assert "exit 78" in event["reason"]
    assert stack.count("spawned", "db") == 1
    stack.wait_event(lambda e: e["event"] == "alert")
    deadline = time.monotonic() + 10
    while not alert_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alert_file.read_text().startswith("db: exit 78")
    status = stack.service("db")
    assert status["state"] == "quarantined"
    assert status["last_exit"]["code"] == 78
    assert stack.stop() == 0


def backoff_delays(make_stack: Any, code: int, restart: dict[str, Any]) -> tuple[Any, list[float]]:
    """A service ``flaky`` that exits ``code`` until quarantined: the stack and its delays."""
    stack = make_stack(config(service("flaky", ["sh", "-c", f"exit {code}"], restart=restart)))
    stack.start()
    stack.wait_event(lambda e: e["event"] == "quarantined", timeout=60)
    return stack, [e["delay_s"] for e in stack.events() if e["event"] == "backoff"]


def test_crash_backs_off_exponentially_then_quarantines(make_stack: Any) -> None:
    restart = {"backoff": {"base_ms": 300, "factor": 2, "max_ms": 60000}, "max_retries": 5}
    stack, delays = backoff_delays(make_stack, 1, restart)
    assert delays == [0.3, 0.6, 1.2, 2.4]
    attempts = [e["attempt"] for e in stack.events() if e["event"] == "backoff"]
    assert attempts == [1, 2, 3, 4]
    gaps = [b - a for a, b in pairwise(spawn_times(stack, "flaky"))]
    assert len(gaps) == 4
    for gap, delay in zip(gaps, delays, strict=True):
        assert delay * 0.9 <= gap <= delay + 2.0  # generous: the machine may be busy
    status = stack.service("flaky")
    assert status["state"] == "quarantined"
    assert status["failures"] == 5
    assert stack.stop() == 0


def test_jittered_delays_stay_within_bounds(make_stack: Any) -> None:
    restart = {"backoff": {"base_ms": 200, "factor": 2, "jitter": 0.5}, "max_retries": 4}
    stack, delays = backoff_delays(make_stack, 3, restart)
    assert len(delays) == 3
    for attempt, delay in enumerate(delays, 1):
        nominal = 0.2 * 2 ** (attempt - 1)
        assert nominal * 0.5 - 0.001 <= delay <= nominal * 1.5 + 0.001
    stack.stop()


def test_stop_kills_the_whole_tree_and_sigterm_stops_in_reverse_order(make_stack: Any) -> None:
    stack = make_stack(config(
        service("db", SLEEPER),
        service("api", ["sh", "-c", "sleep 1000 & sleep 1000 & wait"], requires=["db"]),
        service("web", ["sh", "-c", "trap '' TERM; sleep 1000 & wait; sleep 1000"], requires=["api"],
                stop={"grace_s": 1}),
    ))
    stack.start()
    stack.wait_state("web", "ready")
    pids = {s["id"]: s["pid"] for s in stack.status()["services"]}
    tree = []
    for pid in pids.values():
        proc = psutil.Process(pid)
        tree += [proc, *proc.children(recursive=True)]
    assert len(tree) >= 6
    assert stack.stop() == 0
    assert not [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    stopped = [e["service"] for e in stack.events() if e["event"] == "stopped"]
    assert stopped == ["web", "api", "db"]
    assert stack.events()[-1]["event"] == "shutdown"


def test_second_up_of_the_same_instance_exits_75(make_stack: Any) -> None:
    stack = make_stack(config(service("one", SLEEPER)))
    first = stack.start()
    stack.wait_state("one", "ready")
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "mpsv3", "up", "-c", str(stack.config_path)],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 75
    assert f"is already supervised by PID {first.pid}" in second.stderr
    assert time.monotonic() - started < 10
    assert stack.stop() == 0


def test_flood_of_200k_lines_reaches_the_log_whole(make_stack: Any) -> None:
    code = """
        import sys
        w = sys.stdout.write
        for i in range(200000):
            w(f"line {i:06d} the quick brown fox jumps over the lazy dog\\n")
    """
    stack = make_stack(config(service("flood", py(code)), logs={"max_bytes": 104857600}))
    stack.start("--quiet")
    stack.wait_state("flood", "exited", timeout=60)
    lines = [unstamped(line) for line in (stack.state_dir / "logs" / "flood.log").read_text().splitlines()]
    assert len(lines) == 200000
    assert lines[0] == "line 000000 the quick brown fox jumps over the lazy dog"
    assert all(
        line == f"line {i:06d} the quick brown fox jumps over the lazy dog"
        for i, line in enumerate(lines)
    )
    stack.stop()


def test_log_files_rotate_by_size(make_stack: Any) -> None:
    code = """
        for i in range(3000): print(f"{i:05d} " + "x" * 90)
    """
    stack = make_stack(config(service("chatty", py(code)), logs={"max_bytes": 100000, "backups": 2}))
    stack.start("--quiet")
    stack.wait_state("chatty", "exited", timeout=60)
    logs = stack.state_dir / "logs"
    assert (logs / "chatty.log.1").exists() and (logs / "chatty.log.2").exists()
    assert not (logs / "chatty.log.3").exists()
    for path in (logs / "chatty.log", logs / "chatty.log.1"):
        assert path.stat().st_size <= 100000
        assert all(len(unstamped(line)) == 96 for line in path.read_text().splitlines())
    stack.stop()


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="parent-death signal and subreaper are Linux"
)
def test_killed_supervisor_leaves_no_process_and_next_up_reclaims(
    make_stack: Any, port: int
) -> None:
    daemon = """
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(1000)
            os._exit(0)
        while True: time.sleep(1)
    """
    stack = make_stack(config(service("plain", SLEEPER), service("sneaky", py(daemon))))
    # Killing `up` leaves nothing (the keeper ends what the services left). To leave the
    # double-forked daemon behind, kill the keeper and the supervisor at once.
    stack.start(new_session=True)
    stack.wait_state("sneaky", "ready")
    stack.wait_state("plain", "ready")
    time.sleep(0.5)  # let the daemon finish forking
    name = stack.status()["supervisor"]["name"]
    marked = [p for p in psutil.process_iter() if _instance_of(p) == name]
    plain_pid = stack.service("plain")["pid"]
    stack.kill_group()
    time.sleep(2)
    assert (
        not psutil.pid_exists(plain_pid)
        or psutil.Process(plain_pid).status() == psutil.STATUS_ZOMBIE
    )
    survivors = [p for p in marked if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert len(survivors) == 1, "the double-forked daemon survives keeper and supervisor killed at once"
    before = len(stack.events())
    stack.start()
    event = stack.wait_event(lambda e: e["event"] == "orphan_reclaimed", after=before)
    assert event["pid"] == survivors[0].pid
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "sneaky", after=before)
    assert stack.stop() == 0
    # the new run's own daemon is found through its marker at stop
    time.sleep(0.5)
    assert not [
        p
        for p in psutil.process_iter()
        if _instance_of(p) == name and p.status() != psutil.STATUS_ZOMBIE
    ]


def _instance_of(proc: psutil.Process) -> str | None:
    try:
        return proc.environ().get("MPSV3_INSTANCE")
    except psutil.Error:
        return None


def test_foreign_port_holder_is_reported_and_left_alive(make_stack: Any, port: int) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(1000)",
        ],
    )
    try:
        time.sleep(0.5)
        stack = make_stack(config(service("api", SLEEPER, ports=[port], restart={"backoff": {"base_ms": 500}})))
        stack.start()
        event = stack.wait_event(lambda e: e["event"] == "port_conflict")
        assert event["pid"] == holder.pid
        backoff = stack.wait_event(lambda e: e["event"] == "backoff")
        assert backoff["reason"].startswith(f"port {port} is held by PID {holder.pid} (")
        assert backoff["reason"].endswith("not ours")
        assert holder.poll() is None
        stack.stop()
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()


def test_regression_shutdown_does_not_hang_on_the_file_watcher(make_stack: Any) -> None:
    """The watcher task once outlived shutdown: `up` stopped every service but never exited."""
    stack = make_stack(config(service("api", SLEEPER, watch={"paths": ["engine/**/*.py"]})))
    (stack.root / "engine").mkdir()
    stack.start()
    stack.wait_event(lambda e: e["event"] == "watcher_started")
    stack.wait_state("api", "ready")
    started = time.monotonic()
    assert stack.stop(timeout=20) == 0
    assert time.monotonic() - started < 15


def test_only_starts_the_named_services_and_their_dependencies(make_stack: Any) -> None:
    stack = make_stack(config(
        service("db", SLEEPER),
        service("api", SLEEPER, requires=["db"]),
        service("web", SLEEPER, requires=["api"]),
        service("other", SLEEPER),
    ))
    stack.start("--only", "api")
    stack.wait_state("api", "ready")
    # The others are supervised but not started (`start web` starts it later).
    states = {s["id"]: s["state"] for s in stack.status()["services"]}
    assert states == {"db": "ready", "api": "ready", "web": "stopped", "other": "stopped"}
    assert stack.count("spawned") == 2
    assert stack.stop() == 0


def test_regression_clean_shutdown_prints_no_traceback(make_stack: Any) -> None:
    """A flush scheduled by the last event once ran after the log files were closed."""
    stack = make_stack(config(service("one", SLEEPER)))
    stack.start()
    stack.wait_state("one", "ready")
    assert stack.stop() == 0
    assert "Traceback" not in stack.console_text()
