"""Finding the benchmark's processes from outside, the same way for every supervisor.

Why from outside: each peer has its own status command with its own lag, so the benchmark never
asks a supervisor whether a child exists; it looks at ``/proc``. Every supervised child carries
``MPSV3_BENCH_SVC=<launch>/<service>`` in its environment (each adapter passes it through its
peer's own env setting), and every process the benchmark starts carries ``MPSV3_BENCH_RUN=<run>``
so that cleanup can find orphans. Linux only (``/proc``), like the peers' comparison itself.

A ``ProcessScanner`` is owned by one workload step and used from one thread.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

SVC_VAR = "MPSV3_BENCH_SVC"
RUN_VAR = "MPSV3_BENCH_RUN"

#: Launchers a supervisor may exec through before the service's own program (mpsv3's child
#: joins its cgroup in ``sh`` and sets its parent-death signal in ``setpriv``; honcho runs
#: ``sh -c``): a marked process counts once it runs the program itself, so every peer is
#: timed to the same point.
LAUNCHERS = frozenset({b"sh", b"dash", b"bash", b"setpriv"})

#: A new process whose environment still lacks the marker this long after we first saw it is
#: not going to exec into one of our children (fork-to-exec takes microseconds).
SETTLE_S = 2.0


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _stat_fields(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks) from ``/proc/PID/stat``, or None if gone."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    rest = raw[raw.rfind(b")") + 2 :].split()
    return rest[0].decode(), rest[19].decode()


def _environ_value(pid: int, name: bytes) -> str | None:
    raw = _read(f"/proc/{pid}/environ")
    if not raw:
        return None
    for entry in raw.split(b"\0"):
        if entry.startswith(name):
            return entry[len(name) :].decode(errors="replace")
    return None


def _pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


@dataclass(frozen=True)
class Child:
    pid: int
    service: str
    start_ticks: str


class ProcessScanner:
    """Tracks the living children of one launch by the marker in their environment.

    Args:
        launch: the launch id the adapters put before ``/`` in ``MPSV3_BENCH_SVC``.
    """

    def __init__(self, launch: str) -> None:
        self._prefix = f"{SVC_VAR}={launch}/".encode()
        self._ignored = _pids()
        self._pending: dict[int, float] = {}
        self._children: dict[int, Child] = {}
        #: When a scan first found a child of this launch (monotonic), for first-spawn latency.
        self.first_seen: float | None = None

    def scan(self) -> dict[int, Child]:
        """The living (not zombie) marked processes of this launch, by PID."""
        now = time.monotonic()
        present = _pids()
        self._ignored &= present
        for pid in present - self._ignored - self._children.keys():
            first = self._pending.setdefault(pid, now)
            service = _environ_value(pid, self._prefix)
            stat = _stat_fields(pid) if service is not None else None
            if stat is not None and (_read(f"/proc/{pid}/comm") or b"").strip() in LAUNCHERS:
                stat = None  # not the program yet: look again at the next scan
            if service is not None and stat is not None:
                self._children[pid] = Child(pid, service, stat[1])
                del self._pending[pid]
                if self.first_seen is None:
                    self.first_seen = now
            elif now - first > SETTLE_S:
                self._ignored.add(pid)
                del self._pending[pid]
        for pid, child in list(self._children.items()):
            stat = _stat_fields(pid) if pid in present else None
            if stat is None or stat[0] in ("Z", "X") or stat[1] != child.start_ticks:
                del self._children[pid]
        for pid in list(self._pending):
            if pid not in present:
                del self._pending[pid]
        return dict(self._children)

    def by_service(self) -> dict[str, list[int]]:
        """The living children grouped by service name."""
        grouped: dict[str, list[int]] = {}
        for child in self.scan().values():
            grouped.setdefault(child.service, []).append(child.pid)
        return grouped

    def wait_count(
        self,
        count: int,
        timeout_s: float,
        poll_s: float = 0.01,
        give_up: Callable[[], bool] | None = None,
    ) -> float | None:
        """Wait until exactly ``count`` children are alive; the monotonic time it happened.

        Args:
            count: how many living children to wait for.
            timeout_s: the deadline.
            poll_s: the pause between scans.
            give_up: checked about every 0.2 s; True ends the wait at once (the supervisor
                has exited, so the count will never be reached).

        Returns:
            None when the deadline passes or ``give_up`` says so (the caller records a failure).
        """
        deadline = time.monotonic() + timeout_s
        next_check = time.monotonic() + 0.2
        while True:
            found = len(self.scan())
            now = time.monotonic()
            if found == count:
                return now
            if now > deadline:
                return None
            if give_up is not None and now >= next_check:
                if give_up():
                    return None
                next_check = now + 0.2
            time.sleep(poll_s)

    def wait_replacement(
        self, service: str, old_pid: int, timeout_s: float, poll_s: float = 0.0005
    ) -> tuple[float, int] | None:
        """Wait for a new living child of ``service`` other than ``old_pid``.

        Returns:
            (monotonic time it was seen, its PID), or None when the deadline passed first.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            for child in self.scan().values():
                if child.service == service and child.pid != old_pid:
                    return time.monotonic(), child.pid
            if time.monotonic() > deadline:
                return None
            time.sleep(poll_s)


def processes_marked(var: str, prefix: str) -> list[psutil.Process]:
    """Every living process whose environment has ``var`` with a value starting ``prefix``."""
    marker = f"{var}=".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        value = _environ_value(pid, marker)
        if value is None or not value.startswith(prefix):
            continue
        stat = _stat_fields(pid)
        if stat is not None and stat[0] not in ("Z", "X"):
            try:
                found.append(psutil.Process(pid))
            except psutil.Error:
                continue
    return found


def kill_marked(var: str, prefix: str, grace_s: float = 2.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process marked ``var=prefix...``; return their PIDs."""
    procs = processes_marked(var, prefix)
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            continue
    _gone, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=grace_s)
    return [proc.pid for proc in procs]


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user+system, the processes' own) and memory of a set of processes."""

    cpu_s: float
    rss_bytes: int
    pss_bytes: int
    processes: int


def supervisor_processes(root_pid: int | None, launch: str) -> list[psutil.Process]:
    """The supervisor: ``root_pid`` and its descendants that are not supervised children.

    Honcho keeps one helper process per service and PM2's daemon is a grandchild of its CLI,
    so "the supervisor" is a tree minus the marked children, for every peer alike.
    """
    prefix = f"{SVC_VAR}={launch}/".encode()
    if root_pid is None:
        return []
    try:
        root = psutil.Process(root_pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    return [proc for proc in tree if _environ_value(proc.pid, prefix) is None]


def usage(procs: list[psutil.Process], with_pss: bool = True) -> Usage:
    """Sum the CPU time and memory of ``procs``; vanished processes are skipped."""
    cpu = 0.0
    rss = pss = counted = 0
    for proc in procs:
        try:
            times = proc.cpu_times()
            if with_pss:
                full = proc.memory_full_info()
                rss += full.rss
                pss += getattr(full, "pss", full.rss)
            else:
                rss += proc.memory_info().rss
        except psutil.Error:
            continue
        cpu += times.user + times.system
        counted += 1
    return Usage(cpu_s=cpu, rss_bytes=rss, pss_bytes=pss, processes=counted)
