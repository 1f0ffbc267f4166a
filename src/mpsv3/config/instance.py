"""Which instance a config names, read without validating it (for the client commands).

Why: ``status``, ``stop`` and ``down`` must reach the running supervisor even while the file
on disk does not validate (a typo saved mid-edit, issue 15). They need only the instance name,
the state dir and the service ids, and this reads just those, with the loader's bounds: the
file's size, YAML by libyaml with its nesting limit, no alias expansion past the limit, and
no interpolation (a value written with ``${...}`` cannot be recovered, so None).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mpsv3.config.document import build
from mpsv3.config.loader import read_config
from mpsv3.config.resolve import default_name
from mpsv3.config.schema import INSTANCE_NAME, MAX_ID_LENGTH
from mpsv3.control.protocol import InstanceRef
from mpsv3.errors import ConfigInvalid


def locate_instance(path: Path | str) -> InstanceRef | None:
    """The instance ``path`` names when its name and state dir are plain, else None.

    Never raises for a bad file: a file that cannot be read or parsed, or whose ``name`` or
    ``state_dir`` is interpolated or malformed, gives None.
    """
    try:
        text = read_config(path)
    except ConfigInvalid:
        return None
    data = build(text, str(path)).data
    if not isinstance(data, dict):
        return None
    absolute = Path(os.path.abspath(path))
    name = data.get("name", default_name(absolute.parent))
    state_dir = data.get("state_dir", ".mpsv3")
    if not _plain_name(name) or not isinstance(state_dir, str) or "$" in state_dir:
        return None
    if "\0" in state_dir:
        return None
    return InstanceRef(
        name,
        Path(os.path.normpath(absolute.parent / state_dir)),
        absolute,
        _service_ids(data.get("services")),
    )


def _plain_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and len(name) <= MAX_ID_LENGTH
        and INSTANCE_NAME.fullmatch(name) is not None
    )


def _service_ids(services: Any) -> tuple[str, ...]:
    if not isinstance(services, list):
        return ()
    return tuple(
        item["id"] for item in services if isinstance(item, dict) and isinstance(item.get("id"), str)
    )
