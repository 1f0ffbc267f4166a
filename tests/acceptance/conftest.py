"""Fixtures and options of the Phase 2 acceptance suite; the helpers live in ``mindstack``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mindstack import (
    DEFAULT_SOAK_SECONDS,
    PORT_VARIABLES,
    MindStack,
    MindStackFactory,
    alive,
    distinct_free_ports,
)

from support import end_leftovers, stop_all


def soak_seconds(config: pytest.Config) -> float:
    """How long the soak runs: ``--soak-hours``, else ``MPSV3_SOAK_SECONDS``, else 120 s."""
    hours = config.getoption("--soak-hours", default=None)
    if hours is not None:
        return float(hours) * 3600.0
    return float(os.environ.get("MPSV3_SOAK_SECONDS", DEFAULT_SOAK_SECONDS))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give the soak a test timeout that fits its duration (the default is 300 s)."""
    for item in items:
        if item.path.name == "test_soak.py":
            item.add_marker(pytest.mark.timeout(soak_seconds(config) + 600.0))


@pytest.fixture
def soak_duration(request: pytest.FixtureRequest) -> float:
    return soak_seconds(request.config)


@pytest.fixture
def mind_stack(tmp_path: Path) -> Iterator[MindStackFactory]:
    """Factory of private Mind Protocol stacks: ``mind_stack(label, VAR=value, ...)``.

    Each call copies the example to ``tmp_path/label``, picks a unique instance name and four
    free ports (a keyword overrides any variable), and returns the stack, not started. Every
    supervisor still running at teardown is stopped with SIGTERM (its services with it).
    """
    stacks: list[MindStack] = []
    taken: set[int] = set()

    def make(label: str = "mind", **variables: str) -> MindStack:
        chosen = {"MIND_INSTANCE": f"mind-{label}-{uuid.uuid4().hex[:8]}"}
        chosen.update(
            zip(
                PORT_VARIABLES,
                map(str, distinct_free_ports(len(PORT_VARIABLES), taken)),
                strict=True,
            )
        )
        chosen.update(variables)
        stack = MindStack(tmp_path / label, chosen)
        stack.env["MPSV3_RUNTIME_DIR"] = str(tmp_path / "runtime")
        stacks.append(stack)
        return stack

    yield make
    stop_all(stacks)
    # The session's leftover check cannot see a redis-server (no environment to mark it).
    procs = [proc for stack in stacks for proc in stack.processes()]
    left = end_leftovers(lambda: [proc for proc in procs if alive(proc)])
    if left:
        pytest.fail("the stack left processes behind: " + "; ".join(left))
