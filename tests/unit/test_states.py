"""The transition table: the legal moves, and that everything else is refused."""

from __future__ import annotations

import pytest

from mpsv3.policy.states import ALLOWED, IllegalTransition, State, check_transition

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
    (State.EXITED, State.STARTING),
]
ILLEGAL = [
    (State.QUARANTINED, State.READY),
    (State.STOPPED, State.READY),
    (State.PENDING, State.READY),
    (State.EXITED, State.READY),
    (State.BACKOFF, State.READY),
    (State.STOPPED, State.UNHEALTHY),
    (State.QUARANTINED, State.BACKOFF),
]


@pytest.mark.parametrize(("old", "new"), LEGAL)
def test_legal_moves(old: State, new: State) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_illegal_moves_raise(old: State, new: State) -> None:
    with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
        check_transition(old, new)


def test_ready_is_reached_only_through_starting_or_unhealthy() -> None:
    sources = {old for old, new in ALLOWED if new is State.READY}
    assert sources == {State.STARTING, State.UNHEALTHY}


def test_every_state_can_be_left_and_reached() -> None:
    for state in State:
        assert any(old is state for old, _ in ALLOWED), state
        if state is not State.STOPPED:
            assert any(new is state for _, new in ALLOWED), state
