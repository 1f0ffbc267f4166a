"""DependencyGraph: start layers, stop order, dependents, closure, cycles."""

from __future__ import annotations

import pytest

from mpsv3.config.schema import ServiceSpec
from mpsv3.policy.graph import CycleError, DependencyGraph

# The Mind Protocol stack, in config order.
STACK = {
    "falkordb": [],
    "ws_api": ["falkordb"],
    "dashboard": ["ws_api"],
    "conversation_watcher": ["ws_api", "falkordb"],
    "stimulus_injection": ["ws_api"],
    "signals_collector": ["falkordb"],
    "autonomy_orchestrator": ["ws_api", "falkordb"],
}

DIAMOND = {"top": ["left", "right"], "left": ["base"], "right": ["base"], "base": []}


def test_diamond_layers_and_orders() -> None:
    graph = DependencyGraph(DIAMOND)
    assert graph.layers() == [["base"], ["left", "right"], ["top"]]
    assert graph.start_order() == ["base", "left", "right", "top"]
    assert graph.stop_order() == ["top", "right", "left", "base"]
    assert graph.stop_layers() == [["top"], ["left", "right"], ["base"]]


def test_stack_layers_keep_config_order_within_a_layer() -> None:
    graph = DependencyGraph(STACK)
    assert graph.layers() == [
        ["falkordb"],
        ["ws_api", "signals_collector"],
        ["dashboard", "conversation_watcher", "stimulus_injection", "autonomy_orchestrator"],
    ]
    assert graph.stop_order() == list(reversed(graph.start_order()))


def test_a_layer_depends_only_on_earlier_layers() -> None:
    graph = DependencyGraph(STACK)
    seen: set[str] = set()
    for layer in graph.layers():
        for sid in layer:
            assert set(STACK[sid]) <= seen
        seen |= set(layer)


def test_longest_chain_decides_the_layer() -> None:
    graph = DependencyGraph({"a": [], "b": ["a"], "c": ["b"], "d": ["a", "c"]})
    assert graph.layers() == [["a"], ["b"], ["c"], ["d"]]


def test_dependencies_direct_and_transitive() -> None:
    graph = DependencyGraph(STACK)
    assert graph.dependencies("dashboard") == ["ws_api"]
    assert graph.dependencies("dashboard", transitive=True) == ["falkordb", "ws_api"]
    assert graph.dependencies("conversation_watcher") == ["ws_api", "falkordb"]
    assert graph.dependencies("falkordb", transitive=True) == []


def test_dependents_transitive_in_start_order() -> None:
    graph = DependencyGraph(STACK)
    assert graph.dependents("falkordb") == [
        "ws_api",
        "signals_collector",
        "dashboard",
        "conversation_watcher",
        "stimulus_injection",
        "autonomy_orchestrator",
    ]
    assert graph.dependents("ws_api") == [
        "dashboard",
        "conversation_watcher",
        "stimulus_injection",
        "autonomy_orchestrator",
    ]
    assert graph.dependents("falkordb", transitive=False) == [
        "ws_api",
        "signals_collector",
        "conversation_watcher",
        "autonomy_orchestrator",
    ]
    assert graph.dependents("dashboard") == []


def test_closure_for_up_only() -> None:
    graph = DependencyGraph(STACK)
    assert graph.closure(["dashboard"]) == ["falkordb", "ws_api", "dashboard"]
    assert graph.closure(["signals_collector", "dashboard"]) == [
        "falkordb",
        "ws_api",
        "signals_collector",
        "dashboard",
    ]
    assert graph.closure([]) == []


def test_unknown_id_is_a_key_error() -> None:
    graph = DependencyGraph(DIAMOND)
    with pytest.raises(KeyError):
        graph.dependents("nope")
    with pytest.raises(KeyError):
        graph.closure(["base", "nope"])


def test_unknown_dependency_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown service 'db'"):
        DependencyGraph({"api": ["db"]})


def test_repeated_requires_count_once() -> None:
    graph = DependencyGraph({"a": [], "b": ["a", "a"]})
    assert graph.dependencies("b") == ["a"]
    assert graph.dependents("a", transitive=False) == ["b"]


@pytest.mark.parametrize(
    ("requires", "cycle"),
    [
        ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"x": [], "a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
        ({"b": ["c"], "a": ["b"], "c": ["a"]}, ["b", "c", "a", "b"]),
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["b", "c"], "b": ["c"], "c": ["d"], "d": ["b"]}, ["b", "c", "d", "b"]),
    ],
)
def test_find_cycle(requires: dict[str, list[str]], cycle: list[str]) -> None:
    graph = DependencyGraph(requires)
    assert graph.find_cycle() == cycle
    with pytest.raises(CycleError, match="dependency cycle: " + " -> ".join(cycle)):
        graph.layers()


def test_no_cycle() -> None:
    assert DependencyGraph(STACK).find_cycle() is None
    assert DependencyGraph(DIAMOND).cycles() == []


def test_one_cycle_per_tangle() -> None:
    graph = DependencyGraph({"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c", "a"]})
    assert graph.cycles() == [["a", "b", "a"], ["c", "d", "c"]]


def test_shortest_cycle_is_reported() -> None:
    graph = DependencyGraph({"a": ["b", "c"], "b": ["c"], "c": ["a"]})
    assert graph.find_cycle() == ["a", "c", "a"]


def test_long_chain_needs_no_recursion() -> None:
    chain = {f"s{n}": ([f"s{n - 1}"] if n else []) for n in range(5000)}
    graph = DependencyGraph(chain)
    assert graph.find_cycle() is None
    assert len(graph.layers()) == 5000
    assert graph.closure(["s4999"])[0] == "s0"


def test_from_services() -> None:
    specs = [
        ServiceSpec(id="db", cmd=["db"]),
        ServiceSpec(id="api", cmd=["api"], requires=["db"]),
    ]
    graph = DependencyGraph.from_services(specs)
    assert graph.ids == ["db", "api"]
    assert graph.start_order() == ["db", "api"]
    with pytest.raises(ValueError, match="duplicate service id 'db'"):
        DependencyGraph.from_services([specs[0], specs[0]])
