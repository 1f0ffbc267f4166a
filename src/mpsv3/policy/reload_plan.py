"""What a config reload does to each service, decided from values: the reload plan.

Why pure: "what happens to my services when I save services.yaml and run ``reload``" is
the question an operator asks, so the answer is computed here from the old plan, the new plan
and each service's current state, and unit-tested; the supervisor only carries it out.

Rules:
- a service that went away is stopped and forgotten (dependents first);
- a new service is added, and started if ``up`` would have started it;
- a service whose probes alone changed keeps running: the new probes apply from now on;
- any other change stops the service and runs the new config, unless an operator had stopped
  it (it stays stopped, with the new config); an exited, quarantined or completed service
  starts again, since a changed config is the usual fix.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace

from mpsv3.errors import EXIT_USAGE, MpsvError
from mpsv3.plan import ServicePlan, StackPlan
from mpsv3.policy.graph import DependencyGraph
from mpsv3.policy.states import State


@dataclass(frozen=True)
class ReloadPlan:
    remove: tuple[str, ...] = ()  # in stop order
    add: tuple[str, ...] = ()  # in start order
    replace: tuple[str, ...] = ()  # stop, then run the new config; in start order
    update: tuple[str, ...] = ()  # new probes, no restart
    start: frozenset[str] = frozenset()  # of add + replace: those to start

    def summary(self) -> dict[str, list[str]]:
        """What ``mpsv3 reload`` prints and ``config_reloaded`` records."""
        return {
            "added": list(self.add),
            "removed": list(self.remove),
            "changed": sorted((*self.replace, *self.update)),
        }


def probes_only(old: ServicePlan, new: ServicePlan) -> bool:
    """The two differ, and only in ``readiness`` and/or ``liveness``."""
    return old != new and replace(old, readiness=new.readiness, liveness=new.liveness) == new


def plan_reload(
    old: StackPlan,
    new: StackPlan,
    state_of: Callable[[str], tuple[State, bool]],
    would_start: Collection[str],
) -> ReloadPlan:
    """The reload plan from ``old`` to ``new``.

    Args:
        old, new: the running plan and the one just loaded.
        state_of: a running service's (state, wanted).
        would_start: the ids of ``new`` that ``up`` would start (enabled, profiles, ``--only``).
    """
    before: Mapping[str, ServicePlan] = {s.id: s for s in old.services}
    after: Mapping[str, ServicePlan] = {s.id: s for s in new.services}
    old_order = DependencyGraph.from_plan(old).stop_order()
    new_order = DependencyGraph.from_plan(new).start_order()
    remove = tuple(sid for sid in old_order if sid not in after)
    add = tuple(sid for sid in new_order if sid not in before)
    changed = [sid for sid in new_order if sid in before and before[sid] != after[sid]]
    update = tuple(sid for sid in changed if probes_only(before[sid], after[sid]))
    replaced = tuple(sid for sid in changed if sid not in update)
    start = {sid for sid in add if sid in would_start}
    for sid in replaced:
        state, wanted = state_of(sid)
        if wanted or state is not State.STOPPED:
            start.add(sid)
    return ReloadPlan(remove, add, replaced, update, frozenset(start))


def selected(plan: StackPlan, graph: DependencyGraph, only: Collection[str], profiles: Collection[str]) -> set[str]:
    """The services ``up`` starts: enabled ones of the active profiles, and what they require.

    With ``only``, just those services and what they require. A service defined but not
    selected is still supervised (``start ID`` starts it); it is only not started by ``up``.
    """
    if only:
        return set(graph.closure(only))
    roots = [s.id for s in plan.services if s.enabled and (not s.profiles or set(s.profiles) & set(profiles))]
    return set(graph.closure(roots))


def expand_only(plan: StackPlan, ids: Collection[str]) -> list[str]:
    """``--only`` ids as service ids: a replicated service's id stands for all its replicas.

    Raises:
        MpsvError: an id names no service (exit 2, the valid ids listed).
    """
    members = plan.members()
    known = {spec.id for spec in plan.services}
    unknown = [sid for sid in ids if sid not in members and sid not in known]
    if unknown:
        valid = ", ".join(members)
        raise MpsvError(f"--only: unknown service {', '.join(unknown)} (valid: {valid})", EXIT_USAGE)
    return [member for sid in ids for member in members.get(sid, [sid])]


def check_profiles(plan: StackPlan, profiles: Collection[str]) -> None:
    """Raise ``MpsvError`` (exit 2) for a ``--profile`` no service is in: a typo starts nothing."""
    known = sorted({name for spec in plan.services for name in spec.profiles})
    unknown = [name for name in profiles if name not in known]
    if unknown:
        valid = ", ".join(known) if known else "none: no service has profiles"
        raise MpsvError(f"--profile: no service is in {', '.join(unknown)} (profiles: {valid})", EXIT_USAGE)
