"""The public states of a service, and the named sets of them that the code reasons with.

Why sets with names (systemd's ``SERVICE_STATE_WITH_MAIN_PROCESS()``): a rule such as "a
dependent may count on it" is written once, here, instead of as a list at each use. Which
moves between states are legal is not written here: ``policy/transitions.py`` derives the
table from the lifecycle itself, so it cannot drift.
"""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    PENDING = "pending"  # wanted up, waiting for its dependencies to be ready
    STARTING = "starting"  # spawned, readiness gate not yet passed (a task: running)
    READY = "ready"  # gate passed (and liveness passing)
    UNHEALTHY = "unhealthy"  # liveness failing, below the threshold
    BACKOFF = "backoff"  # ended; waiting to restart (or waiting for a change)
    QUARANTINED = "quarantined"  # failing too often, or exit 78; down until released
    STOPPING = "stopping"  # stop signal sent to the group, waiting for it to end
    STOPPED = "stopped"  # stopped by the operator or by shutdown
    EXITED = "exited"  # ended and not restarted (exit 0, or policy never)
    COMPLETED = "completed"  # a task that exited 0: it satisfies its dependents


S = State

#: States in which the service's process is alive (or being stopped).
WITH_PROCESS = frozenset({S.STARTING, S.READY, S.UNHEALTHY, S.STOPPING})
#: States a dependent may count on.
SATISFIES_DEPENDENTS = frozenset({S.READY, S.UNHEALTHY, S.COMPLETED})
#: States that stay until an operator (or a change) acts.
RESTING = frozenset({S.STOPPED, S.EXITED, S.QUARANTINED, S.COMPLETED})
