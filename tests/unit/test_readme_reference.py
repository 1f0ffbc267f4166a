"""The README's config reference names every key of the schema, with the schema's default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mpsv3.config.schema import PROBE_KINDS, ServiceSpec, StackSpec

README = (Path(__file__).parents[2] / "README.md").read_text()
PROBE_FIELDS = set(PROBE_KINDS) | {"timeout_s", "period_ms", "attempt_timeout_s", "interval_s", "failure_threshold"}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def keys(model: type[BaseModel], prefix: str) -> list[tuple[str, Any]]:
    found = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if name in ("readiness", "liveness"):
            found.append((key, None))
            continue
        nested = _model_of(field.annotation)
        if nested is not None and name not in ("services",):
            found += keys(nested, f"{key}.")
        elif name != "services":
            found.append((key, "required" if field.is_required() else field.default))
    return found


def reference_rows() -> dict[str, str]:
    rows = {}
    for match in re.finditer(r"^\| `([^`]+)` \| ([^|]+) \|", README, re.MULTILINE):
        rows[match.group(1)] = match.group(2).strip()
    return rows


def test_every_schema_key_is_in_the_reference_table() -> None:
    rows = reference_rows()
    expected = keys(StackSpec, "") + keys(ServiceSpec, "services[].")
    missing = [key for key, _ in expected if key not in rows]
    assert not missing, f"README config reference lacks: {missing}"


def test_defaults_in_the_table_match_the_schema() -> None:
    rows = reference_rows()
    for key, default in keys(StackSpec, "") + keys(ServiceSpec, "services[]."):
        if default is None or key not in rows or isinstance(default, (list, dict)):
            continue
        shown = rows[key].strip("`")
        if default == "required":
            # a key required inside an optional section reads "off" or "required in ..."
            assert shown == "off" or shown.startswith("required"), key
        elif isinstance(default, bool):
            assert shown == str(default).lower(), key
        elif isinstance(default, (int, float)):
            assert float(shown) == float(default), key
        else:
            assert shown == str(default), key


def test_every_probe_kind_is_described() -> None:
    for kind in PROBE_KINDS:
        assert f"`{kind}" in README, kind
