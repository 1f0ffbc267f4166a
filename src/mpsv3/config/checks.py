"""Cross-service config checks: unknown dependency, cycles, duplicate ids and ports, globs.

Why: the contract promises every problem at once, each as one readable line at the line of
the file where it was written. Pydantic finds the per-field problems (``schema_text`` words
them); the rules that span services, and the per-service rules that need more than one field
or the machine (``rules``), are small functions with one signature,
``check_x(stack, source) -> list[ConfigError]``, all run by ``run_checks``: none stops at the
first failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from mpsv3.config import rules
from mpsv3.config.schema import ServiceSpec, StackSpec
from mpsv3.config.source import Source
from mpsv3.config.wording import did_you_mean, show
from mpsv3.errors import ConfigError
from mpsv3.policy.graph import DependencyGraph

#: Comparisons the did-you-mean of unknown dependencies may make in all (each one compares
#: the unknown id with every id: unbounded, thousands of them would be quadratic).
_SUGGESTION_BUDGET = 100_000


Check = Callable[[StackSpec, Source], list[ConfigError]]


def run_checks(stack: StackSpec, source: Source) -> list[ConfigError]:
    """Every cross-service problem of ``stack``, from every check."""
    errors: list[ConfigError] = []
    for check in CHECKS:
        errors += check(stack, source)
    return errors


# ---------------------------------------------------------------------------------- checks


def check_duplicate_ids(stack: StackSpec, source: Source) -> list[ConfigError]:
    """Two services with the same ``id``."""
    first: dict[str, int] = {}
    errors = []
    for n, spec in enumerate(stack.services):
        if spec.id not in first:
            first[spec.id] = n
            continue
        at = source.lines.line(source.service_path(first[spec.id], "id"))
        message = f'duplicate service id "{spec.id}" (first at line {at})'
        errors.append(source.error(source.service_path(n, "id"), message))
    return errors


def check_requires(stack: StackSpec, source: Source) -> list[ConfigError]:
    """A ``requires`` entry that names no service, or the service itself."""
    known = source.declared or frozenset(spec.id for spec in stack.services)
    choices = sorted(known)
    budget = _SUGGESTION_BUDGET
    errors: list[ConfigError] = []
    for n, spec in enumerate(stack.services):
        for j, dep in enumerate(spec.requires):
            path = source.service_path(n, "requires", j)
            if dep == spec.id:
                errors.append(source.error(path, f"service {show(spec.id)}: requires itself"))
            elif dep not in known:
                message = f"service {show(spec.id)}: requires unknown service {show(dep)}"
                if budget >= len(choices):
                    budget -= len(choices)
                    message += did_you_mean(dep, choices)
                errors.append(source.error(path, message))
    return errors


def check_cycles(stack: StackSpec, source: Source) -> list[ConfigError]:
    """A dependency cycle, printed ``a -> b -> a``; one error per tangle of services."""
    position: dict[str, int] = {}
    for n, spec in enumerate(stack.services):
        position.setdefault(spec.id, n)
    requires = {
        sid: [d for d in stack.services[n].requires if d in position and d != sid]
        for sid, n in position.items()
    }
    errors = []
    for cycle in DependencyGraph(requires).cycles():
        path = source.service_path(position[cycle[0]], "requires")
        errors.append(source.error(path, "dependency cycle: " + " -> ".join(cycle)))
    return errors


def check_watch_globs(stack: StackSpec, source: Source) -> list[ConfigError]:
    """A ``watch.paths`` pattern that is empty or has an unbalanced ``{`` or ``[``."""
    errors = []
    for n, spec in enumerate(stack.services):
        for j, pattern in enumerate(spec.watch.paths if spec.watch else []):
            problem = glob_problem(pattern, exclusions=True)
            if problem:
                message = (
                    f'service "{spec.id}": watch.paths[{j}]: bad glob {show(pattern)}: {problem}'
                )
                errors.append(source.error(source.service_path(n, "watch", "paths", j), message))
    return errors


def check_legacy_locks(stack: StackSpec, source: Source) -> list[ConfigError]:
    """A ``legacy_locks`` pattern that is not a usable glob (no ``!`` exclusions there)."""
    errors = []
    for j, pattern in enumerate(stack.legacy_locks):
        problem = glob_problem(pattern, exclusions=False)
        if problem:
            message = f"legacy_locks[{j}]: bad glob {show(pattern)}: {problem}"
            errors.append(source.error(("legacy_locks", j), message))
    return errors


def check_ports(stack: StackSpec, source: Source) -> list[ConfigError]:
    """The same port declared by two services (or by a service and the metrics endpoint)."""
    owner: dict[int, str] = {}
    errors = []
    if stack.metrics is not None:
        owner[stack.metrics.port] = "metrics"
    for n, spec in enumerate(stack.services):
        for j, port in enumerate(spec.ports):
            if port in owner and owner[port] != f'service "{spec.id}"':
                message = f'service "{spec.id}": port {port} is also declared by {owner[port]}'
                errors.append(source.error(source.service_path(n, "ports", j), message))
            owner.setdefault(port, f'service "{spec.id}"')
    return errors


CHECKS: tuple[Check, ...] = (
    check_duplicate_ids,
    check_requires,
    check_cycles,
    check_watch_globs,
    check_legacy_locks,
    check_ports,
    rules.check_tasks,
    rules.check_env_keys,
    rules.check_accounts,
)


def glob_problem(pattern: str, *, exclusions: bool) -> str | None:
    """Why ``pattern`` is not a usable glob, or None. ``..`` and absolute paths are allowed.

    Args:
        pattern: a glob with ``*``, ``**``, ``?``, ``[...]`` and ``{a,b}``.
        exclusions: whether a leading ``!`` (exclude) is allowed.
    """
    body = pattern
    if pattern.startswith("!"):
        if not exclusions:
            return "exclusions (!) are not supported here"
        body = pattern[1:]
    if not body.strip():
        return "empty pattern"
    if "\0" in body:
        return "contains a NUL character"
    depth = 0
    i = 0
    while i < len(body):
        char = body[i]
        if char == "[":
            start = i + 1
            if body[start : start + 1] in ("!", "^"):
                start += 1
            close = body.find("]", start + 1)  # a "]" right after "[" is a literal
            if close < 0:
                return 'unbalanced "["'
            i = close
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return 'unbalanced "}"'
            depth -= 1
        i += 1
    return 'unbalanced "{"' if depth else None


def partial_stack(data: dict[str, Any]) -> tuple[StackSpec, list[int], set[str]] | None:
    """The services that validate on their own, for the cross-service checks.

    When the whole stack fails the schema, the checks still run on what is valid, so that an
    unknown dependency is reported together with a typo elsewhere; a service that fails the
    schema takes part with its id and ``requires`` only. Returns the partial stack,
    the document index of each kept service, and every id written in the document (so that a
    dependency on a service with a schema error is not also called unknown).
    """
    items = data.get("services")
    if not isinstance(items, list):
        return None
    kept: list[ServiceSpec] = []
    indexes: list[int] = []
    declared: set[str] = set()
    for n, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            declared.add(item["id"])
        try:
            spec: ServiceSpec | None = ServiceSpec.model_validate(item)
        except ValidationError:
            spec = _stand_in(item)
        if spec is not None:
            kept.append(spec)
            indexes.append(n)
    locks = data.get("legacy_locks")
    legacy = [lock for lock in locks if isinstance(lock, str)] if isinstance(locks, list) else []
    env = data.get("env")
    keys = {key: "" for key in env if isinstance(key, str)} if isinstance(env, dict) else {}
    stack = StackSpec.model_construct(
        version=1, services=kept, legacy_locks=legacy, metrics=None, env=keys
    )
    return stack, indexes, declared


def _stand_in(item: Any) -> ServiceSpec | None:
    """What the checks can still use of a service that failed the schema: id and requires."""
    if not isinstance(item, dict):
        return None
    sid, requires = item.get("id"), item.get("requires", [])
    if not isinstance(sid, str) or not isinstance(requires, list):
        return None
    if not all(isinstance(dep, str) for dep in requires):
        return None
    return ServiceSpec.model_construct(id=sid, cmd=[], requires=requires)
