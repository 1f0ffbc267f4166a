"""Shared fixtures: a temp dir per test, free ports, and a check that no test leaves a process.

Every process started during the session inherits ``MPSV3_TEST_RUN``; at the end of each test
no process carrying this session's marker may be alive except pytest itself (orphans that were
reparented to init included, since the marker travels in the environment).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

RUN_MARKER = "MPSV3_TEST_RUN"
os.environ[RUN_MARKER] = uuid.uuid4().hex


def _marked_processes() -> list[psutil.Process]:
    me = os.getpid()
    mine = os.environ[RUN_MARKER]
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid == me:
            continue
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(RUN_MARKER) == mine:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak-hours",
        type=float,
        default=None,
        help="Run the acceptance soak (test_soak.py) this many hours instead of "
        "MPSV3_SOAK_SECONDS (default 120 s); the real run is --soak-hours 24.",
    )


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Fail the test that leaves a process of this session behind (and kill it)."""
    yield
    from support import end_leftovers

    left = end_leftovers(_marked_processes)
    if left:
        pytest.fail("test left processes behind: " + "; ".join(left))


@pytest.fixture
def port() -> int:
    from support import free_port

    return free_port()


@pytest.fixture
def make_stack(tmp_path: Any) -> Iterator[Any]:
    """Factory of real supervised stacks; every supervisor is stopped at teardown."""
    from support import Stack, stop_all

    stacks: list[Stack] = []

    def make(config: str, name: str | None = None, subdir: str = "stack") -> Stack:
        stack = Stack(tmp_path / subdir, config, name=name or f"t{uuid.uuid4().hex[:8]}")
        stacks.append(stack)
        return stack

    yield make
    stop_all(stacks)
