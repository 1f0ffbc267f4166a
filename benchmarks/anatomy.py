"""mpsv3's own numbers taken apart: where its start, its stop, a respawn and a command spend time.

Why: the report must say, measured, what stands between mpsv3 and each target it misses or
each peer that beats it. The peers are programs we only time from outside; mpsv3 we can also
take apart, with the same ruler:

- the phases of a cold start (launch -> the supervising process ``mpsv3.engine`` exists ->
  the first child -> all children), from ``/proc``;
- what ``mpsv3 up``, the supervisor and a client command import, by package, from a launch
  under ``PYTHONPROFILEIMPORTTIME=1`` (the keeper runs with ``-I``, so it prints nothing);
- for a respawn and a stop-all, the gaps between mpsv3's own events (``events.jsonl``, at
  millisecond resolution).

These launches are separate from the measured ones (import profiling slows a start down); their
samples are ``workload: anatomy``, ``peer: mpsv3`` and never enter the comparison tables.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks import importtime
from benchmarks.adapters.base import CLIENT_COMMANDS
from benchmarks.adapters.mpsv3 import Mpsv3Adapter
from benchmarks.context import Context, shutdown
from benchmarks.features import event_time
from benchmarks.procs import ProcessScanner

ENGINE_MODULE = "mpsv3.engine"


def run(ctx: Context) -> None:
    """The ``anatomy`` workload: cold-start phases, then the import profiles."""
    if "mpsv3" not in ctx.peers:
        return
    cold_phases(ctx)
    import_profiles(ctx)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _engine_child(root: int) -> int | None:
    """The child of ``root`` that has exec'd ``python -m mpsv3.engine``, if any yet."""
    try:
        with open(f"/proc/{root}/task/{root}/children") as handle:
            children = [int(pid) for pid in handle.read().split()]
    except OSError:
        return None
    for pid in children:
        if ENGINE_MODULE in _cmdline(pid):
            return pid
    return None


def cold_phases(ctx: Context) -> None:
    """Warm starts of N services, timed at each hand-over: one sample per repetition."""
    size = ctx.settings.anatomy_size
    adapter = ctx.new_launch("mpsv3", ctx.sleepers(size))
    for rep in range(-1, ctx.settings.anatomy_reps):  # rep -1 fills the plan cache
        ctx.progress(f"anatomy: cold start phases N={size} rep {rep + 1}")
        scanner = ProcessScanner(adapter.launch)
        engine_at = first_at = all_at = None
        try:
            began = time.monotonic()
            adapter.start()
            assert adapter.proc is not None
            deadline = began + 30.0 + 0.2 * size
            while all_at is None and time.monotonic() < deadline and not adapter.stopped():
                if engine_at is None and _engine_child(adapter.proc.pid) is not None:
                    engine_at = time.monotonic()
                found = len(scanner.scan())
                if found and first_at is None:
                    first_at = scanner.first_seen
                if found == size:
                    all_at = time.monotonic()
                time.sleep(0.0005)
        finally:
            shutdown(adapter, timeout_s=10.0)
        if rep < 0:
            continue
        if None in (engine_at, first_at, all_at):
            ctx.record("anatomy", "mpsv3", part="phases", rep=rep, error=adapter.console_tail())
            continue
        assert engine_at is not None and first_at is not None and all_at is not None
        ctx.record(
            "anatomy",
            "mpsv3",
            part="phases",
            rep=rep,
            n=size,
            engine_s=engine_at - began,
            first_s=max(first_at, engine_at) - began,
            all_s=all_at - began,
        )


