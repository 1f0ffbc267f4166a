"""The supervisor's pure policy: the dependency gate, the reload plan, what ``up`` starts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mpsv3.errors import EXIT_USAGE, MpsvError
from mpsv3.plan import (
    BackoffPlan,
    CheckPlan,
    LivenessPlan,
    RestartPlan,
    ServicePlan,
    StackPlan,
    StopPlan,
    from_json,
    to_json,
)
from mpsv3.policy.gate import gate
from mpsv3.policy.graph import DependencyGraph
from mpsv3.policy.reload_plan import check_profiles, expand_only, plan_reload, probes_only, selected
from mpsv3.policy.states import State

RESTART = RestartPlan("on-failure", BackoffPlan(1000, 2.0, 60000, 0.0), 10, 60.0)
STOP = StopPlan("SIGTERM", 10.0)


def svc(sid: str, *requires: str, **more: object) -> ServicePlan:
    return ServicePlan(sid, ("sleep", "9"), "/srv", {}, RESTART, STOP, requires=requires, **more)  # type: ignore[arg-type]


def stack(*services: ServicePlan) -> StackPlan:
    return StackPlan("demo", "/srv/services.yaml", "/srv/.mpsv3", tuple(services))


STATES = {"db": (State.READY, None), "cache": (State.BACKOFF, "exit 1"), "q": (State.QUARANTINED, "exit 78: ...")}


@pytest.mark.parametrize(
    ("requires", "expected"),
    [
        ([], (True, "")),
        (["db"], (True, "")),
        (["db", "cache"], (False, "waiting for cache (backoff)")),
        (["q"], (False, "waiting for q (quarantined: exit 78: ...)")),
        (["gone"], (False, "waiting for gone (not supervised)")),
    ],
)
def test_gate(requires: list[str], expected: tuple[bool, str]) -> None:
    assert gate(requires, STATES.get) == expected


def test_a_completed_task_opens_the_gate() -> None:
    assert gate(["init"], {"init": (State.COMPLETED, "exit 0")}.get) == (True, "")


def test_dependents_of_a_replicated_service_wait_for_every_replica() -> None:
    plan = stack(svc("worker-1", template="worker", replica=1), svc("worker-2", template="worker", replica=2),
                 svc("web", "worker"))
    assert DependencyGraph.from_plan(plan).dependencies("web") == ["worker-1", "worker-2"]
    assert plan.members() == {"worker": ["worker-1", "worker-2"], "web": ["web"]}


def test_up_starts_enabled_services_of_active_profiles_and_what_they_need() -> None:
    plan = stack(svc("db"), svc("api", "db"), svc("debug", "api", profiles=("debug",)), svc("off", enabled=False),
                 svc("tool", "off"))
    graph = DependencyGraph.from_plan(plan)
    assert selected(plan, graph, (), ()) == {"db", "api", "tool", "off"}
    assert selected(plan, graph, (), ("debug",)) == {"db", "api", "tool", "off", "debug"}
    assert selected(plan, graph, ("api",), ()) == {"db", "api"}


def test_only_names_services_or_replicated_templates() -> None:
    plan = stack(svc("worker-1", template="worker", replica=1), svc("worker-2", template="worker", replica=2),
                 svc("web", "worker"))
    assert expand_only(plan, ["worker", "web"]) == ["worker-1", "worker-2", "web"]
    assert expand_only(plan, ["worker-2"]) == ["worker-2"]
    with pytest.raises(MpsvError) as caught:
        expand_only(plan, ["wbe"])
    assert caught.value.exit_code == EXIT_USAGE
    assert str(caught.value) == "--only: unknown service wbe (valid: worker, web)"


def test_a_profile_no_service_is_in_is_a_usage_error() -> None:
    plan = stack(svc("db"), svc("debug", profiles=("debug", "ops")))
    check_profiles(plan, ["ops", "debug"])
    with pytest.raises(MpsvError) as caught:
        check_profiles(plan, ["debgu"])
    assert caught.value.exit_code == EXIT_USAGE
    assert str(caught.value) == "--profile: no service is in debgu (profiles: debug, ops)"


def test_reload_plan() -> None:
    liveness = LivenessPlan(CheckPlan("tcp", port=80), 10.0, 5.0, 3)
    old = stack(svc("db"), svc("api", "db"), svc("web", "api"), svc("gone"), svc("probe"), svc("stopped"), svc("done"))
    new = stack(svc("db"), replace(svc("api", "db"), env={"X": "1"}), svc("web", "api"), svc("new", "db"),
                replace(svc("probe"), liveness=liveness), replace(svc("stopped"), argv=("true",)),
                replace(svc("done"), argv=("true",)))
    states = {"api": (State.READY, True), "stopped": (State.STOPPED, False), "done": (State.EXITED, False)}
    reload = plan_reload(old, new, states.__getitem__, {"db", "api", "web", "new"})
    assert reload.remove == ("gone",)
    assert reload.add == ("new",)
    assert reload.replace == ("stopped", "done", "api")  # in start order
    assert reload.update == ("probe",)
    assert reload.start == {"new", "api", "done"}  # the operator's stop is kept
    assert reload.summary() == {"added": ["new"], "removed": ["gone"], "changed": ["api", "done", "probe", "stopped"]}


def test_probes_only() -> None:
    base = svc("a")
    assert probes_only(base, replace(base, liveness=LivenessPlan(CheckPlan("tcp", port=1), 1.0, 1.0, 1)))
    assert not probes_only(base, replace(base, env={"A": "1"}))
    assert not probes_only(base, base)


def test_a_plan_survives_json() -> None:
    plan = stack(svc("db", memory_mb=64, liveness=LivenessPlan(CheckPlan("exec", cmd=("true",)), 1.0, 2.0, 3)),
                 svc("worker-1", "db", template="worker", replica=1))
    assert from_json(to_json(plan)) == plan
