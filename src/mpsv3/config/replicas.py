"""``replicas: N``: one written service, N processes ``ID-1`` … ``ID-N``.

Why at load time: each replica is interpolated with its own ``MPSV3_REPLICA`` (ports, env,
probes may differ per replica), and a replica that cannot run (its port out of range, two
replicas on one port, an id that clashes) is a config error, reported once at the
template's line. The template is validated first, as replica 1; a template that does not
mention ``${MPSV3_REPLICA}`` is copied, not re-interpolated (the common case, and cheap).

Bounds: a template is re-interpolated once per replica, so each copy spends from the
document's expansion budget (its text) and from ``MAX_REPLICA_VALUES`` (its values, which is
what the copying and validation cost); at most ``MAX_RUNNABLE`` processes in all.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mpsv3.config.document import SourceMap, env_numbers_as_text
from mpsv3.config.interpolate import (
    DocumentInterpolator,
    InterpolationError,
    interpolate,
    references,
)
from mpsv3.config.schema import (
    MAX_ID_LENGTH,
    MAX_REPLICAS,
    REPLICA_VARIABLE,
    RunnableService,
    ServiceSpec,
    StackSpec,
)
from mpsv3.config.schema_text import schema_errors
from mpsv3.config.source import Path_, Source
from mpsv3.config.wording import show
from mpsv3.errors import ConfigError

#: Most processes one config may ask for, replicas included.
MAX_RUNNABLE = 10_000

#: Values that interpolating replicas one by one may create in all (about a second of work).
MAX_REPLICA_VALUES = 200_000


def replica_sources(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """A copy, before interpolation, of every service item written with ``replicas:``."""
    services = data.get("services")
    if not isinstance(services, list):
        return {}
    return {
        n: copy.deepcopy(item)
        for n, item in enumerate(services)
        if isinstance(item, dict) and "replicas" in item
    }


@dataclass
class Expansion:
    """What expanding a stack gave: the processes, the problems, and the per-replica texts."""

    runnable: list[RunnableService] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    texts: dict[str, list[tuple[Path_, str]]] = field(default_factory=dict)


class ReplicaExpander:
    """Expands the templates of one validated stack; owned by one load.

    Args:
        data: the interpolated document (to name a service in a message).
        lines: where each part was written.
        source: the stack's source (every service validated: positions are document indexes).
        interpolator: the document's interpolator (its budget is spent per replica).
        variables: the variables every service string sees (``MPSV3_REPLICA`` is added).
    """

    def __init__(
        self,
        data: dict[str, Any],
        lines: SourceMap,
        source: Source,
        interpolator: DocumentInterpolator,
        variables: Mapping[str, str],
    ) -> None:
        self.data = data
        self.lines = lines
        self.source = source
        self.interpolator = interpolator
        self.variables = variables
        self.result = Expansion()
        self._values_left = MAX_REPLICA_VALUES

    def expand(
        self, stack: StackSpec, sources: dict[int, dict[str, Any]], counts: Mapping[str, int]
    ) -> Expansion:
        """Every process of ``stack``, with ``counts`` overriding written replica counts."""
        self._check_counts(stack, counts)
        if self.result.errors:
            return self.result
        total = 0
        for n, spec in enumerate(stack.services):
            if spec.replicas is None:
                self.result.runnable.append(RunnableService(spec=spec, template=spec.id))
                total += 1
                continue
            count = counts.get(spec.id, spec.replicas)
            total += count
            if total > MAX_RUNNABLE:
                self._error(n, "replicas", f"more than {MAX_RUNNABLE} processes in all: refused")
                break
            replicas = self._replicas(n, spec, sources[n], count)
            self.result.runnable += [
                RunnableService(spec=replica, template=spec.id, replica=k)
                for k, replica in enumerate(replicas, 1)
            ]
        if not self.result.errors:
            self._check_clashes(stack)
        return self.result

    def _check_counts(self, stack: StackSpec, counts: Mapping[str, int]) -> None:
        """The ``mpsv3 scale`` overrides name replicated services, with a count in range."""
        positions = {spec.id: n for n, spec in enumerate(stack.services)}
        for sid, count in counts.items():
            n = positions.get(sid)
            if n is None:
                message = f"cannot scale {show(sid)}: no service has this id"
                self.result.errors.append(ConfigError(self.source.shown, 0, message))
            elif stack.services[n].replicas is None:
                self._error(n, "id", "has no replicas: key, so it cannot be scaled")
            elif isinstance(count, bool) or not isinstance(count, int) or not (
                1 <= count <= MAX_REPLICAS
            ):
                self._error(n, "replicas", f"cannot scale to {count!r}: 1 … {MAX_REPLICAS}")
        for n, spec in enumerate(stack.services):
            if spec.replicas is not None:
                count = counts.get(spec.id, spec.replicas)
                longest = f"{spec.id}-{count}"
                if len(longest) > MAX_ID_LENGTH:
                    message = (
                        f"replica id {show(longest)} is longer than {MAX_ID_LENGTH} "
                        "characters (it names the replica's files)"
                    )
                    self._error(n, "replicas", message)

    def _replicas(
        self, n: int, spec: ServiceSpec, raw: dict[str, Any], count: int
    ) -> list[ServiceSpec]:
        """Replicas 1 … ``count`` of the template at position ``n``."""
        texts = self._replica_texts(raw)
        if not texts:
            return [spec.replica(k) for k in range(1, count + 1)]
        self.result.texts[spec.id] = texts
        weight, values = _weight(raw)
        self._values_left -= values * count
        if self._values_left < 0:
            message = (
                f"{count} replicas of a service of {values} values, each interpolated with "
                f"${{{REPLICA_VARIABLE}}}, make more than {MAX_REPLICA_VALUES} values in all: refused"
            )
            self._error(n, "replicas", message)
            return []
        replicas = []
        for k in range(1, count + 1):
            replica = self._interpolated(n, spec, raw, k, weight)
            if replica is None:
                return []
            replicas.append(replica)
        return replicas

    def _interpolated(
        self, n: int, spec: ServiceSpec, raw: dict[str, Any], k: int, weight: int
    ) -> ServiceSpec | None:
        """Replica ``k`` interpolated from the written text; None (and an error) if it fails."""
        path: Path_ = ("services", n)
        before = len(self.interpolator.problems)
        try:
            self.interpolator.budget.spend(weight)
        except InterpolationError as exc:
            self._error(n, "replicas", str(exc))
            return None
        item = copy.deepcopy(raw)
        self.interpolator.walk(item, path, {**self.variables, REPLICA_VARIABLE: str(k)})
        for where, message in self.interpolator.problems[before:]:
            if message is not None:
                self.result.errors.append(ConfigError(self.source.shown, self.lines.value_line(where), message))
        if len(self.interpolator.problems) > before:
            return None
        env_numbers_as_text(item.get("env"), (*path, "env"), self.lines)
        item.pop("replicas", None)
        item["id"] = f"{spec.id}-{k}"
        try:
            replica = ServiceSpec.model_validate(item)
        except ValidationError as exc:
            services = list(self.data["services"])
            services[n] = {**item, "id": spec.id}  # messages name the template, and the replica
            document = {**self.data, "services": services}
            owner = f"service {show(spec.id)}: "
            for _, error in schema_errors(exc, document, self.source, prefix=path):
                message = error.message.replace(owner, f"service {show(spec.id)}, replica {k}: ", 1)
                self.result.errors.append(ConfigError(error.path, error.line, message))
            return None
        return replica.model_copy(update={"env": {**replica.env, REPLICA_VARIABLE: str(k)}})

    def _replica_texts(self, raw: dict[str, Any]) -> list[tuple[Path_, str]]:
        """Each string of the template that uses ``${MPSV3_REPLICA}``, that variable kept."""
        texts: list[tuple[Path_, str]] = []
        for where, text in _strings(raw):
            if where[:1] in (("id",), ("replicas",)) or REPLICA_VARIABLE not in references(text):
                continue
            try:
                kept = interpolate(
                    text, self.variables, budget=self.interpolator.budget, keep=REPLICA_VARIABLE
                )
            except InterpolationError:
                kept = text  # the template interpolated, so only the budget can end here
            texts.append((where, kept))
        return texts

    def _check_clashes(self, stack: StackSpec) -> None:
        """Replica ids and ports that clash with another process's (once per template)."""
        position = {spec.id: n for n, spec in enumerate(stack.services)}
        ids: dict[str, str] = {}
        ports: dict[int, RunnableService | None] = {}  # None: the metrics endpoint
        if stack.metrics is not None:
            ports[stack.metrics.port] = None
        reported: set[str] = set()
        for item in self.result.runnable:
            sid, template = item.spec.id, item.template
            other = ids.setdefault(sid, template)
            if other != template:  # one of the two is a replica: a written id cannot clash here
                pool, written = (template, other) if item.replica is not None else (other, template)
                if pool not in reported:
                    reported.add(pool)
                    message = f"replica id {show(sid)} is also the id of service {show(written)}"
                    self._error(position[pool], "replicas", message)
            for port in item.spec.ports:
                owner = ports.setdefault(port, item)
                if owner is item or item.replica is None or template in reported:
                    continue
                reported.add(template)
                self._error(position[template], "ports", _port_clash(item, port, owner))

    def _error(self, n: int, key: str, message: str) -> None:
        sid = self.data["services"][n].get("id")
        path = self.source.service_path(n, key)
        self.result.errors.append(self.source.error(path, f"service {show(sid)}: {message}"))


