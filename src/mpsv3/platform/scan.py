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
from typing import TYPE_CHECKING, Any, Protocol

from mpsv3._lazy import lazy_module

if TYPE_CHECKING:
    import psutil
else:
    psutil = lazy_module("psutil")

from mpsv3.platform.base import (
    INSTANCE_MARKER,
    SERVICE_MARKER,
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
    if os.path.isdir("/proc/self"):  # Linux: without psutil
        pid = os.getppid()
        while pid > 0 and pid not in pids:
            pids.add(pid)
            try:
                with open(f"/proc/{pid}/stat", "rb") as handle:
                    pid = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                break
        return pids
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
