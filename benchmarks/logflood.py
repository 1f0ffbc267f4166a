"""The log workload: a child floods its stdout; how long it takes, and what reached the log.

The child (``children/flood.py``) times itself from its first line to its final flush, so the
number shows only how fast the supervisor empties the pipe; the floor is the same command with
stdout on /dev/null. Afterwards every line of the peer's log file is checked to be one whole
numbered record, each number exactly once, once the peer's own prefix (mpsv3's 25-byte stamp,
honcho's time and name) is stripped. The child starts flooding only when the benchmark says
"go" (a file), after reading the supervisor's CPU time, so the CPU the supervisor spent moving
the lines is measured too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from benchmarks.adapters.base import Service
from benchmarks.context import Context, wait_for
from benchmarks.procs import RUN_VAR, supervisor_processes, usage


def flood_floor(ctx: Context) -> None:
    """The flood child with stdout on /dev/null, no supervisor: the floor for the logs rows."""
    for rep in range(ctx.settings.flood_reps):
        ctx.progress(f"logs floor rep {rep + 1}")
        result = ctx.scratch / f"flood-floor-{rep}.json"
        argv = ctx.child("flood.py", str(ctx.settings.flood_lines), str(result))
        env = {**os.environ, RUN_VAR: ctx.run}
        subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, timeout=120, check=True)
        runtime = json.loads(result.read_text())["runtime_s"]
        ctx.record("logs", "floor", rep=rep, runtime_s=runtime, lines=ctx.settings.flood_lines)


def logs(ctx: Context, peer: str) -> None:
    """A child prints N lines as fast as it can: its runtime, and whether every line arrived whole."""
    lines = ctx.settings.flood_lines
    for rep in range(ctx.settings.flood_reps):
        ctx.progress(f"logs {peer} rep {rep + 1}: {lines} lines")

        def flood(workdir: Path) -> list[Service]:
            argv = ctx.child(
                "flood.py", str(lines), str(workdir / "flood-result.json"), str(workdir / "go")
            )
            return [Service("flood", argv, restart=False)]

        with ctx.launched(peer, flood) as (adapter, scanner):
            result = adapter.workdir / "flood-result.json"
            log = adapter.log_path("flood")
            if scanner.wait_count(1, 60.0, give_up=adapter.stopped) is None:
                ctx.record("logs", peer, rep=rep, error=f"never started: {adapter.console_tail()}")
                continue
            time.sleep(ctx.settings.settle_s)
            procs = supervisor_processes(adapter.root_pid(), adapter.launch)
            cpu_before = usage(procs, with_pss=False).cpu_s
            (adapter.workdir / "go").touch()
            if wait_for(result.exists, 120.0, 0.01, give_up=adapter.stopped) is None:
                ctx.record(
                    "logs", peer, rep=rep, error=f"flood never ended: {adapter.console_tail()}"
                )
                continue
            child_done = time.monotonic()
            last_growth = _wait_size_stable(log, still_s=1.0, timeout_s=60.0)
            cpu = usage(procs, with_pss=False).cpu_s - cpu_before
        runtime = json.loads(result.read_text())["runtime_s"]
        drain = max(0.0, last_growth - child_done)
        checked = check_flood_log(log, lines, adapter.log_prefix)
        ctx.record(
            "logs", peer, rep=rep, runtime_s=runtime, drain_s=drain, supervisor_cpu_s=cpu, **checked
        )


def _wait_size_stable(path: Path, still_s: float, timeout_s: float) -> float:
    """Wait until ``path`` has not grown for ``still_s``; when it last grew (monotonic).

    The supervisor may still be writing the log after the child has exited (honcho moves each
    line through a queue); the moment of the last growth is when the log became complete.
    """
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= still_s:
            break
        time.sleep(0.01)
    return since


FLOOD_LINE = re.compile(r"L(\d{6}) abcdefghijklmnopqrstuvwxyz0123")


def check_flood_log(
    path: Path, expected: int, prefix: re.Pattern[str] | None = None
) -> dict[str, int | bool]:
    """Count the flood's lines that reached ``path`` whole.

    A line is whole when, after the peer's own ``prefix`` (which must be there when one is
    given), it is exactly one record: a line cut short, two records run together or a record
    with a torn stamp does not count, and its number shows up as missing.

    Returns:
        ``lines_whole`` (lines that match exactly one whole record), ``missing`` (indices never
        seen whole), ``duplicates`` and ``complete`` (every index exactly once).
    """
    try:
        text = path.read_bytes().decode(errors="replace")
    except OSError:
        return {"lines_whole": 0, "missing": expected, "duplicates": 0, "complete": False}
    seen: set[int] = set()
    whole = 0
    for line in text.splitlines():
        if prefix is not None:
            head = prefix.match(line)
            if head is None:
                continue
            line = line[head.end() :]
        match = FLOOD_LINE.fullmatch(line)
        if match is not None:
            whole += 1
            seen.add(int(match.group(1)))
    missing = sum(1 for index in range(expected) if index not in seen)
    duplicates = whole - len(seen)
    complete = missing == 0 and duplicates == 0
    return {
        "lines_whole": whole,
        "missing": missing,
        "duplicates": duplicates,
        "complete": complete,
    }
