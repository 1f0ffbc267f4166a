"""The index of running instances: which supervisor runs which config, found without parsing it.

Why: a client command must find the supervisor of ``-c services.yaml`` fast (no YAML, no
validation: its start-up time is the product) and even when the file on disk no longer
validates (a typo saved mid-edit). Each supervisor writes one small JSON file per instance in
the per-user runtime dir (``<runtime>/instances/<name>.json``, private), with the config's
path, the ``--set`` values it was started with, its state dir, its services, and the config
file's size and mtime at load (so a client can say the file changed since). The supervisor
removes it at shutdown; one left by a killed supervisor leads to a socket nobody answers
(exit 3), never to a wrong process.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpsv3.control.protocol import InstanceRef
from mpsv3.platform.dirs import read_private_file, runtime_dir, write_private_file

INDEX = "instances"


@dataclass(frozen=True)
class IndexedInstance:
    """One running instance as its supervisor recorded it."""

    ref: InstanceRef
    overrides: dict[str, str]
    config_stat: tuple[int, int]  # (size, mtime_ns) of the file when it was loaded

    def file_changed(self) -> bool:
        """The config file differs from what the supervisor runs (size or mtime)."""
        try:
            info = self.ref.path.stat()
        except OSError:
            return True
        return (info.st_size, info.st_mtime_ns) != self.config_stat


def _file(name: str) -> Path:
    return runtime_dir() / INDEX / f"{name}.json"


def config_stat(path: Path | str) -> tuple[int, int]:
    try:
        info = os.stat(path)
    except OSError:
        return (0, 0)
    return (info.st_size, info.st_mtime_ns)


def record(name: str, config: str, state_dir: str, service_ids: list[str], overrides: dict[str, str],
           loaded: tuple[int, int]) -> None:
    """Write (or replace) the entry of instance ``name`` (the supervisor, at start and reload)."""
    folder = runtime_dir() / INDEX
    folder.mkdir(mode=0o700, exist_ok=True)
    entry = {"name": name, "config": config, "state_dir": state_dir, "services": service_ids,
             "overrides": overrides, "config_stat": list(loaded), "pid": os.getpid()}
    write_private_file(_file(name), json.dumps(entry).encode())


def forget(name: str) -> None:
    """Remove the entry of ``name`` if this process wrote it (a successor's stays)."""
    entry = _read(_file(name))
    if entry is not None and entry.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            _file(name).unlink()


def find(config: Path | str, overrides: dict[str, str]) -> IndexedInstance | None:
    """The running instance of ``config``: the one started with these ``--set`` values.

    With no values given, the one started without any, or the only one. None when the index
    knows no instance of that file (the caller then reads the file itself).
    """
    absolute = os.path.abspath(config)
    folder = runtime_dir() / INDEX
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    entries = [e for e in (_read(folder / n) for n in names if n.endswith(".json")) if e and e.get("config") == absolute]
    chosen = [e for e in entries if all(e.get("overrides", {}).get(k) == v for k, v in overrides.items())]
    if not overrides and len(chosen) > 1:
        chosen = [e for e in chosen if not e.get("overrides")] or chosen
    if len(chosen) != 1:
        return None
    e = chosen[0]
    stat = e.get("config_stat") or [0, 0]
    ref = InstanceRef(str(e["name"]), Path(e["state_dir"]), Path(absolute), tuple(e.get("services", ())))
    return IndexedInstance(ref, dict(e.get("overrides", {})), (int(stat[0]), int(stat[1])))


def _read(path: Path) -> dict[str, Any] | None:
    data = read_private_file(path, limit=1 << 20)
    if data is None:
        return None
    try:
        entry = json.loads(data)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and isinstance(entry.get("name"), str) else None
