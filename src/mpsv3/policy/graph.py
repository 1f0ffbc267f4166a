"""The dependency DAG of a stack: start layers, stop order, dependents, cycles.

Why its own module: ordering is pure policy, used by the config checks (cycles), the
supervisor (start layers, ``up --only`` closure, reverse stop) and the watcher
(``restart_dependents``). A ``DependencyGraph`` is immutable once built, so any task may share
one without locking. Every list it returns is deterministic: ties are broken by config order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mpsv3.config.schema import ServiceSpec
    from mpsv3.plan import StackPlan


class CycleError(ValueError):
    """The graph has a cycle, so it has no start order."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(cycle))


class DependencyGraph:
    """Services and their ``requires`` edges; a service starts after everything it requires.

    Args:
        requires: service id -> the ids it requires, in config order. Every required id must
            be a key (the config checks report unknown ids before a graph is built).

    Raises:
        ValueError: a required id is not a service of the graph.
    """

    def __init__(self, requires: Mapping[str, Sequence[str]]) -> None:
        self._ids: list[str] = list(requires)
        self._rank: dict[str, int] = {sid: n for n, sid in enumerate(self._ids)}
        self._requires: dict[str, list[str]] = {}
        self._required_by: dict[str, list[str]] = {sid: [] for sid in self._ids}
        for sid in self._ids:
            deps = list(dict.fromkeys(requires[sid]))  # drop repeats, keep order
            for dep in deps:
                if dep not in self._rank:
                    raise ValueError(f"service {sid!r} requires unknown service {dep!r}")
                self._required_by[dep].append(sid)
            self._requires[sid] = deps
        self._layers: list[list[str]] | None = None  # computed once: the graph never changes

    @classmethod
    def from_services(cls, services: Sequence[ServiceSpec]) -> DependencyGraph:
        """The graph of validated services (ids unique, ``requires`` known)."""
        requires: dict[str, Sequence[str]] = {}
        for spec in services:
            if spec.id in requires:
                raise ValueError(f"duplicate service id {spec.id!r}")
            requires[spec.id] = spec.requires
        return cls(requires)

    @classmethod
    def from_plan(cls, plan: StackPlan) -> DependencyGraph:
        """The graph of a plan: a dependent of a replicated service requires every replica."""
        return cls({spec.id: plan.requires_ids(spec) for spec in plan.services})

    # ------------------------------------------------------------------------------ order

    @property
    def ids(self) -> list[str]:
        """Every service id, in config order."""
        return list(self._ids)

    def layers(self) -> list[list[str]]:
        """Start layers: layer n holds the services whose longest dependency chain has n links.

        The services of a layer depend only on earlier layers, so they can start in parallel.

        Raises:
            CycleError: the graph has a cycle.
        """
        if self._layers is None:
            cycle = self.find_cycle()
            if cycle is not None:
                raise CycleError(cycle)
            self._layers = self._compute_layers()
        return [list(layer) for layer in self._layers]

    def _compute_layers(self) -> list[list[str]]:
        depth: dict[str, int] = {}
        for sid in self._topological():
            depth[sid] = 1 + max((depth[dep] for dep in self._requires[sid]), default=-1)
        layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for sid in self._ids:  # config order within a layer
            layers[depth[sid]].append(sid)
        return layers

    def start_order(self) -> list[str]:
        """Every service, dependencies first (the layers, one after the other)."""
        return [sid for layer in self.layers() for sid in layer]

    def stop_order(self) -> list[str]:
        """Every service, dependents first: the start order reversed."""
        return self.start_order()[::-1]

    def stop_layers(self) -> list[list[str]]:
        """Stop layers: the start layers in reverse; a layer's services can stop in parallel."""
        return [list(layer) for layer in reversed(self.layers())]

    # ------------------------------------------------------------------------ neighbourhood

    def dependencies(self, sid: str, transitive: bool = False) -> list[str]:
        """What ``sid`` requires: directly (config order), or all of it (start order)."""
        self._check(sid)
        if not transitive:
            return list(self._requires[sid])
        found = self._reach(sid, self._requires)
        return [other for other in self.start_order() if other in found]

    def has(self, sid: str) -> bool:
        return sid in self._rank

    def dependents(self, sid: str, transitive: bool = True) -> list[str]:
        """What requires ``sid`` (all of it, or only directly), in start order."""
        self._check(sid)
        found = self._reach(sid, self._required_by) if transitive else set(self._required_by[sid])
        return [other for other in self.start_order() if other in found]

    def closure(self, ids: Iterable[str]) -> list[str]:
        """``ids`` and everything they require, transitively, in start order (``up --only``)."""
        wanted: set[str] = set()
        for sid in ids:
            self._check(sid)
            wanted.add(sid)
            wanted |= self._reach(sid, self._requires)
        return [other for other in self.start_order() if other in wanted]

    # ------------------------------------------------------------------------------ cycles

    def find_cycle(self) -> list[str] | None:
        """One cycle as a closed path (``["a", "b", "a"]``: a requires b requires a), or None."""
        cycles = self.cycles()
        return cycles[0] if cycles else None

    def cycles(self) -> list[list[str]]:
        """One cycle per tangle (strongly connected part), each a closed path.

        A path starts at the member that comes first in config order and follows ``requires``
        edges; the cycles are listed in config order of that first member. A service that
        requires itself is the cycle ``[id, id]``.
        """
        found: list[list[str]] = []
        for component in self._components():
            members = set(component)
            first = min(component, key=self._rank.__getitem__)
            if len(component) == 1 and first not in self._requires[first]:
                continue
            found.append(self._cycle_through(first, members))
        found.sort(key=lambda cycle: self._rank[cycle[0]])
        return found

    # ----------------------------------------------------------------------------- helpers

    def _check(self, sid: str) -> None:
        if sid not in self._rank:
            raise KeyError(sid)

    @staticmethod
    def _reach(sid: str, edges: Mapping[str, list[str]]) -> set[str]:
        """Every id reachable from ``sid`` along ``edges``, ``sid`` itself excluded."""
        seen: set[str] = set()
        todo = list(edges[sid])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(edges[node])
        seen.discard(sid)
        return seen

    def _topological(self) -> list[str]:
        """Dependencies before dependents (Kahn), assuming no cycle."""
        waiting = {sid: len(self._requires[sid]) for sid in self._ids}
        ready = deque(sid for sid in self._ids if waiting[sid] == 0)
        order: list[str] = []
        while ready:
            sid = ready.popleft()
            order.append(sid)
            for dependent in self._required_by[sid]:
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    ready.append(dependent)
        return order

    def _components(self) -> list[list[str]]:
        """Strongly connected components (Tarjan, iterative so deep chains cannot overflow)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        result: list[list[str]] = []
        for root in self._ids:
            if root in index:
                continue
            work: list[tuple[str, int]] = [(root, 0)]
            while work:
                node, child = work.pop()
                if child == 0:
                    index[node] = low[node] = len(index)
                    stack.append(node)
                    on_stack.add(node)
                deps = self._requires[node]
                if child < len(deps):
                    work.append((node, child + 1))
                    dep = deps[child]
                    if dep not in index:
                        work.append((dep, 0))
                    elif dep in on_stack:
                        low[node] = min(low[node], index[dep])
                    continue
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    result.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
        return result

    def _cycle_through(self, start: str, members: set[str]) -> list[str]:
        """A closed path from ``start`` back to it inside one component (breadth-first: short)."""
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier:
            following: list[str] = []
            for node in frontier:
                for dep in self._requires[node]:
                    if dep not in members:
                        continue
                    if dep == start:
                        path = [node]
                        while path[-1] != start:
                            path.append(previous[path[-1]])
                        return (
                            [start, *reversed(path[:-1]), start]
                            if node != start
                            else [start, start]
                        )
                    if dep not in previous:
                        previous[dep] = node
                        following.append(dep)
            frontier = following
        raise AssertionError(f"no cycle through {start!r} in its component")
