"""What a supervisor's processes cost at rest, read from ``/proc``: per process, per mapping, wakeups.

Why apart from ``procs``: these are the measured reasons behind the idle numbers. The idle
workload sums RSS and PSS over a supervisor's processes; this module says which process holds
the memory (the keeper or the supervising process), what it is (the interpreter binary, a
shared library such as libcrypto, or anonymous memory: the Python heap of the modules it
imported), and how often its threads wake (a context switch is counted every time a thread
gives up or is taken off a CPU, so an idle process that never wakes adds none). Linux only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

#: How many mappings ``mappings`` keeps (the largest by RSS), the rest summed as "other".
TOP_MAPPINGS = 6
#: How many of a supervisor's processes the idle samples list one by one (honcho has one per
#: service; the sums cover them all).
LISTED = 5


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def context_switches(pid: int) -> dict[int, int]:
    """Thread id -> voluntary + involuntary context switches so far, for every thread of ``pid``.

    Per thread, because ``/proc/PID/status`` counts the main thread only; a thread that is
    gone by the second reading simply drops out (``wakeups`` counts only what both saw or
    what is new).
    """
    counts: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return counts
    for tid in tids:
        text = _read_text(f"/proc/{pid}/task/{tid}/status")
        if text is None:
            continue
        total = 0
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                total += int(line.split(":", 1)[1])
        counts[int(tid)] = total
    return counts


def wakeups(before: dict[int, dict[int, int]], after: dict[int, dict[int, int]]) -> int:
    """Context switches between two readings of ``{pid: context_switches(pid)}``."""
    total = 0
    for pid, threads in after.items():
        earlier = before.get(pid, {})
        for tid, count in threads.items():
            total += max(0, count - earlier.get(tid, 0))
    return total


def describe(pid: int) -> str:
    """A short name for a process: ``mpsv3.engine`` (``-m``), ``keeper.py`` (a script), ``circusd``."""
    raw = _read_text(f"/proc/{pid}/cmdline")
    if not raw:
        return f"pid {pid}"
    argv = [arg for arg in raw.split("\0") if arg]
    for index, arg in enumerate(argv[1:], start=1):
        if arg == "-m" and index + 1 < len(argv):
            return argv[index + 1]
        if arg == "-c":
            return f"{os.path.basename(argv[0])} -c"
        if not arg.startswith("-"):
            return os.path.basename(arg)
    return os.path.basename(argv[0])


@dataclass(frozen=True)
class Mapping:
    """The memory behind one file (or anonymous memory), summed over its mappings, in bytes."""

    name: str
    rss: int
    pss: int


def mappings(pid: int, top: int = TOP_MAPPINGS) -> list[Mapping]:
    """``pid``'s memory by what backs it, the largest ``top`` by RSS and then ``other``.

    Anonymous memory (``[anon]``, with ``[heap]``) is what the process allocated: for a Python
    process, the objects of every module it imported and its own data; a file name is code
    or data mapped from that file (the interpreter, a C extension, a shared library).
    """
    text = _read_text(f"/proc/{pid}/smaps")
    if text is None:
        return []
    sizes: dict[str, list[int]] = {}
    current = "[anon]"
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if not fields:
            continue
        if fields[0] in ("Rss:", "Pss:"):
            entry = sizes.setdefault(current, [0, 0])
            entry[0 if fields[0] == "Rss:" else 1] += int(fields[1]) * 1024
        elif "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line
            current = _mapping_name(fields[5].strip() if len(fields) == 6 else "")
    found = sorted(
        (Mapping(name, rss, pss) for name, (rss, pss) in sizes.items()),
        key=lambda m: m.rss,
        reverse=True,
    )
    kept, rest = found[:top], found[top:]
    if rest:
        kept.append(Mapping("other", sum(m.rss for m in rest), sum(m.pss for m in rest)))
    return kept


def _mapping_name(path: str) -> str:
    if not path or path.startswith("[anon") or path == "[heap]":
        return "[anon]"
    if path.startswith("["):
        return path
    return os.path.basename(path.replace(" (deleted)", ""))


def memory_rollup(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) in bytes from ``/proc/PID/smaps_rollup``, or None if the process is gone."""
    text = _read_text(f"/proc/{pid}/smaps_rollup")
    if text is None:
        return None
    found = {"Rss": 0, "Pss": 0}
    for line in text.splitlines():
        head, _, rest = line.partition(":")
        if head in found:
            found[head] = int(rest.split()[0]) * 1024
    return found["Rss"], found["Pss"]


def per_process(pids: Iterable[int], with_mappings: bool) -> list[dict[str, object]]:
    """One entry per process: name, RSS, PSS, and (optionally) its largest mappings."""
    out: list[dict[str, object]] = []
    for pid in pids:
        sizes = memory_rollup(pid)
        if sizes is None:
            continue
        entry: dict[str, object] = {
            "pid": pid,
            "name": describe(pid),
            "rss_bytes": sizes[0],
            "pss_bytes": sizes[1],
        }
        if with_mappings:
            entry["mappings"] = [
                {"name": m.name, "rss_bytes": m.rss, "pss_bytes": m.pss} for m in mappings(pid)
            ]
        out.append(entry)
    return out
