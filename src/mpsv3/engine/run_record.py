"""The runtime state file: which processes this supervisor started, for the next one.

Why a file: a supervisor killed with SIGKILL cannot clean up; the next ``up`` of the same
instance reads what the previous one recorded (pid, pgid, start time per service) and reclaims
leftovers that still match. Writes are coalesced to one per loop turn and atomic (write then
rename), so a crash never leaves half a file. Owned by the supervisor.

The file exists from before the first spawn until a clean shutdown removes it, so its absence
means the previous run ended cleanly (or there was none): then the next ``up`` need not scan
every process on the machine for markers before it starts anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpsv3.platform import ProcessRecord
from mpsv3.platform.dirs import write_private_file

if TYPE_CHECKING:
    from mpsv3.engine.runner import ServiceRunner


WRITE_DELAY_S = 0.05


class RunRecord:
    """The record of this run's process trees in ``run/state.json`` (see the module docstring)."""

    def __init__(self, path: Path, instance: str) -> None:
        self.path = path
        self.instance = instance
        self._scheduled = False
        self._runners: Mapping[str, ServiceRunner] = {}
        #: The instance's cgroup: the keeper ends everything below it if we die.
        self.cgroup_base: str | None = None

    def load_previous(self) -> list[ProcessRecord] | None:
        """Records left by a previous run; None when it ended cleanly (no file at all).

        An unreadable or foreign file gives an empty list: the previous run did not end
        cleanly, but its processes are known only by their markers.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError:
            return []
        try:
            data = json.loads(text)
            return [
                ProcessRecord(
                    service=s, pid=int(r["pid"]), pgid=r.get("pgid"), create_time=float(r["create_time"]),
                    stop_signal=str(r.get("stop_signal", "SIGTERM")), grace_s=float(r.get("grace_s", 10.0)),
                    cgroup=r.get("cgroup") if isinstance(r.get("cgroup"), str) else None,
                )
                for s, r in data.get("services", {}).items()
                if data.get("instance") == self.instance
            ]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return []

    def begin(self) -> None:
        """Write the record now, before the first spawn: from here on an unclean end shows."""
        self._write()

    def mark_dirty(self, runners: Mapping[str, ServiceRunner]) -> None:
        """Schedule one write shortly, however many changes come before it.

        The write waits ``WRITE_DELAY_S`` so that it never sits between a crash and the
        respawn (a rename costs as much as a spawn here); a supervisor killed within that
        moment still takes its services' leaders with it (parent-death signal).
        """
        self._runners = runners
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(WRITE_DELAY_S, self._write)

    def _write(self) -> None:
        self._scheduled = False
        services: dict[str, Any] = {}
        for sid, runner in self._runners.items():
            tree = runner.tree
            if tree is not None:
                stop = runner.spec.stop
                cgroup = getattr(tree, "cgroup", None)
                services[sid] = {
                    "pid": tree.pid, "pgid": tree.pgid, "create_time": tree.create_time,
                    "stop_signal": stop.signal, "grace_s": stop.grace_s,
                    "cgroup": str(cgroup) if cgroup is not None else None,
                }
        payload = {
            "instance": self.instance, "supervisor_pid": os.getpid(), "services": services,
            "cgroups": [self.cgroup_base] if self.cgroup_base else [],
        }
        with contextlib.suppress(OSError):
            write_private_file(self.path, json.dumps(payload).encode())

    def clear(self) -> None:
        """After a clean shutdown nothing is left to reclaim."""
        with contextlib.suppress(OSError):
            self.path.unlink()