def _port_clash(item: RunnableService, port: int, owner: RunnableService | None) -> str:
    if owner is not None and owner.template == item.template:
        return (
            f"each replica would listen on port {port}: write the port with "
            f'${{{REPLICA_VARIABLE}}}, e.g. "80${{{REPLICA_VARIABLE}}}"'
        )
    shown = "metrics" if owner is None else f"service {show(owner.spec.id)}"
    return f"port {port} of replica {item.spec.id} is also declared by {shown}"


def _strings(node: Any, path: Path_ = ()) -> list[tuple[Path_, str]]:
    """Every string under ``node`` with its path (iterative: the node may be deep)."""
    found: list[tuple[Path_, str]] = []
    todo: list[tuple[Path_, Any]] = [(path, node)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, str):
            found.append((where, value))
        elif isinstance(value, dict):
            todo.extend(((*where, key), item) for key, item in value.items())
        elif isinstance(value, list):
            todo.extend(((*where, n), item) for n, item in enumerate(value))
    found.reverse()
    return found


def _weight(node: Any) -> tuple[int, int]:
    """What copying and interpolating ``node`` once costs: its characters, its values."""
    chars, values = 0, 0
    todo = [node]
    while todo:
        value = todo.pop()
        values += 1
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, dict):
            chars += sum(len(str(key)) for key in value)
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
    return chars, values
