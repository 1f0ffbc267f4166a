"""``mpsv3 up -d`` with real processes and a real terminal (a pty).

The operator's terminal is a pseudo-terminal whose shell runs ``up -d`` as its job; once
``up -d`` returned, the test hangs the terminal up (closes its master end: the kernel sends
SIGHUP to the session) and kills the whole session. The stack must go on, unchanged.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from support import MPSV3, config, py, service

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a pty, sessions")


SLEEPER = py("import time; time.sleep(600)")


def seconds(ts: str) -> float:
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) + int(ts[20:23]) / 1000


class Terminal:
    """A shell on a pseudo-terminal in a session of its own, as a terminal emulator starts it."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.output = b""
        self.shell = subprocess.Popen(
            ["sh", "-c", command], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.2)
                if ready:
                    chunk = os.read(self.master, 4096)
                    if not chunk:
                        return
                    self.output += chunk
            except OSError:  # EIO: the other end is gone; EBADF: hung up by the test
                return

    def hang_up(self, kill: bool = True) -> None:
        """Close the terminal (SIGHUP to its session); then kill whatever of the session is left."""
        with contextlib.suppress(OSError):
            os.close(self.master)
        self._reader.join(timeout=2)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.shell.pid, signal.SIGKILL)
        self.shell.wait(timeout=30)


def service_pids(stack: Any) -> dict[str, int]:
    status = stack.status()
    pids = {s["id"]: s["pid"] for s in status["services"]}
    pids["keeper"] = status["supervisor"]["pid"]
    pids["engine"] = status["supervisor"]["engine_pid"]
    return pids


def test_up_d_returns_after_the_slowest_readiness_and_outlives_its_terminal(
    make_stack: Any, tmp_path: Path, port: int
) -> None:
    stack = make_stack(config(
        service("web", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                readiness={"http_get": {"url": f"http://127.0.0.1:{port}/"}, "timeout_s": 20}),
        service("slow", py("import time; time.sleep(1.5); print('up', flush=True); time.sleep(600)"),
                readiness={"log": {"pattern": "^up"}, "timeout_s": 20}),
        service("worker", SLEEPER, requires=["slow", "web"]),
    ))
    marker = tmp_path / "returned"
    command = f"{' '.join(MPSV3)} up -d -c {stack.config_path}; echo \"$? $(date +%s.%N)\" > {marker}; exec sleep 600"
    terminal = Terminal(command, stack.root, stack.env)
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text().endswith("\n")):
            assert time.monotonic() < deadline, terminal.output.decode(errors="replace")
            time.sleep(0.05)
        code, returned_at = marker.read_text().split()
        assert code == "0", terminal.output.decode(errors="replace")
        ready = {e["service"]: seconds(e["ts"]) for e in stack.events() if e["event"] == "ready"}
        assert set(ready) == {"web", "slow", "worker"}
        assert max(ready.values()) <= float(returned_at) + 0.01, "up -d returned before the stack was ready"
        assert float(returned_at) - max(ready.values()) < 5.0
        said = terminal.output.decode(errors="replace")
        assert "ready in " in said and f"http://127.0.0.1:{port}/" in said, said
        before = service_pids(stack)

        terminal.hang_up()
        time.sleep(1.0)
        after = service_pids(stack)
        assert after == before
        assert all(s["state"] == "ready" for s in stack.status()["services"])
        console = (stack.state_dir / "logs" / "console.log").read_text()
        assert "web" in console and "all 3 services ready" in console
    finally:
        with contextlib.suppress(Exception):
            terminal.hang_up()
        down = stack.cli("down")
    assert down.returncode == 0, down.stderr
    assert stack.wait_event(lambda e: e["event"] == "shutdown", timeout=30)


def test_up_d_names_the_service_that_exits_1_and_leaves_the_supervisor_running(make_stack: Any) -> None:
    broken = py("import sys; print('cannot start', flush=True); sys.exit(1)")
    stack = make_stack(config(
        service("good", SLEEPER),
        service("broken", broken, requires=["good"], restart={"backoff": {"base_ms": 5000}}),
    ))
    try:
        result = stack.cli("up", "-d")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "broken failed (exit 1)" in result.stderr, result.stderr
        assert "keeps running" in result.stderr
        states = {s["id"]: s["state"] for s in stack.status()["services"]}
        assert states == {"good": "ready", "broken": "backoff"}
    finally:
        down = stack.cli("down")
    assert down.returncode == 0, down.stderr


def test_up_d_of_a_supervised_instance_exits_75(make_stack: Any) -> None:
    stack = make_stack(config(service("one", SLEEPER)))
    stack.start()
    stack.wait_state("one", "ready")
    result = stack.cli("up", "-d")
    assert result.returncode == 75, result.stderr
    assert f"already supervised by PID {stack.process.pid}" in result.stderr  # type: ignore[union-attr]


def test_up_d_gives_up_waiting_after_the_wait_timeout(make_stack: Any) -> None:
    stack = make_stack(config(service("sleepy", SLEEPER, readiness={"log": {"pattern": "never"}, "timeout_s": 60})))
    try:
        started = time.monotonic()
        result = stack.cli("up", "-d", "--wait-timeout", "2")
        took = time.monotonic() - started
        assert result.returncode == 1
        assert "not ready within 2 s: waiting for sleepy (starting)" in result.stderr, result.stderr
        assert 1.5 < took < 15, took
        assert stack.status()["services"][0]["state"] == "starting"
    finally:
        assert stack.cli("down").returncode == 0


CHATTY = py("""
    import time
    for i in range(100000):
        print("line", i, "x" * 60, flush=True)
        time.sleep(0.002)
""")


def test_the_detached_console_rotates(make_stack: Any) -> None:
    stack = make_stack(config(service("chatty", CHATTY), logs={"max_bytes": 4096, "backups": 2}))
    try:
        assert stack.cli("up", "-d").returncode == 0
        logs = stack.state_dir / "logs"
        deadline = time.monotonic() + 30
        while not (logs / "console.log.2").exists():
            assert time.monotonic() < deadline, sorted(p.name for p in logs.iterdir())
            time.sleep(0.1)
        assert not (logs / "console.log.3").exists()
        for name in ("console.log.1", "console.log.2"):
            text = (logs / name).read_text()
            assert "chatty | line" in text
            assert len(text) < 4096 + 70 * 200  # at most the budget and one chunk of lines
    finally:
        assert stack.cli("down").returncode == 0


def test_a_foreground_up_stops_its_stack_in_order_when_its_terminal_closes(make_stack: Any) -> None:
    """What ``-d`` is for, seen from the other side: a foreground ``up`` ends with its terminal,
    but cleanly (SIGHUP stops the stack in order, like SIGTERM)."""
    stack = make_stack(config(service("db", SLEEPER), service("api", SLEEPER, requires=["db"])))
    terminal = Terminal(f"exec {' '.join(MPSV3)} up -c {stack.config_path}", stack.root, stack.env)
    try:
        stack.wait_event(lambda e: e["event"] == "stack_ready")
    finally:
        terminal.hang_up(kill=False)  # only the hang-up: what a closed terminal does
    shutdown = stack.wait_event(lambda e: e["event"] == "shutdown", timeout=5)
    stopped = [e["service"] for e in stack.events() if e["event"] == "stopped"]
    assert stopped == ["api", "db"], stopped
    assert shutdown
