"""What a unit that runs ``mpsv3 up`` needs to know, computed once from the plan (pure)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mpsv3.plan import StackPlan
from mpsv3.policy.graph import DependencyGraph

Scope = Literal["user", "system"]

#: Added to the stop time the stack needs (its layers' longest grace, one after another).
STOP_MARGIN_S = 30
#: Seconds between the supervisor's ``WATCHDOG=1`` pings are half of this.
WATCHDOG_S = 30
#: How long the unit's manager waits before it starts a supervisor that died.
RESTART_S = 2


@dataclass(frozen=True)
class UnitSpec:
    """One stack run by a service manager.

    Attributes:
        instance: the stack's name (names the unit: ``mpsv3-<instance>``).
        config_path: the absolute path of its ``services.yaml``.
        working_dir: the config's folder.
        state_dir: where the stack keeps its files (logs of the manager's own go there).
        up: the command that runs the stack: this install's interpreter, ``-m mpsv3 up``.
        reload: the command that reloads its config (``mpsv3 reload``).
        stop_timeout_s: how long a stop may take before the manager kills what is left:
            every layer's longest ``stop.grace_s``, one layer after another, plus a margin.
        scope: ``user`` (the user's manager, at login or with lingering at boot) or
            ``system`` (the machine's, at boot).
    """

    instance: str
    config_path: str
    working_dir: str
    state_dir: str
    up: tuple[str, ...]
    reload: tuple[str, ...]
    stop_timeout_s: int
    scope: Scope
    watchdog_s: int = WATCHDOG_S
    restart_s: int = RESTART_S

    @property
    def name(self) -> str:
        """``mpsv3-<instance>``: the unit's, the agent's or the task's name."""
        return f"mpsv3-{self.instance}"


def unit_spec(
    plan: StackPlan,
    scope: Scope,
    *,
    assignments: Sequence[str] = (),
    profiles: Sequence[str] = (),
    python: str | None = None,
) -> UnitSpec:
    """The :class:`UnitSpec` of ``plan`` run with these ``--set`` values and profiles."""
    interpreter = python or sys.executable
    config = str(Path(plan.config_path).absolute())
    options = [f"--set={item}" for item in assignments] + [f"--profile={name}" for name in profiles]
    return UnitSpec(
        instance=plan.name,
        config_path=config,
        working_dir=str(Path(config).parent),
        state_dir=plan.state_dir,
        up=(interpreter, "-m", "mpsv3", "up", "-c", config, *options),
        reload=(interpreter, "-m", "mpsv3", "reload", "-c", config, *[f"--set={a}" for a in assignments]),
        stop_timeout_s=stop_timeout(plan),
        scope=scope,
    )


def stop_timeout(plan: StackPlan) -> int:
    """Seconds a stop of the whole stack may take: layers stop one after another."""
    graph = DependencyGraph.from_plan(plan)
    grace = {s.id: s.stop.grace_s for s in plan.services}
    total = sum(max((grace.get(sid, 0.0) for sid in layer), default=0.0) for layer in graph.layers())
    return int(total + 0.999) + STOP_MARGIN_S
