"""Finding processes with psutil: our marked ones, leftovers of a killed run, port holders.

Why here: recognising "ours" is the safety rule of the whole supervisor (never kill a
stranger), so it lives in one place, shared by every platform. Every function here is a
read-only scan; none sends a signal.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any, Protocol

import psutil

from mpsv3.platform.base import (
    CREATE_TIME_TOLERANCE_S,
    INSTANCE_MARKER,
    SERVICE_MARKER,
    ProcessRecord,
)

#: Longest command line shown in messages such as "held by PID 6924 (python x.py)".
DESCRIBE_MAX = 80


def describe_process(pid: int) -> str:
    """A short command line for messages: ``python websocket_server.py``.

    The program is shown by its base name; falls back to the process name, then to
    ``unknown`` when the process cannot be read.
    """
    try:
        proc = psutil.Process(pid)
        argv = proc.cmdline()
        text = " ".join([PurePath(argv[0]).name, *argv[1:]]) if argv else proc.name()
    except psutil.Error:
        return "unknown"
    if len(text) > DESCRIBE_MAX:
        text = text[: DESCRIBE_MAX - 3] + "..."
    return text or "unknown"


def self_and_ancestors() -> set[int]:
    """This process and every ancestor: never a target, whatever their environment says."""
    pids = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        pids.update(parent.pid for parent in psutil.Process().parents())
    return pids


def is_alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; it only waits to be reaped)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def markers_of(proc: psutil.Process) -> tuple[str | None, str | None]:
    """``(MPSV3_INSTANCE, MPSV3_SERVICE)`` from the process's environment, if readable."""
    try:
        env = proc.environ()
    except psutil.Error:
        return None, None
    return env.get(INSTANCE_MARKER), env.get(SERVICE_MARKER)


def iter_marked(instance: str, service: str | None = None) -> Iterator[psutil.Process]:
    """Live processes carrying this instance's marker (and this service's, if given).

    Excludes this process and its ancestors.
    """
    excluded = self_and_ancestors()
    for proc in _candidates(instance):
        if proc.pid in excluded or not is_alive(proc):
            continue
        got_instance, got_service = markers_of(proc)
        if got_instance != instance:
            continue
        if service is not None and got_service != service:
            continue
        yield proc


def marked_subset(pids: list[int], instance: str) -> list[int]:
    """Those of ``pids`` whose process carries ``instance``'s marker (never us or an ancestor)."""
    excluded = self_and_ancestors()
    found = []
    for pid in pids:
        if pid in excluded or pid <= 0:
            continue
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            continue
        if markers_of(proc)[0] == instance:
            found.append(pid)
    return found


def _candidates(instance: str) -> Iterator[psutil.Process]:
    """Processes that may carry ``instance``'s marker.

    Where ``/proc`` exists, the raw environment bytes are searched first, so that only
    the few matching processes become psutil objects (a busy machine has thousands).
    """
    if not os.path.isdir("/proc/self"):
        yield from psutil.process_iter()
        return
    needle = f"\0{INSTANCE_MARKER}={instance}\0".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                data = b"\0" + handle.read()
        except OSError:
            continue
        if needle in data:
            with contextlib.suppress(psutil.Error):
                yield psutil.Process(int(name))


def _recorded_leader_is_ours(proc: psutil.Process, instance: str) -> bool:
    """A recorded leader (pid and start time already match) that is ours.

    Its marker must say so; but some programs overwrite their environment block to set
    their process title (redis-server does), leaving ``/proc/<pid>/environ`` empty. Such a
    process, recorded by our previous run with this exact start time, is still ours: a
    stranger would need the same pid *and* the same start time.
    """
    try:
        environ = proc.environ()
    except psutil.Error:
        return False
    return environ.get(INSTANCE_MARKER) == instance or not environ


def _matches_record(proc: psutil.Process, record: ProcessRecord) -> bool:
    try:
        return abs(proc.create_time() - record.create_time) <= CREATE_TIME_TOLERANCE_S
    except psutil.Error:
        return False


def find_leftovers(instance: str, records: list[ProcessRecord]) -> list[psutil.Process]:
    """Processes left by an earlier run of ``instance``; never a stranger's process.

    A recorded leader counts only if a process with its pid exists, started at the
    recorded time (so the pid was not reused) and carries ``MPSV3_INSTANCE == instance``.
    A marked process that nobody of ours parents (its parent is gone, init, or another
    subreaper, which may well be an ancestor of ours) counts too: that is how
    double-forked survivors are found. The caller and its ancestors are never returned;
    the caller's own children are its live services, not leftovers.

    Args:
        instance: the instance name (the lease name).
        records: the leaders of the previous run, from its runtime state file.

    Returns:
        The leftovers, each once, records first.
    """
    excluded = self_and_ancestors()
    found: dict[int, psutil.Process] = {}
    for record in records:
        if record.pid in excluded:
            continue
        try:
            proc = psutil.Process(record.pid)
        except psutil.Error:
            continue
        if is_alive(proc) and _matches_record(proc, record) and _recorded_leader_is_ours(proc, instance):
            found[proc.pid] = proc
    marked = {proc.pid: proc for proc in iter_marked(instance)}
    for pid, proc in marked.items():
        if pid in found:
            continue
        try:
            ppid = proc.ppid()
        except psutil.Error:
            continue
        if ppid in marked or ppid == os.getpid():
            continue
        found[pid] = proc
    return list(found.values())


def port_holders(port: int) -> list[tuple[int, str]]:
    """``(pid, command line)`` of every process listening on TCP ``port``, any address.

    A listener whose owner cannot be seen (another user's process) is reported with pid 0
    and ``unknown``, so a caller never mistakes a held port for a free one.
    """
    holders: dict[int, str] = {}
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        # macOS: the system-wide table needs root; our own processes can still be read.
        for proc in psutil.process_iter(["pid"]):
            try:
                if any(_listens_on(conn, port) for conn in proc.net_connections(kind="tcp")):
                    holders[proc.pid] = describe_process(proc.pid)
            except psutil.Error:
                continue
        return sorted(holders.items())
    for sconn in connections:
        if _listens_on(sconn, port):
            pid = sconn.pid or 0
            holders[pid] = describe_process(pid) if pid else "unknown"
    return sorted(holders.items())


class _Connection(Protocol):
    """The fields of psutil's system-wide and per-process connection tuples used here."""

    @property
    def status(self) -> str: ...

    @property
    def laddr(self) -> Any: ...


def _listens_on(conn: _Connection, port: int) -> bool:
    return conn.status == psutil.CONN_LISTEN and bool(conn.laddr) and conn.laddr.port == port
