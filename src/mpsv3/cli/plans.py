"""The plan ``up`` runs: from the cache when nothing changed, else validated and compiled.

Why here: ``up`` is the only command that needs a compiled plan; ``check`` always validates
(its job), and the client commands need no plan at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mpsv3 import plan_cache
from mpsv3.config.interpolate import parse_overrides
from mpsv3.plan import StackPlan


def load_plan(config_path: Path, assignments: Sequence[str]) -> tuple[StackPlan, list[str]]:
    """The plan of ``config_path`` with ``--set`` values, and the config's warnings.

    Raises:
        ConfigInvalid: the config is invalid (every problem, each with its line).
        MpsvError: a bad ``--set`` (exit 2).
    """
    overrides = parse_overrides(assignments)
    cached = plan_cache.lookup(config_path, overrides)
    if cached is not None:
        return cached
    from mpsv3.config.loader import load_config
    from mpsv3.planner import compile_plan

    config = load_config(config_path, overrides)
    plan = compile_plan(config, overrides)
    warnings = [str(w) for w in config.warnings]
    env_files = sorted({f.lstrip("?") for item in config.runnable() for f in item.spec.env_file})
    plan_cache.store(config_path, overrides, plan, env_files=env_files, warnings=warnings)
    return plan, warnings
