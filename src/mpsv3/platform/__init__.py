"""The contract between the supervisor and the OS: spawn, signal, wait, lease, local IPC.

Why here: this package is the only place in mpsv3 that knows which OS it runs on. It
picks ``windows.py`` and ``local_ipc_windows.py`` on Windows, ``posix.py`` (with
``linux.py`` extras on Linux) and ``local_ipc.py`` elsewhere, and re-exports one API, so
the runner, the supervisor and the control plane stay platform-free.
"""

from __future__ import annotations

import sys

from mpsv3.platform.base import (
    ExitStatus,
    ProcessRecord,
    ProcessTree,
    SpawnError,
    process_markers,
    terminate,
)
from mpsv3.platform.dirs import PrivatePathError, ensure_private_dir, open_private_file, runtime_dir
from mpsv3.platform.scan import describe_process, find_leftovers, marked_subset, port_holders

if sys.platform == "win32":
    from mpsv3.platform.local_ipc_windows import (
        POINTER_NAME,
        LocalServer,
        client_endpoint,
        current_uid,
        open_local_connection,
        peer_uid,
        server_endpoint,
        start_local_server,
    )
    from mpsv3.platform.windows import (
        prepare_supervisor,
        reclaim,
        spawn,
    )
    from mpsv3.platform.windows_lease import SingletonLease
else:
    from mpsv3.platform.local_ipc import (
        POINTER_NAME,
        LocalServer,
        client_endpoint,
        current_uid,
        open_local_connection,
        peer_uid,
        server_endpoint,
        start_local_server,
    )
    from mpsv3.platform.posix import (
        prepare_supervisor,
        reclaim,
        spawn,
    )
    from mpsv3.platform.posix_lease import SingletonLease

__all__ = [
    "POINTER_NAME",
    "ExitStatus",
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
    "find_leftovers",
    "marked_subset",
    "open_local_connection",
    "open_private_file",
    "peer_uid",
    "port_holders",
    "prepare_supervisor",
    "process_markers",
    "reclaim",
    "runtime_dir",
    "server_endpoint",
    "spawn",
    "start_local_server",
    "terminate",
]
