"""``mpsv3 status`` as an operator reads it: piped at 80 columns, and ``--watch`` to a pipe.

A real stack with a service in backoff, one quarantined and one pending behind it (long
reasons), so that the table has to shorten, drop and cut to fit: no header may be cut and
no cell wrapped.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from mpsv3.cli.status_view import COLUMNS, render_status
from support import MPSV3, free_port, py

SLEEPER = py("import time\nwhile True: time.sleep(1)")
CONFIG = f"""
    version: 1
    services:
      - id: conversation_watcher
        cmd: {SLEEPER}
      - id: crashing_api
        cmd: {py("import sys; sys.exit(1)")}
        restart:
          backoff: {{base_ms: 60000}}
      - id: autonomy_orchestrator
        cmd: {py("import sys, time; time.sleep(0.3); sys.exit(78)")}
        readiness:
          tcp: {{port: {free_port()}}}
      - id: dashboard
        cmd: {SLEEPER}
        requires: [autonomy_orchestrator]
"""
IDS = ("conversation_watcher", "crashing_api", "autonomy_orchestrator", "dashboard")
HEADER_WORDS = {word for c in COLUMNS for word in (c.header + " " + c.short).split()}


def started(make_stack: Any) -> Any:
    stack = make_stack(CONFIG)
    stack.start()
    stack.wait_state("conversation_watcher", "ready")
    stack.wait_event(lambda e: e["event"] == "backoff" and e["service"] == "crashing_api")
    stack.wait_state("autonomy_orchestrator", "quarantined")
    deadline = time.monotonic() + 30
    while "quarantined" not in str(stack.service("dashboard")["reason"]):  # pending, naming it
        assert time.monotonic() < deadline, stack.service("dashboard")
        time.sleep(0.1)
    return stack


def piped_env(stack: Any) -> dict[str, str]:
    env = dict(stack.env)
    env.pop("COLUMNS", None)  # as `status | cat` from a terminal: no width but the default
    env.pop("LINES", None)
    return env


def check_table(text: str, width: int) -> None:
    lines = text.rstrip("\n").splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    header = lines[1].split()
    assert header[:2] == ["SERVICE", "STATE"] and header[-1] == "REASON", lines[1]
    assert set(header) <= HEADER_WORDS, f"a cut header in: {lines[1]}"
    states = {"conversation_watcher": "ready", "crashing_api": "backoff",
              "autonomy_orchestrator": "quarantined", "dashboard": "pending"}
    body = lines[2:]
    assert len(body) == len(IDS), "a wrapped cell adds a line:\n" + text
    for sid, line in zip(IDS, body, strict=True):
        cells = line.split()
        assert cells[0] == sid and cells[1] == states[sid], line
    assert "restart in" in body[1] or "NEXT" in header
    assert body[3].endswith("…") or "waiting for autonomy_orchestrator" in body[3]


def test_status_piped_at_80_columns_cuts_no_header_and_wraps_no_cell(make_stack: Any) -> None:
    stack = started(make_stack)
    result = subprocess.run(
        [*MPSV3, "status", "-c", str(stack.config_path)], capture_output=True, text=True,
        env=piped_env(stack), timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    check_table(result.stdout, 80)
    # The same document rendered here, at the widths terminals have.
    status = json.loads(stack.cli("status", "--json").stdout)
    for width in (60, 80, 100, 132):
        check_table(render_status(status, time.time(), width=width), width)
    assert stack.stop() == 0


def test_status_watch_to_a_pipe_prints_one_frame_per_interval(make_stack: Any) -> None:
    stack = started(make_stack)
    with subprocess.Popen(
        [*MPSV3, "status", "-c", str(stack.config_path), "--watch"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=piped_env(stack),
    ) as watcher:
        try:
            time.sleep(3.5)
        finally:
            watcher.terminate()
            out, err = watcher.communicate(timeout=30)
    frames = [frame for frame in out.split("\n\n") if frame.strip()]
    assert len(frames) >= 2, f"frames to a pipe: {len(frames)}\nstdout: {out!r}\nstderr: {err}"
    for frame in frames:
        check_table(frame + "\n", 80)
    assert "\x1b" not in out
    assert stack.stop() == 0
