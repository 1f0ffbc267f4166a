"""Helpers of the production-key tests (test_production_keys.py, test_production_replicas.py):
small programs as YAML flow lists, events of one service, waiting, service log lines."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from typing import Any

import psutil

from support import Event, Stack, py, unstamped

SLEEPER = py("import time\nprint('up', flush=True)\nwhile True: time.sleep(1)")
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every user, unlike a venv under /root


def argv(code: str, *args: str, python: str = sys.executable) -> str:
    """A YAML flow list running ``code`` (dedented) with ``python`` and ``args``."""
    return json.dumps([python, "-c", textwrap.dedent(code), *args])


def of(events: list[Event], sid: str, *names: str) -> list[Event]:
    return [e for e in events if e["service"] == sid and (not names or e["event"] in names)]


def wait_for(what: str, condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def log_lines(stack: Stack, sid: str) -> list[str]:
    path = stack.state_dir / "logs" / f"{sid}.log"
    return [unstamped(line) for line in path.read_text().splitlines()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ok(result: Any) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return str(result.stdout)

