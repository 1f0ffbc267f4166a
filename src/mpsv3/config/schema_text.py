"""Pydantic's validation errors rewritten as ``ConfigError`` lines a person can act on.

Why: pydantic's messages carry URLs, ``[type=...]`` and Python type names; the contract wants
one readable sentence at the line where the value was written, with a did-you-mean for an
unknown key. This module only words; where a problem is, is ``source.Source``'s job.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from mpsv3.config.schema import StackSpec
from mpsv3.config.source import Path_, Source
from mpsv3.config.wording import closest, describe_path, did_you_mean, show
from mpsv3.errors import ConfigError

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

#: Probe kinds that only make sense while starting.
_READINESS_ONLY = ("log", "notify")


def schema_errors(
    exc: ValidationError, data: Any, source: Source, prefix: Path_ = ()
) -> list[tuple[Path_, ConfigError]]:
    """Pydantic's errors as one-line ``ConfigError`` values, each with its ``loc``.

    Args:
        exc: the validation error of ``StackSpec`` (or of a part, then ``prefix`` is where
            that part sits in the document: ``("services", 3)`` for one service).
        data: the whole document's data (to name the service an error is in).
        source: where each part was written.
        prefix: the document path of what ``exc`` validated.
    """
    found = exc.errors(include_url=False)
    misspelt = set()  # (parent, key) of a missing key that an unknown key is a typo of
    for err in found:
        if err["type"] == "extra_forbidden":
            where: Path_ = (*prefix, *err["loc"][:-1])
            model = _model_at(where)
            close = closest(str(err["loc"][-1]), list(model.model_fields) if model else [])
            misspelt.add((where, close))
    result = []
    for err in found:
        loc: Path_ = (*prefix, *err["loc"])
        if err["type"] == "missing" and (loc[:-1], loc[-1]) in misspelt:
            continue  # "unknown key "servces" (did you mean "services"?)" says it all
        if loc[-1:] == ("[key]",) and len(loc) > 1 and err.get("input") == loc[-2]:
            loc = loc[:-1]  # a bad key of a dict: point at the key
        owner, rest = _owner(loc, data)
        message = owner + _message(err, rest, _model_at(loc[:-1]))
        result.append((loc, source.error(loc, message)))
    return result


def _owner(loc: Path_, data: Any) -> tuple[str, Path_]:
    """``service "ws_api": `` and the rest of ``loc`` when it is inside a service with an id."""
    if len(loc) >= 2 and loc[0] == "services" and isinstance(loc[1], int):
        items = data.get("services") if isinstance(data, dict) else None
        if isinstance(items, list) and loc[1] < len(items):
            item = items[loc[1]]
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                return f"service {show(item['id'])}: ", loc[2:]
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
        return f"{describe_path(parent)}unknown key {show(key)}" + did_you_mean(key, fields)
    if kind in _EXPECTED:
        hint = (
            " (quote it)" if kind == "string_type" and isinstance(value, (bool, int, float)) else ""
        )
        return f"{describe_path(rest)}{_EXPECTED[kind]}, got {show(value)}{hint}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", '"')
        return f"{describe_path(rest)}expected {expected}, got {show(value)}"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"{describe_path(rest)}{words} {ctx.get(name)}, got {show(value)}"
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        need = "must not be empty" if minimum == 1 else f"needs at least {minimum} items"
        return f"{describe_path(rest)}{need}"
    text = str(err.get("msg", kind))
    for noise in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(noise)
    return describe_path(rest) + " ".join(text.split())


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
