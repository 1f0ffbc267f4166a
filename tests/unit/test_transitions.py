"""The transition table, derived from the lifecycle: the legal moves, the diagram in the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mpsv3.policy.states import State
from mpsv3.policy.transitions import allowed_transitions, mermaid

ALLOWED = allowed_transitions()
DOC = Path(__file__).parents[2] / "docs" / "architecture.md"

LEGAL = [
    (State.STOPPED, State.PENDING),
    (State.PENDING, State.STARTING),
    (State.STARTING, State.READY),
    (State.READY, State.UNHEALTHY),
    (State.UNHEALTHY, State.READY),
    (State.UNHEALTHY, State.STOPPING),
    (State.STOPPING, State.BACKOFF),
    (State.BACKOFF, State.STARTING),
    (State.READY, State.QUARANTINED),
    (State.QUARANTINED, State.PENDING),
    (State.READY, State.EXITED),
    (State.STARTING, State.COMPLETED),
    (State.COMPLETED, State.PENDING),
]
ILLEGAL = [
    (State.QUARANTINED, State.READY),
    (State.STOPPED, State.READY),
    (State.PENDING, State.READY),
    (State.EXITED, State.READY),
    (State.BACKOFF, State.READY),
    (State.STOPPED, State.UNHEALTHY),
    (State.QUARANTINED, State.BACKOFF),
    (State.READY, State.COMPLETED),
]


@pytest.mark.parametrize(("old", "new"), LEGAL)
def test_legal_moves(old: State, new: State) -> None:
    assert (old, new) in ALLOWED


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_moves_the_lifecycle_never_makes(old: State, new: State) -> None:
    assert (old, new) not in ALLOWED


def test_ready_is_reached_only_through_starting_or_unhealthy() -> None:
    assert {old for old, new in ALLOWED if new is State.READY} == {State.STARTING, State.UNHEALTHY}


def test_every_state_can_be_left_and_reached() -> None:
    for state in State:
        assert any(old is state for old, _ in ALLOWED), state
        if state is not State.STOPPED:
            assert any(new is state for _, new in ALLOWED), state


def test_the_diagram_in_the_docs_is_the_derived_table() -> None:
    block = re.search(r"```mermaid\n(stateDiagram-v2\n.*?)```", DOC.read_text(), re.DOTALL)
    assert block is not None, "docs/architecture.md has no state diagram"
    assert block.group(1) == mermaid(ALLOWED), "regenerate it: python -m mpsv3.policy.transitions"
