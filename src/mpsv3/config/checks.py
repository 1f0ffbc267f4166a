"""Config problems as ``ConfigError`` values: schema errors translated, cross-service checks.

Why: the contract promises every problem at once, each as one readable line at the line of
the file where it was written. Pydantic finds the per-field problems; this module rewrites
them (no URLs, no ``[type=...]``, a did-you-mean for unknown keys). The rules that span
services (unknown dependency, cycle, duplicate id or port, bad globs) are small functions with
one signature, ``check_x(stack, source) -> list[ConfigError]``, all run by ``run_checks``:
none stops at the first failure.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from mpsv3.config.schema import ServiceSpec, StackSpec
from mpsv3.errors import ConfigError
from mpsv3.policy.graph import DependencyGraph

#: A place in the document: mapping keys and list indexes (pydantic's ``loc`` shape).
Path_ = tuple[str | int, ...]


class Lines(Protocol):
    """Where each part of the document was written (``loader.SourceMap``)."""

    def line(self, path: Path_) -> int: ...


@dataclass(frozen=True)
class Source:
    """What a check needs besides the stack: the file, its lines, and which services are whose.

    Attributes:
        shown: the config path as the user gave it.
        lines: key/item lines of the document.
        indexes: the document index of each service of the checked stack (services that
            failed the schema are left out of a partial stack, so positions differ).
        declared: every service id written in the document, when it differs from the ids of
            the checked stack (a dependency on a service with a schema error is not unknown).
    """

    shown: str
    lines: Lines
    indexes: tuple[int, ...] = ()
    declared: frozenset[str] | None = None

    def error(self, path: Path_, message: str) -> ConfigError:
        return ConfigError(self.shown, self.lines.line(path), message)

    def service_path(self, position: int, *rest: str | int) -> Path_:
        """The document path of ``stack.services[position]`` (plus ``rest`` inside it)."""
        return ("services", self.indexes[position], *rest)


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
    errors = []
    for n, spec in enumerate(stack.services):
        for j, dep in enumerate(spec.requires):
            path = source.service_path(n, "requires", j)
            if dep == spec.id:
                errors.append(source.error(path, f'service "{spec.id}": requires itself'))
            elif dep not in known:
                unknown = json.dumps(dep, ensure_ascii=False)
                message = f'service "{spec.id}": requires unknown service {unknown}'
                errors.append(source.error(path, message + did_you_mean(dep, sorted(known))))
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
                    f'service "{spec.id}": watch.paths[{j}]: bad glob {_show(pattern)}: {problem}'
                )
                errors.append(source.error(source.service_path(n, "watch", "paths", j), message))
    return errors


def check_legacy_locks(stack: StackSpec, source: Source) -> list[ConfigError]:
    """A ``legacy_locks`` pattern that is not a usable glob (no ``!`` exclusions there)."""
    errors = []
    for j, pattern in enumerate(stack.legacy_locks):
        problem = glob_problem(pattern, exclusions=False)
        if problem:
            message = f"legacy_locks[{j}]: bad glob {_show(pattern)}: {problem}"
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


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean "x"?)`` when a choice is close to ``word``, else ``""``."""
    close = _closest(word, choices)
    return f' (did you mean "{close}"?)' if close else ""


