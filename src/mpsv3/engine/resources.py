"""CPU and memory of each service's whole tree, and of the supervisor: sampled only on demand.

Why on demand: a supervisor of 50 idle services must not wake up to measure anything nobody
reads. Figures are taken when someone asks (``status``, the UI, metrics), at most once a
second, and on a one-second timer only for services with ``limits.memory_mb``. Memory is the
tree's proportional set size (PSS, from ``/proc/<pid>/smaps_rollup``) where the kernel has it,
else its RSS, so that forked workers sharing pages are not counted twice; CPU is the tree's
user+system seconds (reaped children included) and the percentage since the last sample.
psutil is imported only when the first figure is taken.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mpsv3.platform import ProcessTree
from mpsv3.policy.messages import Event, MemoryExceeded

#: Figures younger than this are reused.
MAX_AGE_S = 1.0


@dataclass(frozen=True)
class Usage:
    """One tree at one moment."""

    cpu_seconds: float
    memory_bytes: int
    at: float
    cpu_percent: float | None = None


def _pss(pid: int) -> int | None:
    """PSS of one process in bytes (Linux 4.14+), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def measure(pids: Iterable[int]) -> tuple[float, int]:
    """(cpu seconds, memory bytes) of these processes together; gone ones count 0."""
    import psutil

    cpu, memory = 0.0, 0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                times = proc.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
                pss = _pss(pid)
                memory += pss if pss is not None else proc.memory_info().rss
        except psutil.Error:
            continue
    return cpu, memory


class ResourceSampler:
    """Remembers the last sample of each tree to turn CPU seconds into a percentage.

    Owned by the supervisor; ``sample`` does blocking reads (run it in a thread).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, Usage] = {}

    def sample(self, key: str, pids: Iterable[int], started_at: float | None = None) -> Usage:
        """The tree's usage now (or the last one, if younger than ``MAX_AGE_S``).

        Args:
            key: names the tree between samples (a service id).
            pids: its live members.
            started_at: wall time the tree started: the first percentage is the average
                since then (later ones cover the time since the previous sample).
        """
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last.at < MAX_AGE_S:
            return last
        cpu, memory = measure(pids)
        percent = None
        if last is not None and now > last.at:
            percent = round(max(0.0, (cpu - last.cpu_seconds) / (now - last.at) * 100), 1)
        elif started_at is not None and time.time() > started_at:
            percent = round(cpu / (time.time() - started_at) * 100, 1)
        usage = Usage(cpu, memory, now, percent)
        self._last[key] = usage
        return usage

    def forget(self, key: str) -> None:
        self._last.pop(key, None)

    def supervisor(self, extra_pids: Iterable[int] = ()) -> Usage:
        """The supervisor's own figures (and its keeper's, when one is given)."""
        import psutil

        return self.sample("\0supervisor", [os.getpid(), *extra_pids], psutil.Process().create_time())


def as_fields(usage: Usage | None) -> dict[str, Any]:
    """The status document's fields for a usage (nulls when nothing was measured)."""
    if usage is None:
        return {"cpu_percent": None, "cpu_seconds": None, "rss_bytes": None}
    return {"cpu_percent": usage.cpu_percent, "cpu_seconds": round(usage.cpu_seconds, 2), "rss_bytes": usage.memory_bytes}


async def watch_memory(
    tree: ProcessTree, limit_mb: int, sampler: ResourceSampler, key: str, post: Callable[[Event], None]
) -> None:
    """``limits.memory_mb``: the tree's memory once a second; over it, ``MemoryExceeded``.

    Runs as a task of the service's runner for as long as the tree lives (it is cancelled then).
    """
    while True:
        usage = await asyncio.to_thread(sampler.sample, key, tree.alive_members(), tree.create_time)
        used_mb = usage.memory_bytes / (1024 * 1024)
        if used_mb > limit_mb:
            post(MemoryExceeded(f"memory {used_mb:.0f} MiB is over its limit of {limit_mb} MiB"))
            return
        await asyncio.sleep(1.0)
