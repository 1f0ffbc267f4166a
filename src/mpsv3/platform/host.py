"""What this OS offers a stack that runs unattended: a detached start, a boot-time manager.

Why here: ``up -d`` and ``service install`` are the CLI's, but how a process outlives its
terminal (a new session; on Windows a detached process in a group of its own) and which
service manager starts things at boot (systemd, launchd, the Task Scheduler) depend on the
OS, and the OS is known only inside ``platform/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

#: The service managers ``mpsv3 service install`` writes for.
ServiceManager = Literal["systemd", "launchd", "windows-task"]


def detached_popen_options() -> dict[str, Any]:
    """``subprocess.Popen`` keywords that start a process no terminal hang-up reaches."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def service_manager() -> ServiceManager:
    """The service manager of this OS (systemd on Linux and other Unix-likes)."""
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform == "win32":
        return "windows-task"
    return "systemd"


def service_manager_running() -> bool:
    """Whether this OS's service manager runs here (systemd: it is init, ``sd_booted(3)``).

    launchd and the Task Scheduler always run where their OS does; systemd may not (a
    container, a machine with another init), and then its commands would fail.
    """
    if service_manager() != "systemd":
        return True
    return sys.platform == "linux" and Path("/run/systemd/system").is_dir()
