"""``mpsv3 ui`` in a real terminal (tmux) at 80x24 and 200x50, against a real ``mpsv3 up``.

What an operator sees: every service id, and for each running service a CPU and a memory
figure. Those figures come from the status document's ``cpu_percent`` and ``rss_bytes``;
a supervisor that does not report them yet shows ``-`` and this test fails (it does not
skip): the figures are part of the acceptance of ``mpsv3 ui``.

Needs Debian's ``tmux`` (skipped, with the reason, where it is missing). Each test runs its
own tmux server (``-L``), killed at the end with everything in it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from typing import Any

import pytest

from support import MPSV3, py

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="needs tmux (Debian: apt-get install -y tmux)")

SLEEPER = py("import time\nprint('up', flush=True)\nwhile True: time.sleep(1)")
#: Busy for a moment every second: a CPU figure that is not always 0.0%.
BUSY = py("import time\nwhile True:\n    end = time.time() + 0.05\n    while time.time() < end: pass\n    time.sleep(0.2)")
IDS = ("falkordb", "ws_api", "dashboard", "conversation_watcher", "autonomy_orchestrator")
CONFIG = f"""
    version: 1
    services:
      - id: falkordb
        cmd: {SLEEPER}
      - id: ws_api
        cmd: {BUSY}
        requires: [falkordb]
      - id: dashboard
        cmd: {SLEEPER}
        requires: [ws_api]
      - id: conversation_watcher
        cmd: {SLEEPER}
      - id: autonomy_orchestrator
        cmd: {SLEEPER}
"""
EXITED = "[the command exited with status]"
CPU = re.compile(r"(?<![\w.])\d+(?:\.\d)?%")
MEMORY = re.compile(r"(?<![\w.])\d+(?:\.\d)?[BKMGT](?![\w])")


class Tmux:
    """One private tmux server running one command in a window of a given size."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"mpsv3-test-{uuid.uuid4().hex[:8]}"
        self.env = env

    def run(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run(
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, env=self.env, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def open(self, command: list[str], width: int, height: int, extra_env: dict[str, str]) -> None:
        env_args = [part for key, value in extra_env.items() for part in ("-e", f"{key}={value}")]
        # The pane outlives the command by a minute, so that a command that fails shows why.
        shell = " ".join(_quote(part) for part in command) + f"; echo '{EXITED}' $?; sleep 60"
        self.run("new-session", "-d", "-s", "ui", "-x", str(width), "-y", str(height), *env_args, shell)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "ui")

    def close(self) -> None:
        assert TMUX is not None
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, env=self.env, timeout=30)


def _quote(part: str) -> str:
    return "'" + part.replace("'", "'\\''") + "'"


def rows(screen: str) -> dict[str, str]:
    """The table row of each service id found on the screen."""
    found = {}
    for line in screen.splitlines():
        for sid in IDS:
            if re.search(rf"(?<![\w-]){re.escape(sid)}(?![\w-])", line) and sid not in found:
                found[sid] = line
    return found


def wait_screen(tmux: Tmux, check: Any, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux.screen()
        if check(screen):
            return screen
        time.sleep(0.3)
    return screen


@pytest.mark.parametrize(("width", "height"), [(80, 24), (200, 50)])
def test_the_ui_in_a_terminal_shows_every_service_with_cpu_and_memory(
    make_stack: Any, width: int, height: int
) -> None:
    stack = make_stack(CONFIG)
    stack.start()
    for sid in IDS:
        stack.wait_state(sid, "ready")
    tmux = Tmux(stack.env)
    try:
        tmux.open([*MPSV3, "ui", "-c", str(stack.config_path)], width, height,
                  {"MPSV3_RUNTIME_DIR": stack.env["MPSV3_RUNTIME_DIR"]})
        screen = wait_screen(tmux, lambda s: len(rows(s)) == len(IDS) or EXITED in s, timeout=20)
        assert EXITED not in screen, f"`mpsv3 ui` ended:\n{screen}"
        missing = [sid for sid in IDS if sid not in rows(screen)]
        assert not missing, f"service ids not on the {width}x{height} screen: {missing}\n{screen}"
        reported = stack.status()["services"]
        absent = [key for key in ("cpu_percent", "rss_bytes") if any(key not in s for s in reported)]
        if absent:
            pytest.fail(
                f"the supervisor's status has no {' and no '.join(absent)} per service: the UI shows '-' "
                f"where the CPU and memory figures belong\n{screen}"
            )
        screen = wait_screen(
            tmux, lambda s: all(CPU.search(r) and MEMORY.search(r) for r in rows(s).values()), timeout=15
        )
        lines = screen.splitlines()
        assert len(lines) <= height and all(len(line) <= width for line in lines)
        for sid, row in rows(screen).items():
            assert CPU.search(row), f"no CPU figure in the row of {sid} at {width}x{height}:\n{screen}"
            assert MEMORY.search(row), f"no memory figure in the row of {sid} at {width}x{height}:\n{screen}"
        pids = {s["id"]: s["pid"] for s in stack.status()["services"]}
        tmux.run("send-keys", "-t", "ui", "q")
        time.sleep(1.0)
        assert {s["id"]: s["pid"] for s in stack.status()["services"]} == pids
    finally:
        tmux.close()
    assert stack.stop() == 0
