"""The contract between the supervisor and the OS: spawn, signal, wait, lease.

Why here: this package is the only place in mpsv3 that knows which OS it runs on. It
picks ``windows.py`` on Windows and ``posix.py`` (with ``linux.py`` extras on Linux)
elsewhere, and re-exports one API, so the runner and supervisor stay platform-free.
"""

from __future__ import annotations

import sys

from mpsv3.platform.base import (
    ExitStatus,
    ProcessRecord,
    ProcessTree,
    SpawnError,
    process_markers,
    runtime_dir,
    terminate,
)
from mpsv3.platform.scan import describe_process, find_leftovers, port_holders

if sys.platform == "win32":
    from mpsv3.platform.windows import (
        SingletonLease,
        prepare_supervisor,
        reclaim,
        spawn,
    )
else:
    from mpsv3.platform.posix import (
        SingletonLease,
        prepare_supervisor,
        reclaim,
        spawn,
    )

__all__ = [
    "ExitStatus",
    "ProcessRecord",
    "ProcessTree",
    "SingletonLease",
    "SpawnError",
    "describe_process",
    "find_leftovers",
    "port_holders",
    "prepare_supervisor",
    "process_markers",
    "reclaim",
    "runtime_dir",
    "spawn",
    "terminate",
]
