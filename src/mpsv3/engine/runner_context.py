"""What a service's runner is given: the shared context, the spawn seam, the last exit.

Why apart: the supervisor builds one ``RunnerContext`` for all its runners and tests build
their own with scripted seams (``spawn``, ``probes``, ``check_ports``); keeping these shapes
here keeps ``runner.py`` about the driving.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mpsv3 import platform
from mpsv3.engine.console import Console
from mpsv3.engine.events import EventBus
from mpsv3.engine.probes import ProbeRunner
from mpsv3.engine.resources import ResourceSampler
from mpsv3.plan import ServicePlan
from mpsv3.platform import ProcessTree
from mpsv3.policy.lifecycle import Model

if TYPE_CHECKING:
    from mpsv3.engine.runner import ServiceRunner


class Spawner(Protocol):
    """``platform.spawn``'s shape (tests pass a scripted one)."""

    def __call__(
        self, argv: list[str], cwd: Path, env: dict[str, str], *,
        user: str | None = None, group: str | None = None, cgroup: Path | None = None,
    ) -> Awaitable[ProcessTree]: ...


@dataclass
class RunnerContext:
    """What every runner of one supervisor shares. Built by the supervisor."""

    instance: str
    state_dir: Path
    bus: EventBus
    probes: ProbeRunner
    log_max_bytes: int
    log_backups: int
    console: Console | None
    base_env: dict[str, str]
    check_ports: Callable[[ServicePlan], Awaitable[str | None]]
    #: The one channel to the supervisor: called after every event that changed the model.
    on_change: Callable[[ServiceRunner, Model], None]
    #: The supervisor's trouble report (``engine/trouble.py``): kind, error, service.
    report: Callable[[str, BaseException | str, str | None], None] = lambda kind, error, service: None
    sampler: ResourceSampler = field(default_factory=ResourceSampler)
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    spawn: Spawner = field(default=platform.spawn)
    #: The cgroup a service is born in (None: no cgroups here).
    cgroup_of: Callable[[str], Path | None] = lambda _: None


@dataclass(frozen=True)
class LastExit:
    code: int | None
    signal: str | None
    at: float  # wall clock


