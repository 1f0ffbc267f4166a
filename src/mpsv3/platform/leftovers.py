"""Leftovers of an earlier run of this instance: found four ways, stopped the services' way.

Why: when the supervisor and its keeper die together (``kill -9`` of the whole process group,
a power cut of the session), the services live on, and the next ``up`` must end them before
anything starts, or they keep the ports. Each leftover is found by the strongest evidence:

- ``cgroup``: a member of a cgroup recorded by the earlier run (Linux, when delegated):
  whatever the process did, it is ours;
- ``record``: a recorded leader, same pid and start time, with our marker or an empty
  environment (redis-server and nginx rewrite theirs to set a process title);
- ``group``: a live member of a recorded process group or session, started after the recorded
  leader, even without a marker (nginx workers rewrite their environment), when the group is
  provably ours: its leader is dead (the kernel keeps a group number in use while any member
  lives) or is the recorded leader itself;
- ``marker``: a process carrying this instance's ``MPSV3_INSTANCE`` that nobody of ours parents.

They are stopped with the one stop routine (``base.terminate``): each service's recorded stop
signal and SIGCONT, its grace, then SIGKILL. The caller and its ancestors are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mpsv3._lazy import lazy_module

if TYPE_CHECKING:
    import psutil
else:
    psutil = lazy_module("psutil")

from mpsv3.platform.base import (
    CREATE_TIME_TOLERANCE_S,
    INSTANCE_MARKER,
    ExitStatus,
    ProcessRecord,
    terminate,
    wait_members_gone,
)
from mpsv3.platform.scan import is_alive, iter_marked, markers_of, self_and_ancestors

DEFAULT_STOP = ("SIGTERM", 10.0)


@dataclass(frozen=True)
class Leftover:
    """One process of an earlier run, how it was found, and how its service stops."""

    proc: psutil.Process
    service: str | None
    found_by: str
    stop_signal: str = DEFAULT_STOP[0]
    grace_s: float = DEFAULT_STOP[1]
    pgid: int | None = None
    cgroup: str | None = None

    @property
    def pid(self) -> int:
        return int(self.proc.pid)


def find_leftovers(instance: str, records: Iterable[ProcessRecord]) -> list[Leftover]:
    """Every live process of an earlier run of ``instance`` (see the module docstring)."""
    excluded = self_and_ancestors()
    found: dict[int, Leftover] = {}
    records = list(records)
    for record in records:
        for leftover in (*_in_cgroup(record), *_leader(record, instance), *_in_group(record, instance)):
            if leftover.pid not in excluded:
                found.setdefault(leftover.pid, leftover)
    by_service = {r.service: r for r in records}
    marked = {proc.pid: proc for proc in iter_marked(instance)}
    for proc in marked.values():
        if proc.pid in found or proc.pid in excluded or _parent(proc) in (marked.keys() | {os.getpid()}):
            continue
        service = markers_of(proc)[1]
        known = by_service.get(service or "")
        stop = (known.stop_signal, known.grace_s) if known is not None else DEFAULT_STOP
        found[proc.pid] = Leftover(proc, service, "marker", *stop)
    return list(found.values())


def _leftover(proc: psutil.Process, record: ProcessRecord, found_by: str) -> Leftover:
    return Leftover(proc, record.service, found_by, record.stop_signal, record.grace_s, record.pgid, record.cgroup)


def _in_cgroup(record: ProcessRecord) -> list[Leftover]:
    if sys.platform != "linux" or not record.cgroup:
        return []
    from mpsv3.platform import cgroups

    found = []
    for pid in cgroups.members(Path(record.cgroup)):
        with contextlib.suppress(psutil.Error):
            found.append(_leftover(psutil.Process(pid), record, "cgroup"))
    return found


def _leader(record: ProcessRecord, instance: str) -> list[Leftover]:
    try:
        proc = psutil.Process(record.pid)
    except psutil.Error:
        return []
    if is_alive(proc) and _started_at(proc, record.create_time) and _carries_ours(proc, instance):
        return [_leftover(proc, record, "record")]
    return []


def _in_group(record: ProcessRecord, instance: str) -> list[Leftover]:
    """Live members of the recorded group or session, when the group is provably ours.

    It is when its leader is dead (the kernel keeps a group number in use while any member
    lives, so the members are the recorded leader's), or alive and ours by ``_leader``'s
    rule. A leader alive with another start time, or without our marker, means the number
    is not ours: nothing in it is touched.
    """
    pgid = record.pgid
    if pgid is None or sys.platform == "win32":
        return []
    with contextlib.suppress(psutil.Error):
        leader = psutil.Process(pgid)
        if is_alive(leader) and not (_started_at(leader, record.create_time) and _carries_ours(leader, instance)):
            return []
    found = []
    for proc in psutil.process_iter(["pid", "create_time"]):
        with contextlib.suppress(psutil.Error, OSError):
            member = os.getpgid(proc.pid) == pgid or os.getsid(proc.pid) == pgid
            later = proc.info["create_time"] >= record.create_time - CREATE_TIME_TOLERANCE_S
            if member and later and is_alive(proc):
                found.append(_leftover(proc, record, "group"))
    return found


def _started_at(proc: psutil.Process, create_time: float) -> bool:
    try:
        return abs(proc.create_time() - create_time) <= CREATE_TIME_TOLERANCE_S
    except psutil.Error:
        return False


def _carries_ours(proc: psutil.Process, instance: str) -> bool:
    """Our marker, or an empty environment (rewritten for a process title)."""
    try:
        environ = proc.environ()
    except psutil.Error:
        return False
    return environ.get(INSTANCE_MARKER) == instance or not environ


def _parent(proc: psutil.Process) -> int | None:
    """The parent pid; a marked process whose parent is marked goes with its parent."""
    try:
        return int(proc.ppid())
    except psutil.Error:
        return None


def stray_descendants() -> list[Leftover]:
    """Our own descendants still alive (after every service stopped: a stray of ours)."""
    found = []
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process().children(recursive=True):
            if is_alive(proc):
                found.append(Leftover(proc, None, "descendant", "SIGTERM", 1.0))
    return found


# ----------------------------------------------------------------------------- stopping


class LeftoverTree:
    """A :class:`ProcessTree` over leftovers of one service, so the one stop routine ends them.

    Members are the processes found (psutil checks each one's start time before signalling
    it, so a pid reused meanwhile is not hit), what they started since, and the recorded
    cgroup's members.
    """

    def __init__(self, leftovers: list[Leftover]) -> None:
        self._procs = {item.pid: item.proc for item in leftovers}
        self._cgroups = {item.cgroup for item in leftovers if item.cgroup}
        self.pid = leftovers[0].pid
        self.pgid = leftovers[0].pgid
        self.create_time = 0.0
        self.output = asyncio.StreamReader()
        self.output.feed_eof()
        #: Every pid that was sent a signal.
        self.signalled: set[int] = set()

    def _live(self) -> list[psutil.Process]:
        for proc in list(self._procs.values()):
            with contextlib.suppress(psutil.Error):
                for child in proc.children(recursive=True):
                    self._procs.setdefault(child.pid, child)
        if sys.platform == "linux":
            from mpsv3.platform import cgroups

            for cgroup in self._cgroups:
                for pid in cgroups.members(Path(cgroup)):
                    with contextlib.suppress(psutil.Error):
                        self._procs.setdefault(pid, psutil.Process(pid))
        excluded = self_and_ancestors()
        return [p for p in self._procs.values() if p.pid not in excluded and is_alive(p)]

    def alive_members(self) -> list[int]:
        return sorted(p.pid for p in self._live())

    def send_signal(self, signame: str) -> None:
        signum = getattr(signal, signame, signal.SIGTERM)
        for proc in self._live():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signum)
                self.signalled.add(proc.pid)

    def signal_leader(self, signame: str) -> None:
        self.send_signal(signame)

    def resume(self) -> None:
        if sys.platform != "win32":
            self.send_signal("SIGCONT")

    def kill(self) -> None:
        if sys.platform == "linux":
            from mpsv3.platform import cgroups

            for cgroup in self._cgroups:
                cgroups.kill(Path(cgroup))
        for proc in self._live():
            with contextlib.suppress(psutil.Error):
                proc.kill()
                self.signalled.add(proc.pid)

    async def wait(self) -> ExitStatus:
        while self._live():
            await self.wait_gone(3600.0)
        return ExitStatus(code=None, signal=None)

    async def wait_gone(self, timeout: float) -> bool:
        return await wait_members_gone(self, timeout)


async def reclaim(leftovers: list[Leftover], grace_s: float | None = None) -> list[int]:
    """Stop every leftover, service by service in parallel, with its own signal and grace.

    Args:
        leftovers: what :func:`find_leftovers` found.
        grace_s: overrides every service's grace (tests).

    Returns:
        Every pid that was signalled (what the leftovers had started included), sorted.
    """
    by_service: dict[str | None, list[Leftover]] = {}
    for item in leftovers:
        by_service.setdefault(item.service, []).append(item)
    trees = [LeftoverTree(items) for items in by_service.values()]
    await asyncio.gather(*(
        terminate(tree, items[0].stop_signal, items[0].grace_s if grace_s is None else grace_s)
        for tree, items in zip(trees, by_service.values(), strict=True)
    ))
    return sorted(set().union(*(tree.signalled for tree in trees)))
