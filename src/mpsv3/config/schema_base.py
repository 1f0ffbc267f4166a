"""What every config model shares: frozen models that refuse unknown keys, common field types.

Why its own module: the schema is split by subject (``schema`` services and stack,
``schema_probes`` readiness and liveness, ``schema_export`` export keys); these are the pieces
they all use, so that a port or a command is validated the same way everywhere.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def short(text: str) -> str:
    """``text`` quoted for a message, cut short so that a message stays one readable line."""
    return repr(text) if len(text) <= 80 else repr(text[:60]) + "..."


def not_a_bool(value: Any) -> Any:
    """YAML's ``true`` is not the number 1: refuse it where a number is expected."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


PortNumber = Annotated[int, BeforeValidator(not_a_bool), Field(ge=1, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class Model(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def split_command(value: Any) -> Any:
    """Accept ``cmd`` as an argv list or as a string split the way a shell would (no shell runs)."""
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:  # unbalanced quotes
            raise ValueError(f"cannot split command {short(value)}: {exc}") from exc
        if not parts:
            raise ValueError("command is empty")
        return parts
    return value


def one_or_many(value: Any) -> Any:
    """``env_file: .env`` means ``env_file: [.env]`` (as in compose)."""
    return [value] if isinstance(value, str) else value


def optional_entries(value: Any) -> Any:
    """``[.env, ?.env.local]`` as written: in a YAML flow list, ``?x`` reads as the mapping
    ``{x: null}`` (``?`` is YAML's key indicator there), which means the entry ``?x``."""
    value = one_or_many(value)
    if not isinstance(value, list):
        return value
    return [
        f"?{next(iter(item))}"
        if isinstance(item, dict) and len(item) == 1 and next(iter(item.values())) is None
        and isinstance(next(iter(item)), str)
        else item
        for item in value
    ]


def nonempty_argv(value: list[str]) -> list[str]:
    if not value or not value[0]:
        raise ValueError("command is empty")
    return value
