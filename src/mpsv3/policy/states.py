"""The service state machine: the states, the allowed transitions, and their public names.

Why a table: one place says which moves are legal, so a bug that would take a service from
``quarantined`` straight to ``ready`` fails loudly instead of confusing an operator. Only
``ServiceRunner._set_state`` consults it; everything else reads states.
"""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    PENDING = "pending"  # wanted up, waiting for its dependencies to be ready
    STARTING = "starting"  # spawned, readiness gate not yet passed
    READY = "ready"  # gate passed (and liveness passing)
    UNHEALTHY = "unhealthy"  # liveness failing, below the threshold
    BACKOFF = "backoff"  # ended; waiting to restart (or waiting for a change)
    QUARANTINED = "quarantined"  # failing too often, or exit 78; down until released
    STOPPING = "stopping"  # stop signal sent to the group, waiting for it to end
    STOPPED = "stopped"  # stopped by the operator or by shutdown
    EXITED = "exited"  # ended and not restarted (exit 0, or policy never)


S = State

#: Every legal move. A transition to the same state is never emitted.
ALLOWED: frozenset[tuple[State, State]] = frozenset(
    {
        (S.STOPPED, S.PENDING), (S.STOPPED, S.STARTING),
        (S.PENDING, S.STARTING), (S.PENDING, S.STOPPED), (S.PENDING, S.BACKOFF),
        (S.PENDING, S.QUARANTINED), (S.PENDING, S.EXITED),
        (S.STARTING, S.READY), (S.STARTING, S.STOPPING), (S.STARTING, S.BACKOFF),
        (S.STARTING, S.QUARANTINED), (S.STARTING, S.EXITED), (S.STARTING, S.PENDING),
        (S.STARTING, S.STOPPED), (S.READY, S.STOPPED), (S.UNHEALTHY, S.STOPPED),
        (S.READY, S.UNHEALTHY), (S.READY, S.STOPPING), (S.READY, S.BACKOFF),
        (S.READY, S.QUARANTINED), (S.READY, S.EXITED), (S.READY, S.STARTING),
        (S.READY, S.PENDING),
        (S.UNHEALTHY, S.READY), (S.UNHEALTHY, S.STOPPING), (S.UNHEALTHY, S.BACKOFF),
        (S.UNHEALTHY, S.QUARANTINED), (S.UNHEALTHY, S.EXITED), (S.UNHEALTHY, S.STARTING),
        (S.UNHEALTHY, S.PENDING),
        (S.BACKOFF, S.PENDING), (S.BACKOFF, S.STARTING), (S.BACKOFF, S.STOPPED),
        (S.BACKOFF, S.QUARANTINED),
        (S.STOPPING, S.STOPPED), (S.STOPPING, S.BACKOFF), (S.STOPPING, S.QUARANTINED),
        (S.STOPPING, S.EXITED), (S.STOPPING, S.PENDING), (S.STOPPING, S.STARTING),
        (S.QUARANTINED, S.PENDING), (S.QUARANTINED, S.STARTING), (S.QUARANTINED, S.STOPPED),
        (S.EXITED, S.PENDING), (S.EXITED, S.STARTING), (S.EXITED, S.STOPPED),
    }
)

#: States in which the service's process is alive (or being stopped).
WITH_PROCESS = frozenset({S.STARTING, S.READY, S.UNHEALTHY, S.STOPPING})
#: States a dependent may count on.
SATISFIES_DEPENDENTS = frozenset({S.READY, S.UNHEALTHY})
#: States that stay until an operator (or a change) acts.
RESTING = frozenset({S.STOPPED, S.EXITED, S.QUARANTINED})


class IllegalTransition(RuntimeError):
    """A bug: the runner tried a move the table does not allow."""


def check_transition(old: State, new: State) -> None:
    if (old, new) not in ALLOWED:
        raise IllegalTransition(f"illegal transition {old.value} -> {new.value}")
