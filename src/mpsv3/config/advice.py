"""Warnings: configs that load and run, but where a dependent may wait for ever.

Why warnings and not errors: each of these can be what the operator meant (a dependency that
is normally off, a service meant to run once), but each has a consequence nobody guesses from
the file: ``check`` says it at the line of the ``requires`` entry, and ``up`` still starts.
"""

from __future__ import annotations

from mpsv3.config.schema import ServiceSpec, StackSpec
from mpsv3.config.source import Source
from mpsv3.config.wording import show
from mpsv3.errors import ConfigError


def dependency_warnings(stack: StackSpec, source: Source) -> list[ConfigError]:
    """Every ``requires`` entry on a service that may never be ready (or completed) for it.

    * a ``kind: service`` with ``restart.policy: never``: once it stops, nothing starts it
      again, and its dependents wait for it until an operator does;
    * a service that ``up`` would not start by itself (``enabled: false``, or only in
      profiles the dependent is not in): ``up`` starts it anyway, because it is needed.
    """
    by_id = {spec.id: spec for spec in stack.services}
    warnings: list[ConfigError] = []
    for n, spec in enumerate(stack.services):
        for j, dep_id in enumerate(spec.requires):
            dep = by_id.get(dep_id)
            if dep is None:
                continue
            for text in _problems(spec, dep):
                path = source.service_path(n, "requires", j)
                warnings.append(source.error(path, f"warning: service {show(spec.id)}: {text}"))
    return warnings


def _problems(spec: ServiceSpec, dep: ServiceSpec) -> list[str]:
    found = []
    name = show(dep.id)
    if dep.kind == "service" and dep.restart.policy == "never":
        found.append(
            f"requires {name}, which has restart.policy: never: once it stops, this service "
            "waits for it until someone starts it (use on-failure, or kind: task for a one-shot job)"
        )
    if spec.enabled and not dep.enabled:
        found.append(
            f"requires {name}, which is enabled: false: up starts it anyway, because this "
            "service needs it"
        )
    elif spec.enabled and dep.profiles:
        missing = _profiles_without(spec, dep)
        if missing is not None:
            found.append(
                f"requires {name}, which is only in profiles {', '.join(dep.profiles)}: "
                f"{missing}up starts it anyway, because this service needs it"
            )
    return found


def _profiles_without(spec: ServiceSpec, dep: ServiceSpec) -> str | None:
    """When ``up`` starts ``spec`` but would not start ``dep`` on its own (None: never)."""
    if not spec.profiles:
        return "without --profile, "
    outside = [name for name in spec.profiles if name not in dep.profiles]
    if not outside:
        return None
    return f"with --profile {outside[0]}, "
