"""The contract between the supervisor and the OS: spawn, signal, wait, lease, local IPC.

Why here: this package is the only place in mpsv3 that knows which OS it runs on. It
picks ``windows.py`` and ``local_ipc_windows.py`` on Windows, ``posix.py`` (with
``linux.py`` extras on Linux) and ``local_ipc.py`` elsewhere, and re-exports one API, so
the runner, the supervisor and the control plane stay platform-free.

Names are loaded on first use (PEP 562): a client command that only needs the socket's path
does not import the spawn machinery.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from pathlib import Path

    from mpsv3.platform.base import (
        ExitStatus,
        ProcessRecord,
        ProcessTree,
        SpawnError,
        process_markers,
        terminate,
    )
    from mpsv3.platform.containment import Containment
    from mpsv3.platform.dirs import (
        PrivatePathError,
        ensure_private_dir,
        open_private_file,
        runtime_dir,
    )
    from mpsv3.platform.leftovers import Leftover, find_leftovers, reclaim, stray_descendants
    from mpsv3.platform.scan import describe_process, marked_subset, port_holders

    if sys.platform == "win32":
        from mpsv3.platform.local_ipc_windows import (
            POINTER_NAME,
            LocalServer,
            client_endpoint,
            current_uid,
            exchange_blocking,
            open_local_connection,
            peer_uid,
            server_endpoint,
            start_local_server,
        )
        from mpsv3.platform.windows import prepare_supervisor, spawn, wait_pids_exit
        from mpsv3.platform.windows_lease import SingletonLease
    else:
        from mpsv3.platform.ipc_paths import (
            POINTER_NAME,
            client_endpoint,
            current_uid,
            exchange_blocking,
            server_endpoint,
        )
        from mpsv3.platform.local_ipc import (
            LocalServer,
            open_local_connection,
            peer_uid,
            start_local_server,
        )
        from mpsv3.platform.posix import prepare_supervisor, spawn, wait_pids_exit
        from mpsv3.platform.posix_lease import SingletonLease

_WINDOWS = sys.platform == "win32"
#: Where each name lives (the OS decides for the last groups).
_HOME: dict[str, str] = {
    **dict.fromkeys(
        ("ExitStatus", "ProcessRecord", "ProcessTree", "SpawnError", "process_markers", "terminate"), "base"
    ),
    "Containment": "containment",
    **dict.fromkeys(("PrivatePathError", "ensure_private_dir", "open_private_file", "runtime_dir"), "dirs"),
    **dict.fromkeys(("Leftover", "find_leftovers", "reclaim", "stray_descendants"), "leftovers"),
    **dict.fromkeys(("describe_process", "marked_subset", "port_holders"), "scan"),
    **dict.fromkeys(
        ("LocalServer", "open_local_connection", "peer_uid", "start_local_server"),
        "local_ipc_windows" if _WINDOWS else "local_ipc",
    ),
    **dict.fromkeys(
        ("POINTER_NAME", "client_endpoint", "current_uid", "server_endpoint", "exchange_blocking"),
        "local_ipc_windows" if _WINDOWS else "ipc_paths",
    ),
    **dict.fromkeys(("prepare_supervisor", "spawn", "wait_pids_exit"), "windows" if _WINDOWS else "posix"),
    "SingletonLease": "windows_lease" if _WINDOWS else "posix_lease",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'mpsv3.platform' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mpsv3.platform.{home}"), name)
    globals()[name] = value
    return value


def on_process_exit(loop: asyncio.AbstractEventLoop, pid: int, callback: Callable[[], None]) -> None:
    """Call ``callback`` on the loop when ``pid`` exits (Linux; a no-op elsewhere, no keeper there)."""
    if sys.platform == "linux":
        from mpsv3.platform import linux

        linux.on_process_exit(loop, pid, callback)


def run_kept(engine: list[str], plan: bytes, lease: SingletonLease, *, state_dir: Path, shown: list[str]) -> int:
    """Run the supervisor's process under a keeper (see ``keeper.py``); Linux only."""
    if sys.platform != "linux":
        raise RuntimeError("the keeper runs on Linux only (check keeper_supported())")
    from mpsv3.platform import keeper

    return keeper.run_kept(engine, plan, lease.fileno(), state_dir=str(state_dir), shown=shown)


def keeper_supported() -> bool:
    """Whether ``up`` runs its supervisor under a keeper here (Linux, with pidfds)."""
    return sys.platform == "linux" and hasattr(os, "pidfd_open")


__all__ = [
    "POINTER_NAME",
    "Containment",
    "ExitStatus",
    "Leftover",
    "LocalServer",
    "PrivatePathError",
    "ProcessRecord",
    "ProcessTree",
    "SingletonLease",
    "SpawnError",
    "client_endpoint",
    "current_uid",
    "describe_process",
    "ensure_private_dir",
    "exchange_blocking",
    "find_leftovers",
    "keeper_supported",
    "marked_subset",
    "on_process_exit",
    "open_local_connection",
    "open_private_file",
    "peer_uid",
    "port_holders",
    "prepare_supervisor",
    "process_markers",
    "reclaim",
    "run_kept",
    "runtime_dir",
    "server_endpoint",
    "spawn",
    "start_local_server",
    "stray_descendants",
    "terminate",
    "wait_pids_exit",
]
