"""How this supervisor keeps every process of its services: the mechanism, said plainly.

Why one object: "nothing of a service outlives mpsv3" rests on different means per platform
(a cgroup per service and a keeper on Linux, a Job Object on Windows, process groups and a
parent-death signal elsewhere); the supervisor asks this object for a service's cgroup and
tells the operator (``status --json``: ``supervisor.containment``) which means are in force.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Set by the keeper in the supervisor's environment: the keeper's PID.
KEEPER_ENV = "MPSV3_KEEPER_PID"
#: ``MPSV3_CGROUPS=0``: do not use cgroups even where they are available (tests, or a host
#: whose cgroup tree another manager owns).
CGROUPS_ENV = "MPSV3_CGROUPS"


class Containment:
    """The means in force for one instance (see the module docstring). Owned by the supervisor."""

    def __init__(self, instance: str) -> None:
        self._cgroups = None
        if sys.platform == "linux" and os.environ.get(CGROUPS_ENV, "1") != "0":
            from mpsv3.platform.cgroups import InstanceCgroups

            self._cgroups = InstanceCgroups(instance)
        self.keeper_pid = keeper_pid()

    @property
    def mechanisms(self) -> list[str]:
        """``cgroup``, ``keeper``, ``subreaper``, ``pdeathsig``, ``job`` or ``process-group``."""
        if sys.platform == "win32":
            return ["job"]
        found = []
        if self._cgroups is not None and self._cgroups.available:
            found.append("cgroup")
        if self.keeper_pid is not None:
            found.append("keeper")
        if sys.platform == "linux":
            found += ["subreaper", "pdeathsig"]
        return found or ["process-group"]

    @property
    def base(self) -> Path | None:
        """The instance's cgroup (its services' cgroups are below it), if any."""
        return self._cgroups.base if self._cgroups is not None else None

    def cgroup(self, service_id: str) -> Path | None:
        """The cgroup a service is born in, or None without cgroups."""
        return self._cgroups.service(service_id) if self._cgroups is not None else None

    def close(self) -> None:
        """After a clean shutdown: remove the instance's empty cgroups."""
        if self._cgroups is not None:
            self._cgroups.close()


def keeper_pid() -> int | None:
    """The keeper's PID when this process runs under one (and it is our parent)."""
    value = os.environ.get(KEEPER_ENV, "")
    if not value.isdigit() or sys.platform == "win32":
        return None
    pid = int(value)
    return pid if os.getppid() == pid else None
