"""What flows into the lifecycle (events) and out of it (effects), as typed values.

Why values: the runner and the tests speak to ``lifecycle.step`` only through these, so a
history is a list of them and nothing else; each carries exactly the facts its handler needs.
Events are commands (``Start``, ``Stop``, ``Restart``, ``FilesChanged``), the supervisor's gate
(``DepsChanged``), the outcomes of effects (``PortsChecked``, ``Spawned``, ``GatePassed``,
``Exited``, ``TreeStopped``...) and timers (``BackoffElapsed``). Effects are what the driver
must do: check ports, spawn, start or cancel probes, stop or signal the tree, arm a timer, emit
an event on the bus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Start:
    """Want it up (``up``, ``start``, ``release``); a quarantined service is released."""


@dataclass(frozen=True)
class Stop:
    """Want it down; a running tree is stopped, a backoff cancelled."""


@dataclass(frozen=True)
class Restart:
    """Stop it (if running) and start again at once, skipping any backoff."""

    reason: str = "manual"


@dataclass(frozen=True)
class FilesChanged:
    """Watched files changed (one debounced batch)."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class DepsChanged:
    """The dependency gate's answer changed (from the supervisor)."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class PortsChecked:
    """The declared ports were checked: None when free, else why not."""

    problem: str | None


@dataclass(frozen=True)
class Spawned:
    pid: int
    pgid: int | None
    attempt: int


@dataclass(frozen=True)
class SpawnFailed:
    reason: str


@dataclass(frozen=True)
class GatePassed:
    after_ms: float


@dataclass(frozen=True)
class GateTimedOut:
    kind: str
    reason: str


@dataclass(frozen=True)
class LivenessResult:
    ok: bool
    kind: str = ""
    reason: str = ""


@dataclass(frozen=True)
class MemoryExceeded:
    reason: str


@dataclass(frozen=True)
class Exited:
    """The leader ended by itself (what it left in its group is already stopped)."""

    pid: int
    code: int | None
    signal: str | None


@dataclass(frozen=True)
class TreeStopped:
    """The stop we asked for is done: the whole tree is gone."""

    pid: int
    code: int | None
    signal: str | None


@dataclass(frozen=True)
class BackoffElapsed:
    """The backoff timer fired."""


Event = (
    Start | Stop | Restart | FilesChanged | DepsChanged | PortsChecked | Spawned | SpawnFailed
    | GatePassed | GateTimedOut | LivenessResult | MemoryExceeded | Exited | TreeStopped | BackoffElapsed
)

# ------------------------------------------------------------------------------ effects


@dataclass(frozen=True)
class CheckPorts:
    """Check the declared ports (reclaiming leftovers of ours); answer ``PortsChecked``."""


@dataclass(frozen=True)
class Spawn:
    """Start the process tree; answer ``Spawned`` or ``SpawnFailed``, later ``Exited``."""

    attempt: int


@dataclass(frozen=True)
class StartGate:
    """Run the readiness gate; answer ``GatePassed`` or ``GateTimedOut``."""


@dataclass(frozen=True)
class StartLiveness:
    """Probe liveness every interval; answer ``LivenessResult`` each time."""


@dataclass(frozen=True)
class CancelProbes:
    """Stop the readiness gate and the liveness probe, if running."""


@dataclass(frozen=True)
class StopTree:
    """The stop sequence: ``signal`` (and SIGCONT), ``grace_s``, SIGKILL; answer ``TreeStopped``."""

    signal: str
    grace_s: float


@dataclass(frozen=True)
class SendSignal:
    """Send ``signal`` to the main process, or to the whole group."""

    signal: str
    group: bool


@dataclass(frozen=True)
class ArmBackoff:
    """Answer ``BackoffElapsed`` after ``delay_s``."""

    delay_s: float


@dataclass(frozen=True)
class CancelBackoff:
    """Disarm the backoff timer, if armed."""


@dataclass(frozen=True)
class Emit:
    """An event for the bus (``events.jsonl``, the console, metrics)."""

    name: str
    fields: dict[str, Any] = field(default_factory=dict)


Effect = (
    CheckPorts | Spawn | StartGate | StartLiveness | CancelProbes | StopTree | SendSignal | ArmBackoff
    | CancelBackoff | Emit
)