def import_profiles(ctx: Context) -> None:
    """``mpsv3 up`` and its supervisor under ``-X importtime``, and each client command too."""
    ctx.progress("anatomy: import profiles of up, the supervisor and the client commands")
    size = ctx.settings.anatomy_size
    profile = {"PYTHONPROFILEIMPORTTIME": "1"}
    commands: dict[str, subprocess.CompletedProcess[str]] = {}
    with ctx.launched("mpsv3", ctx.sleepers(size), extra_env=profile) as (adapter, scanner):
        if scanner.wait_count(size, 60.0, give_up=adapter.stopped) is None:
            ctx.record("anatomy", "mpsv3", part="imports", error=adapter.console_tail())
            return
        for command in CLIENT_COMMANDS:
            argv = adapter.client_command(command, "s0")
            assert argv is not None
            commands[command] = subprocess.run(
                argv,
                env={**adapter.client_env(), **profile},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        time.sleep(ctx.settings.settle_s)
    console = (adapter.workdir / "console.out").read_text(errors="replace")
    for process, entries in zip(("up", "engine"), importtime.blocks(console), strict=False):
        ctx.record(
            "anatomy", "mpsv3", part="imports", process=process, **importtime.summary(entries)
        )
    for command, done in commands.items():
        found = importtime.blocks(done.stderr)
        if done.returncode == 0 and found:
            summary = importtime.summary(found[0])
            ctx.record("anatomy", "mpsv3", part="imports", process=command, **summary)
        else:
            tail = done.stderr[-500:]
            ctx.record("anatomy", "mpsv3", part="imports", process=command, error=tail)


def respawn_events(ctx: Context, adapter: Mpsv3Adapter) -> None:
    """After the respawn kills: each SIGKILL's ``exited`` event -> that service's ``spawned``."""
    gaps: list[float] = []
    pending: dict[str, Any] = {}
    for event in adapter.events():
        service, kind = event.get("service"), event.get("event")
        if kind == "exited" and event.get("signal") == "SIGKILL":
            pending[str(service)] = event_time(str(event["ts"]))
        elif kind == "spawned" and str(service) in pending:
            exited = pending.pop(str(service))
            gaps.append((event_time(str(event["ts"])) - exited).total_seconds())
    ctx.record("anatomy", "mpsv3", part="respawn", exited_to_spawned_s=gaps, cgroup_move_s=cgroup_move_cost())


def cgroup_move_cost(moves: int = 10, pause_s: float = 0.3) -> list[float]:
    """The kernel's cost of one move into a cgroup: what a new service process pays to join
    its own before it execs the service (``platform/linux.py``).

    A sleeping process is moved into a fresh cgroup ``moves`` times, ``pause_s`` apart (as
    respawns are spaced: back-to-back moves share one RCU grace period and look cheap).
    Empty when no cgroup v2 hierarchy is writable here.
    """
    root = next((Path(p) for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup") if Path(p, "cgroup.procs").exists()
                 and Path(p, "cgroup.subtree_control").exists()), None)
    if root is None:
        return []
    target = root / f"mpsv3-bench-move-{os.getpid()}"
    try:
        target.mkdir()
    except OSError:
        return []
    costs: list[float] = []
    child = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        for index in range(moves):
            time.sleep(pause_s)
            began = time.perf_counter()
            (target if index % 2 == 0 else root).joinpath("cgroup.procs").write_text(str(child.pid))
            costs.append(time.perf_counter() - began)
    except OSError:
        return []
    finally:
        child.kill()
        child.wait()
        time.sleep(0.05)
        with contextlib.suppress(OSError):
            target.rmdir()
    return costs


def stop_split(adapter: Mpsv3Adapter, asked_wall: float) -> dict[str, Any]:
    """Fields for a stop-all sample: when mpsv3 signalled and saw its services stop.

    Offsets (s) from the stop request to the first and the last ``stopping`` event, the last
    ``exited`` and the last ``stopped`` event; events have millisecond stamps.
    """
    marks: dict[str, list[float]] = {"stopping": [], "exited": [], "stopped": []}
    for event in adapter.events():
        kind = str(event.get("event"))
        if kind in marks and event.get("service") is not None:
            at = event_time(str(event["ts"])).timestamp() - asked_wall
            if at >= -0.001:
                marks[kind].append(at)
    if not marks["stopping"]:
        return {}
    return {
        "events_first_stopping_s": min(marks["stopping"]),
        "events_last_stopping_s": max(marks["stopping"]),
        "events_last_exited_s": max(marks["exited"], default=None),
        "events_last_stopped_s": max(marks["stopped"], default=None),
    }
