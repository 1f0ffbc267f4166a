"""A cache of compiled plans: ``up`` of an unchanged config skips validation.

Why: validating a config (YAML, interpolation, pydantic, the checks) costs ~200 ms, most of
it importing pydantic and building the schema, and ``up`` of the same stack happens over and
over (a developer's loop, a restart at boot). A compiled plan depends only on: the config
file's bytes; the values of the variables it references (``${NAME}``, defaults included)
and the ``--set`` values; the interpreter and the file's location (``MPSV3_PYTHON``,
``MPSV3_CONFIG_DIR``); the ``env_file`` files it read; and mpsv3's own code. All of that is
the key; a plan is reused only when every part is unchanged, else the config is validated
again and the entry replaced. Entries live in the per-user runtime dir (private), one per
config file and ``--set`` combination.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from mpsv3 import __version__
from mpsv3.config.bounds import TooLarge, read_bounded
from mpsv3.plan import StackPlan, from_json, to_json
from mpsv3.platform.dirs import read_private_file, runtime_dir, write_private_file

_REFERENCE = re.compile(rb"\$\{([A-Za-z_][A-Za-z0-9_]*)")
#: The code a plan is compiled by: a change to any of these makes every entry stale.
_CODE = ("plan.py", "planner.py", "config")
FOLDER = "plans"


def _code_stamp() -> str:
    """mpsv3's version and the mtimes of the code that validates and compiles a config."""
    root = Path(__file__).parent
    stamps = [__version__, sys.version]
    for name in _CODE:
        path = root / name
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        stamps += [f"{f.name}:{f.stat().st_mtime_ns}" for f in files if f.exists()]
    return "|".join(stamps)


def _file_stat(path: str) -> list[int]:
    try:
        info = os.stat(path)
    except OSError:
        return [0, 0]
    return [info.st_size, info.st_mtime_ns]


def _key(config: Path, text: bytes, overrides: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, object]:
    names = sorted({match.decode() for match in _REFERENCE.findall(text)})
    return {
        "config": str(config),
        "sha256": hashlib.sha256(text).hexdigest(),
        "variables": {name: environ.get(name) for name in names},
        "overrides": dict(sorted(overrides.items())),
        "python": sys.executable,
        "code": _code_stamp(),
    }


def _entry_path(config: Path, overrides: Mapping[str, str]) -> Path:
    name = hashlib.sha256(json.dumps([str(config), sorted(overrides.items())]).encode()).hexdigest()[:24]
    return runtime_dir() / FOLDER / f"{name}.json"


def lookup(
    config: Path | str, overrides: Mapping[str, str], environ: Mapping[str, str] = os.environ
) -> tuple[StackPlan, list[str]] | None:
    """The cached plan of ``config`` and its warnings, when nothing it depends on changed."""
    absolute = Path(os.path.abspath(config))
    try:
        text = read_bounded(absolute)  # `-c /dev/zero`: the loader refuses it, with its message
    except (OSError, TooLarge):
        return None
    data = read_private_file(_entry_path(absolute, overrides), limit=32 << 20)
    if data is None:
        return None
    try:
        entry = json.loads(data)
        if entry.get("key") != _key(absolute, text, overrides, environ):
            return None
        if any(_file_stat(p) != stat for p, stat in entry.get("files", {}).items()):
            return None
        return from_json(json.dumps(entry["plan"])), [str(w) for w in entry.get("warnings", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def store(
    config: Path | str,
    overrides: Mapping[str, str],
    plan: StackPlan,
    *,
    env_files: list[str],
    warnings: list[str],
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Remember ``plan`` for ``config`` (best effort: a failure only means no cache)."""
    absolute = Path(os.path.abspath(config))
    try:
        text = read_bounded(absolute)
        if plan.digest and hashlib.sha256(text).hexdigest() != plan.digest:
            return  # the file changed while it was loaded: do not pin a mismatch
        entry = {
            "key": _key(absolute, text, overrides, environ),
            "files": {path: _file_stat(path) for path in env_files},
            "warnings": warnings,
            "plan": json.loads(to_json(plan)),
        }
        folder = runtime_dir() / FOLDER
        folder.mkdir(mode=0o700, exist_ok=True)
        write_private_file(_entry_path(absolute, overrides), json.dumps(entry).encode())
    except (OSError, ValueError, TooLarge):
        return