def _closest(word: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


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
    stack = StackSpec.model_construct(
        version=1, services=kept, legacy_locks=legacy, metrics=None, env={}
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


# ---------------------------------------------------------------------- schema error text


_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}

_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least"),
    "greater_than": ("gt", "must be more than"),
    "less_than_equal": ("le", "must be at most"),
    "less_than": ("lt", "must be less than"),
}

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:/*-]+")

#: Probe kinds that only make sense while starting.
_READINESS_ONLY = ("log", "notify")


def schema_errors(
    exc: ValidationError, data: Any, source: Source
) -> list[tuple[Path_, ConfigError]]:
    """Pydantic's errors as one-line ``ConfigError`` values, each with its ``loc``."""
    found = exc.errors(include_url=False)
    misspelt = set()  # (parent, key) of a missing key that an unknown key is a typo of
    for err in found:
        if err["type"] == "extra_forbidden":
            model = _model_at(tuple(err["loc"][:-1]))
            close = _closest(str(err["loc"][-1]), list(model.model_fields) if model else [])
            misspelt.add((tuple(err["loc"][:-1]), close))
    result = []
    for err in found:
        loc: Path_ = tuple(err["loc"])
        if err["type"] == "missing" and (loc[:-1], loc[-1]) in misspelt:
            continue  # "unknown key "servces" (did you mean "services"?)" says it all
        if loc[-1:] == ("[key]",) and len(loc) > 1 and err.get("input") == loc[-2]:
            loc = loc[:-1]  # a bad key of a dict: point at the key
        prefix, rest = _owner(loc, data)
        message = prefix + _message(err, rest, _model_at(loc[:-1]))
        result.append((loc, source.error(loc, message)))
    return result


def _owner(loc: Path_, data: Any) -> tuple[str, Path_]:
    """``service "ws_api": `` and the rest of ``loc`` when it is inside a service with an id."""
    if len(loc) >= 2 and loc[0] == "services" and isinstance(loc[1], int):
        items = data.get("services") if isinstance(data, dict) else None
        if isinstance(items, list) and loc[1] < len(items):
            item = items[loc[1]]
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                return f"service {json.dumps(item['id'], ensure_ascii=False)}: ", loc[2:]
    return "", loc


def _message(err: Any, rest: Path_, parent_model: type[BaseModel] | None) -> str:
    """The text for one pydantic error; ``rest`` is its place inside its owner."""
    kind: str = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if rest == ("version",) and kind in ("literal_error", "missing"):
        return "version: expected 1"
    if kind == "missing":
        return f'{describe_path(rest[:-1])}missing required key "{rest[-1]}"'
    if kind == "extra_forbidden":
        parent, key = rest[:-1], str(rest[-1])
        if parent[-1:] == ("liveness",) and key in _READINESS_ONLY:
            return f"{describe_path(parent)}{key} probes are readiness-only (use them under readiness:)"
        fields = list(parent_model.model_fields) if parent_model else []
        unknown = json.dumps(key, ensure_ascii=False)
        return f"{describe_path(parent)}unknown key {unknown}" + did_you_mean(key, fields)
    if kind in _EXPECTED:
        hint = (
            " (quote it)" if kind == "string_type" and isinstance(value, (bool, int, float)) else ""
        )
        return f"{describe_path(rest)}{_EXPECTED[kind]}, got {_show(value)}{hint}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", '"')
        return f"{describe_path(rest)}expected {expected}, got {_show(value)}"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"{describe_path(rest)}{words} {ctx.get(name)}, got {_show(value)}"
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        need = "must not be empty" if minimum == 1 else f"needs at least {minimum} items"
        return f"{describe_path(rest)}{need}"
    text = str(err.get("msg", kind))
    for noise in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(noise)
    return describe_path(rest) + " ".join(text.split())


def describe_path(path: Path_) -> str:
    """``readiness.http_get.url: `` (a place inside its owner), or ``""`` for the owner itself.

    A key that is not a plain name is quoted (``env["A B"]``) so a message stays one line.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
        else:
            text += f".{part}" if text else part
    return text + ": " if text else ""


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
        return shown if len(shown) <= 60 else shown[:56] + '..."'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _model_at(path: Path_) -> type[BaseModel] | None:
    """The schema model that validates the mapping at ``path`` (for the did-you-mean)."""
    current: Any = StackSpec
    for part in path:
        current = _unwrap(current)
        if isinstance(part, int):
            if get_origin(current) is not list:
                return None
            current = get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``X | None`` and from ``Annotated[X, ...]``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation
