"""What the compressed soak (``test_compressed_soak.py``) reads and measures, apart from its plot.

- :class:`LogFollower` reads a service log from its first line across rotations;
- :class:`FloodLedger` checks what ``programs/flooder.py`` printed: no gap within a run;
- :class:`Lifetime` holds one supervisor's samples (RSS, open fds) and their figures;
- :func:`stack_agreement` compares ``status`` with /proc, service by service.

Owned by the compressed soak; nothing here starts or stops a process except :func:`kill`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from mindstack import MindStack, cgroup_members, instance_cgroup, still_alive

from support import STAMP, STAMP_LEN

#: A supervisor's first seconds (imports, first spawns) are not its steady state.
WARMUP_S = 20.0
#: After the first ``reload`` (it imports the config loader once), steady again this soon.
AFTER_FIRST_RELOAD_S = 5.0
#: Flat: the median of the last third of the steady samples exceeds the first third's by less.
RSS_GROWTH_LIMIT_MIB = 8.0
FD_GROWTH_LIMIT = 4


class LogFollower:
    """Reads a rotated log from its first line on, across rotations (``x.log.N`` ... ``x.log``).

    Keeps the file it reads open: a rotation renames it, and what the writer wrote before the
    rename is still read to its end; then the next file in the chain, by inode. Returns each
    line, without its stamp for a service log (``stamped``; ``events.jsonl`` has none). A
    reader that polls about every second cannot fall behind by ``backups`` rotations at the
    soak's rates; if it ever does, :attr:`fell_behind` says so.
    """

    def __init__(self, path: Path, *, stamped: bool = True) -> None:
        self.path = path
        self.stamped = stamped
        self._handle: Any = None
        self._partial = b""
        self.rotations = 0
        self.bytes = 0
        self.fell_behind = 0
        self.broken: list[str] = []

    def _chain(self) -> list[tuple[Path, int]]:
        """The log's files, oldest first, with their inodes (a listing that held still)."""
        previous: list[tuple[Path, int]] | None = None
        while True:
            found = []
            for path in sorted(self.path.parent.glob(self.path.name + ".*"), key=_rotation_index, reverse=True):
                with contextlib.suppress(OSError):
                    found.append((path, path.stat().st_ino))
            with contextlib.suppress(OSError):
                found.append((self.path, self.path.stat().st_ino))
            if found == previous:
                return found
            previous = found

    def _read(self) -> list[str]:
        data = self._partial + self._handle.read()
        self.bytes += len(data) - len(self._partial)
        *lines, self._partial = data.split(b"\n")
        decoded = [line.decode("utf-8", "replace") for line in lines]
        return [_without_stamp(line) for line in decoded] if self.stamped else decoded

    def poll(self) -> list[str]:
        """The lines written since the last poll."""
        if self._handle is None:
            chain = self._chain()
            if not chain:
                return []
            self._handle = open(chain[0][0], "rb")  # noqa: SIM115 - kept open across polls
        lines = self._read()
        while True:
            chain = self._chain()
            inodes = [inode for _, inode in chain]
            mine = os.fstat(self._handle.fileno()).st_ino
            if not inodes or inodes[-1] == mine:
                return lines
            lines += self._read()  # renamed: the writer has closed it; read what it left
            if self._partial:
                self.broken.append(self._partial.decode("utf-8", "replace"))
                self._partial = b""
            if mine in inodes:
                following = chain[inodes.index(mine) + 1][0]
            else:
                self.fell_behind += 1
                following = chain[0][0]
            self._handle.close()
            self._handle = open(following, "rb")  # noqa: SIM115
            self.rotations += 1


def _rotation_index(path: Path) -> int:
    suffix = path.name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def _without_stamp(line: str) -> str:
    return line[STAMP_LEN:] if STAMP.match(line) else "UNSTAMPED " + line


class FloodLedger:
    """What ``programs/flooder.py`` printed, run by run: a gap within a run is a lost line.

    A run is one process (``main-PID`` or ``child-PID``); it starts at line 0 and counts up by
    one; an ``end N`` line closes an orderly stop and says how many lines came before it.
    """

    LINE = re.compile(r"^flood (\S+) (\d+) x+$")
    END = re.compile(r"^flood (\S+) end (\d+)$")

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.lines = 0
        self.runs = 0
        self.ended = 0
        self.gaps: list[str] = []
        self.lost_heads: list[str] = []
        self.lost_tails: list[str] = []
        self.other: list[str] = []

    def consume(self, line: str) -> None:
        numbered, end = self.LINE.match(line), self.END.match(line)
        if numbered:
            run, seq = numbered[1], int(numbered[2])
            self.lines += 1
            if seq == 0:  # a new run (a pid may come back over a long day)
                self.runs += 1
            elif run not in self.last:
                self.lost_heads.append(f"{run} starts at line {seq}")
            elif seq != self.last[run] + 1:
                self.gaps.append(f"{run}: lines {self.last[run] + 1}..{seq - 1} missing")
            self.last[run] = seq
        elif end:
            run, count = end[1], int(end[2])
            self.ended += 1
            if self.last.get(run, -1) != count - 1:
                self.lost_tails.append(f"{run} ended after {count} lines, last seen {self.last.get(run)}")
        elif len(self.other) < 50:
            self.other.append(line)

    def problems(self) -> list[str]:
        return [
            *(f"gap: {g}" for g in self.gaps[:20]),
            *(f"lost head: {h}" for h in self.lost_heads[:20]),
            *(f"lost tail: {t}" for t in self.lost_tails[:20]),
            *(f"unexpected line: {o!r}" for o in self.other[:20]),
        ]

    def figures(self) -> dict[str, int]:
        return {
            "lines": self.lines, "runs": self.runs, "orderly_ends": self.ended, "gaps": len(self.gaps),
            "lost_heads": len(self.lost_heads), "lost_tails": len(self.lost_tails), "other_lines": len(self.other),
        }


@dataclass
class Lifetime:
    """One supervisor's life: its ``up`` (the keeper) and engine, and samples of both.

    Steady samples begin :data:`WARMUP_S` after it began and :data:`AFTER_FIRST_RELOAD_S`
    after its first ``reload``: the supervisor imports the config loader on its first reload
    (``docs/architecture.md``: engine/ never imports config/ until then), a step, not a leak.
    """

    up_pid: int
    engine_pid: int
    began: float
    ended: float | None = None
    first_reload: float | None = None
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)  # at, rss, fds, keeper rss

    def sample(self) -> None:
        """One sample of the engine's RSS and open fds and the keeper's RSS (psutil.Error if gone)."""
        engine, keeper = psutil.Process(self.engine_pid), psutil.Process(self.up_pid)
        self.samples.append((time.monotonic(), engine.memory_info().rss, engine.num_fds(), keeper.memory_info().rss))

    def figures(self) -> dict[str, Any]:
        end = self.ended if self.ended is not None else time.monotonic()
        steady_from = max(self.began + WARMUP_S, (self.first_reload or self.began) + AFTER_FIRST_RELOAD_S)
        steady = [s for s in self.samples if s[0] >= steady_from]
        out: dict[str, Any] = {
            "up_pid": self.up_pid, "engine_pid": self.engine_pid, "lived_s": round(end - self.began, 1),
            "samples": len(self.samples), "steady_samples": len(steady),
        }
        if self.samples:
            out["rss_mib_first_sample"] = round(self.samples[0][1] / 2**20, 2)
            out["rss_mib_last_sample"] = round(self.samples[-1][1] / 2**20, 2)
            out["keeper_rss_mib_last_sample"] = round(self.samples[-1][3] / 2**20, 2)
        if self.first_reload is not None:  # the one-time step, shown (not counted as growth)
            before = [s[1] for s in self.samples if s[0] < self.first_reload][-5:]
            after = [s[1] for s in self.samples if s[0] >= self.first_reload + AFTER_FIRST_RELOAD_S][:5]
            if before and after:
                out["first_reload_step_mib"] = round((statistics.median(after) - statistics.median(before)) / 2**20, 2)
        if len(steady) >= 6:
            third = len(steady) // 3
            first, last = steady[:third], steady[-third:]
            for name, index, scale in (("rss_mib", 1, 2**20), ("fds", 2, 1), ("keeper_rss_mib", 3, 2**20)):
                out[f"{name}_first_third"] = round(statistics.median(s[index] for s in first) / scale, 2)
                out[f"{name}_last_third"] = round(statistics.median(s[index] for s in last) / scale, 2)
        return out

    def growth(self, long_s: float) -> list[str]:
        """What grew (RSS, open fds) over a lifetime of at least ``long_s``; empty: flat."""
        figures = self.figures()
        if figures["lived_s"] < long_s or "rss_mib_first_third" not in figures:
            return []
        rss = figures["rss_mib_last_third"] - figures["rss_mib_first_third"]
        fds = figures["fds_last_third"] - figures["fds_first_third"]
        problems = [f"RSS grew {rss:.1f} MiB: {figures}"] if rss >= RSS_GROWTH_LIMIT_MIB else []
        return problems + ([f"open fds grew by {fds:g}: {figures}"] if fds >= FD_GROWTH_LIMIT else [])


def stack_agreement(stack: MindStack, status: dict[str, Any]) -> list[str]:
    """Each service as ``status`` says (:func:`agreement_problems`), and nothing of the stack besides."""
    engine = status["supervisor"]["engine_pid"]
    cgroup = instance_cgroup(stack)
    with_cgroups = "cgroup" in status["supervisor"]["containment"]
    problems, trees = [], set()
    for service in status["services"]:
        found = agreement_problems(stack, service, engine, cgroup if with_cgroups else None)
        problems += [f"{service['id']} (PID {service['pid']}): {p}" for p in found]
        trees.add(service["pid"])
        with contextlib.suppress(psutil.Error):
            trees.update(c.pid for c in psutil.Process(service["pid"]).children(recursive=True))
    members = {p.pid for p in stack.processes()} | set(cgroup_members(cgroup))
    strays = [pid for pid in members if pid not in trees and still_alive(procs_of([pid]))]
    return problems + ([f"processes of the stack outside every service's tree: {strays}"] if strays else [])


def agreement_problems(stack: MindStack, service: dict[str, Any], engine: int, cgroup: Path | None) -> list[str]:
    """Where one service's ``status`` entry and /proc disagree (empty: they agree).

    Ready with a pid that is alive, leads the process group status names, runs below the
    supervisor ``engine``, carries the service's markers (redis-server: its title) and, with
    cgroups, is in ``<instance cgroup>/svc.<id>``.
    """
    sid, pid = service["id"], service["pid"]
    if service["state"] != "ready" or pid is None:
        return [f"state {service['state']}, pid {pid}"]
    try:
        proc = psutil.Process(pid)
        problems = [] if still_alive([proc]) else ["not alive"]
        if os.getpgid(pid) != service["pgid"]:
            problems.append(f"in group {os.getpgid(pid)}, not {service['pgid']}")
        if engine not in {parent.pid for parent in proc.parents()}:
            problems.append(f"not below the supervisor {engine}")
        marked = stack.service_of(proc.cmdline(), proc.environ())
        if marked != sid:
            problems.append(f"its markers say {marked}")
    except (psutil.Error, OSError) as exc:
        return [f"cannot be read: {exc!r}"]
    if cgroup is not None and pid not in cgroup_members(cgroup / f"svc.{sid}"):
        problems.append(f"not in its cgroup {cgroup / f'svc.{sid}'}")
    return problems


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def procs_of(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def wait_gone(procs: list[psutil.Process], within: float) -> list[str]:
    """Those of ``procs`` still alive once all are gone or ``within`` seconds passed."""
    deadline = time.monotonic() + within
    left = still_alive(procs)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = still_alive(procs)
    return left
