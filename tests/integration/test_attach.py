"""``mpsv3 attach`` against a real supervisor: live lines, and Ctrl-C that stops nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from support import MPSV3, Yaml, argv, config, service

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="signals to a process group")

TICKER = """
    import sys, time
    name = sys.argv[1]
    while True:
        print("tick", name, repr(time.time()), flush=True)
        time.sleep(0.3)
"""


def ticker(name: str) -> Yaml:
    return argv(TICKER, name)


class Attached:
    """``mpsv3 attach`` in a process group of its own (a terminal's foreground job)."""

    def __init__(self, stack: Any) -> None:
        self.proc = subprocess.Popen(
            [*MPSV3, "attach", "-c", str(stack.config_path)], cwd=stack.root, env=stack.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append((time.time(), raw.decode(errors="replace").rstrip("\n")))

    def wait_lines(self, predicate: Any, count: int, timeout: float = 20.0) -> list[tuple[float, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [item for item in list(self.lines) if predicate(item[1])]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"not {count} matching lines within {timeout}s: {self.lines[-10:]}")

    def ctrl_c(self) -> tuple[int, str]:
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read().decode(errors="replace")


def pids(stack: Any) -> dict[str, Any]:
    status = stack.status()
    found: dict[str, Any] = {s["id"]: (s["pid"], s["state"]) for s in status["services"]}
    found["keeper"] = status["supervisor"]["pid"]
    found["engine"] = status["supervisor"]["engine_pid"]
    return found


def test_attach_shows_two_services_within_a_second_and_ctrl_c_stops_nothing(make_stack: Any) -> None:
    stack = make_stack(config(service("alpha", ticker("alpha")), service("beta", ticker("beta"))))
    stack.start()
    stack.wait_event(lambda e: e["event"] == "stack_ready")
    before = pids(stack)
    attached = Attached(stack)
    for name in ("alpha", "beta"):
        lines = attached.wait_lines(lambda text, name=name: f"| tick {name} " in text, 4)
        for seen, text in lines:
            printed = float(text.rsplit(" ", 1)[1])
            assert seen - printed < 1.0, f"{name}: shown {seen - printed:.2f} s after it was printed"
        assert all(text.split()[1] == name for _, text in lines), lines  # the prefix names the service

    code, said = attached.ctrl_c()
    assert code == 0, said
    assert "detached; the stack keeps running" in said
    time.sleep(0.5)
    assert pids(stack) == before
    assert stack.count("stopping") == 0 and stack.count("exited") == 0


def test_attach_ends_when_the_supervisor_stops(make_stack: Any) -> None:
    stack = make_stack(config(service("alpha", ticker("alpha"))))
    stack.start()
    stack.wait_event(lambda e: e["event"] == "stack_ready")
    attached = Attached(stack)
    attached.wait_lines(lambda text: "tick alpha" in text, 1)
    assert stack.stop() == 0
    assert attached.proc.wait(timeout=10) == 0
    assert attached.proc.stderr is not None
    assert "the supervisor ended" in attached.proc.stderr.read().decode()
    shown = [text for _, text in attached.lines]
    assert any("alpha stopped in" in text for text in shown), shown[-5:]


def test_attach_to_a_quiet_supervisor_says_why_not(make_stack: Any) -> None:
    stack = make_stack(config(service("alpha", ticker("alpha"))))
    stack.start("--quiet")
    stack.wait_event(lambda e: e["event"] == "stack_ready")
    result = stack.cli("attach")
    assert result.returncode == 1
    assert "runs with --quiet" in result.stderr and "mpsv3 logs -f" in result.stderr


def test_attach_without_a_supervisor_exits_3(make_stack: Any) -> None:
    stack = make_stack(config(service("alpha", ["true"])))
    result = stack.cli("attach")
    assert result.returncode == 3
    assert "no supervisor is running" in result.stderr
