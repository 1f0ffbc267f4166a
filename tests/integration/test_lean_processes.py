"""The fixed cost of mpsv3 stays low: what each process imports, checked so the gain cannot erode.

Client commands (``status``, ``logs -n``, ``restart``) import nothing of the supervisor,
pydantic, httpx, psutil or rich (``-X importtime`` lists every module a run imported). The
supervisor's process and the keeper load no pydantic, no TLS and no psutil for a stack that
needs none of them (their shared libraries would show in ``/proc/<pid>/maps``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from support import Stack

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")

#: Modules a client command must never import (prefixes).
DENIED = ("mpsv3.engine", "mpsv3.config.schema", "pydantic", "httpx", "psutil", "rich", "textual", "asyncio")


def imported(stack: Stack, *args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mpsv3", *args, "-c", str(stack.config_path)],
        cwd=stack.root, env=stack.env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]


def test_client_commands_import_nothing_heavy(make_stack: Any) -> None:
    stack: Stack = make_stack("""
        version: 1
        services:
          - id: api
            cmd: ["sh", "-c", "echo up; exec sleep 300"]
    """)
    stack.start()
    stack.wait_state("api", "ready")
    for args in (("status",), ("logs", "api", "-n", "5"), ("restart", "api")):
        modules = imported(stack, *args)
        assert "mpsv3.control.sync_client" in modules or args[0] == "logs"
        heavy = sorted({m for m in modules if m.split(".")[0] in DENIED or m.startswith(DENIED)})
        assert heavy == [], f"mpsv3 {' '.join(args)} imported {heavy}"
    assert stack.stop() == 0


#: One service that does nothing.
SLEEPER = """
    version: 1
    services:
      - id: api
        cmd: ["sleep", "300"]
"""


def test_the_supervisor_and_keeper_load_no_pydantic_tls_or_psutil(make_stack: Any) -> None:
    stack: Stack = make_stack(SLEEPER)
    keeper = stack.start().pid
    stack.wait_state("api", "ready")
    # Not `status`: it measures CPU and memory, for which the supervisor loads psutil on demand.
    with open(f"/proc/{keeper}/task/{keeper}/children") as handle:
        engine = int(handle.read().split()[0])
    for pid in (keeper, engine):
        with open(f"/proc/{pid}/maps") as maps:
            libraries = {line.split()[-1] for line in maps if ".so" in line}
        loaded = sorted(lib for lib in libraries if any(k in os.path.basename(lib) for k in ("pydantic", "_ssl", "psutil", "libssl")))
        assert loaded == [], f"PID {pid} loaded {loaded}"
    assert stack.stop() == 0


def test_the_supervisor_is_started_as_its_own_lean_process(make_stack: Any) -> None:
    stack: Stack = make_stack(SLEEPER)
    stack.start()
    stack.wait_state("api", "ready")
    status = stack.status()["supervisor"]
    with open(f"/proc/{status['pid']}/cmdline", "rb") as handle:
        keeper = handle.read().split(b"\0")
    assert b"up" in keeper and str(stack.config_path).encode() in keeper  # what ps shows
    assert any(arg.endswith(b"keeper.py") for arg in keeper)
    assert stack.stop() == 0
