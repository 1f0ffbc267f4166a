"""What the exporter tests share (test_export_compose.py, _kubernetes.py, _systemd.py): a
config built from plain data, and the warnings every target gives for what it cannot map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpsv3.config.schema import Config, StackSpec

#: (case id, keys of service "a" beside its ``cmd``, the start of the one warning they give)
#: for the settings no target can map; ``{target}`` is the target's name in the messages.
UNMAPPED: list[tuple[str, dict[str, Any], str]] = [
    ("watch", {"watch": {"paths": ["*.py"]}}, 'service "a": watch has no equivalent in {target}; dropped'),
    ("log readiness", {"readiness": {"log": {"pattern": "up"}}}, 'service "a": log readiness has no equivalent in {target}'),
    ("notify readiness", {"readiness": {"notify": True}}, 'service "a": notify readiness has no equivalent in {target}'),
    ("cwd", {"cwd": "/srv/app"}, 'service "a": cwd /srv/app is outside the project folder'),
]  # fmt: skip


def make_config(tmp_path: Path, services: list[dict[str, Any]], **top: Any) -> Config:
    """The config of stack ``demo`` (``top`` its top-level keys) with these ``services``."""
    data = {"version": 1, "name": "demo", **top, "services": services}
    return Config(path=tmp_path / "services.yaml", stack=StackSpec.model_validate(data))


def unmapped(target: str, *cases: str) -> list[tuple[str, dict[str, Any], str]]:
    """The :data:`UNMAPPED` cases named ``cases``, with ``target`` in their warnings."""
    chosen = [case for case in UNMAPPED if case[0] in cases]
    assert len(chosen) == len(cases), f"unknown case among {cases}"
    return [(name, keys, line.format(target=target)) for name, keys, line in chosen]


def warning_params(table: list[tuple[str, dict[str, Any], str]]) -> list[Any]:
    """A warnings table as ``(extra, line)`` parameters, each named by its case id."""
    return [pytest.param(extra, line, id=name) for name, extra, line in table]


def warned_once(warnings: list[str], line: str) -> bool:
    """Exactly one of ``warnings`` starts with ``line``."""
    return sum(w.startswith(line) for w in warnings) == 1
