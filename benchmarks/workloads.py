"""The workloads, each run the same way against every peer that can run it.

Every time comes from the benchmark's own monotonic clock and ``/proc`` (``ProcessScanner``),
never from a supervisor's status output, so the peers are timed by one ruler. Every wait is
bounded; a sample that times out is recorded with an ``error`` instead of a number, and the run
goes on. Functions here take the run's ``Context`` and append to ``ctx.samples``; the log
flood lives in ``logflood``. ``PER_PEER`` names every workload that runs one peer at a time.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.adapters.base import Adapter, Service
from benchmarks.adapters.mpsv3 import Mpsv3Adapter
from benchmarks.context import Context, shutdown, wait_for
from benchmarks.logflood import logs
from benchmarks.procs import ProcessScanner, supervisor_processes, usage


def cold_start(ctx: Context, peer: str) -> None:
    """Launch -> all N children exist, for each size N; stop-all -> none left, once per N.

    The stop is measured on the first repetition of each size (the others are killed, which
    keeps the full run within its time budget). A stop that takes longer than
    ``Settings.stop_cap_s`` is recorded as a timeout with the number of children still alive
    (supervisord stops one program group per loop pass, which at N = 500 would take minutes),
    and what is left is killed.
    """
    for size in ctx.settings.cold_sizes:
        for rep in range(ctx.settings.cold_reps.get(size, 1)):
            ctx.progress(f"cold start {peer} N={size} rep {rep + 1}")
            sample = _cold_start_once(ctx, peer, size, measure_stop=rep == 0)
            sample["rep"] = rep
            time.sleep(0.2)


def _cold_start_once(ctx: Context, peer: str, size: int, measure_stop: bool) -> dict[str, Any]:
    adapter = ctx.new_launch(peer, ctx.sleepers(size))
    scanner = ProcessScanner(adapter.launch)
    stop: dict[str, Any] = {}
    try:
        began = time.monotonic()
        adapter.start()
        all_up = scanner.wait_count(size, 30.0 + 0.2 * size, give_up=adapter.stopped)
        seen = len(scanner.scan())
        root = adapter.root_pid()
        cpu = usage(supervisor_processes(root, adapter.launch), with_pss=False).cpu_s
        if measure_stop:
            stop = _measure_stop(ctx, adapter, scanner)
    finally:
        shutdown(adapter, timeout_s=2.0 if measure_stop else 0.0)
    sample = ctx.record(
        "cold_start",
        peer,
        n=size,
        children_seen=seen,
        start_s=None if all_up is None else all_up - began,
        supervisor_cpu_s=cpu if root is not None else None,
        **stop,
    )
    if all_up is None:
        sample["error"] = f"saw {seen} of {size} children; {adapter.console_tail()}"
    return sample


def _measure_stop(ctx: Context, adapter: Adapter, scanner: ProcessScanner) -> dict[str, Any]:
    """Stop request -> no child left, and -> supervisor gone (both capped)."""
    asked = time.monotonic()
    adapter.request_stop()
    none_left = scanner.wait_count(0, timeout_s=ctx.settings.stop_cap_s)
    left = len(scanner.scan())
    exited = adapter.wait_stopped(timeout_s=10.0 if none_left else 0.2)
    fields: dict[str, Any] = {
        "stop_s": None if none_left is None else none_left - asked,
        "exit_s": None if exited is None else exited - asked,
    }
    if none_left is None:
        fields["left"] = left
        fields["stop_timeout_s"] = ctx.settings.stop_cap_s
    return fields


def respawn(ctx: Context, peer: str) -> None:
    """SIGKILL one child from outside; time until its replacement exists.

    A peer that polls for dead children on a tick (``Adapter.tick_s``) gets its kills spread
    at random over one tick, several services per round, so that the samples cover every
    phase of the tick instead of locking onto one; a peer without a tick gets one kill at a
    time after a short random pause.
    """
    if not ctx.supports(peer, "respawn"):
        return
    count = ctx.settings.respawn_services
    reps = ctx.settings.respawn_reps
    ctx.progress(f"respawn {peer} x{reps}")
    rng = random.Random(ctx.run)
    with ctx.launched(peer, ctx.sleepers(count)) as (adapter, scanner):
        if scanner.wait_count(count, 60.0, give_up=adapter.stopped) is None:
            ctx.record("respawn", peer, error=f"not all started: {adapter.console_tail()}")
            return
        time.sleep(ctx.settings.settle_s)
        tick = adapter.tick_s
        batch = count if tick > 0 else 1
        done = failures = 0
        while done < reps and failures < 3:
            size = min(batch, reps - done)
            services = [f"s{(done + index) % count}" for index in range(size)]
            if tick > 0:
                slot = tick / size
                offsets = [index * slot + rng.uniform(0, slot) for index in range(size)]
            else:
                offsets = [rng.uniform(0, 0.05)]
            for service, outcome in _kill_round(scanner, services, offsets, 15.0).items():
                if isinstance(outcome, str):
                    ctx.record("respawn", peer, rep=done, service=service, error=outcome)
                    failures += 1
                else:
                    ctx.record("respawn", peer, rep=done, service=service, respawn_s=outcome)
                    failures = 0
                done += 1
            time.sleep(0.05)


def _kill_round(
    scanner: ProcessScanner, services: list[str], offsets: list[float], timeout_s: float
) -> dict[str, float | str]:
    """Kill ``services[i]`` at ``offsets[i]`` seconds from now; each one's respawn time.

    Returns:
        service -> seconds from its kill until a new process of it existed, or an error.
    """
    current = scanner.by_service()
    outcome: dict[str, float | str] = {}
    schedule = []
    for service, offset in sorted(zip(services, offsets, strict=True), key=lambda x: x[1]):
        pids = current.get(service, [])
        if len(pids) == 1:
            schedule.append((offset, service, pids[0]))
        else:
            outcome[service] = f"{service} has pids {pids}"
    began = time.monotonic()
    killed: dict[str, tuple[int, float]] = {}
    deadline = began + (schedule[-1][0] if schedule else 0.0) + timeout_s
    while schedule or len(outcome) < len(services):
        now = time.monotonic()
        while schedule and now - began >= schedule[0][0]:
            _offset, service, pid = schedule.pop(0)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed[service] = (pid, time.monotonic())
        living = scanner.scan().values()
        seen_at = time.monotonic()
        for service, (old, at) in killed.items():
            if service not in outcome and any(
                child.service == service and child.pid != old for child in living
            ):
                outcome[service] = seen_at - at
        if seen_at > deadline:
            for service in killed:
                outcome.setdefault(service, f"no replacement within {timeout_s:.0f} s")
            break
        time.sleep(0.0005)
    return outcome


def idle(ctx: Context, peers: list[str], size: int) -> None:
    """N idle services per peer, all peers side by side for one window: CPU and memory.

    The peers idle at the same time (their launches are sequential, so no start overlaps a
    measurement): an idle supervisor's CPU time does not depend on its neighbours while the
    machine is not saturated, and the window is paid once instead of once per peer.
    """
    window = ctx.settings.idle_window_s
    ctx.progress(f"idle N={size} for {window:.0f} s: {', '.join(peers)}")
    running = []
    try:
        for peer in peers:
            adapter = ctx.new_launch(peer, ctx.sleepers(size))
            scanner = ProcessScanner(adapter.launch)
            adapter.start()
            running.append(adapter)
            if scanner.wait_count(size, 60.0 + 0.2 * size, give_up=adapter.stopped) is None:
                ctx.record("idle", peer, n=size, error=f"not all started: {adapter.console_tail()}")
                running.pop()
                shutdown(adapter, timeout_s=10.0)
        time.sleep(2 * ctx.settings.settle_s)
        before = {}
        for adapter in running:
            procs = supervisor_processes(adapter.root_pid(), adapter.launch)
            before[adapter.name] = {proc.pid: usage([proc], with_pss=False).cpu_s for proc in procs}
        time.sleep(window)
        for adapter in running:
            if adapter.stopped():
                tail = adapter.console_tail()
                ctx.record(
                    "idle", adapter.name, n=size, error=f"supervisor exited while idle: {tail}"
                )
                continue
            procs = supervisor_processes(adapter.root_pid(), adapter.launch)
            now = usage(procs)
            cpu = 0.0
            for proc in procs:
                cpu += usage([proc], with_pss=False).cpu_s - before[adapter.name].get(proc.pid, 0.0)
            ctx.record(
                "idle",
                adapter.name,
                n=size,
                window_s=window,
                cpu_s=cpu,
                cpu_s_per_min=cpu * 60.0 / window,
                rss_bytes=now.rss_bytes,
                pss_bytes=now.pss_bytes,
                processes=now.processes,
            )
    finally:
        for adapter in running:
            shutdown(adapter, timeout_s=2.0)


def gate(ctx: Context, peer: str) -> None:
    """A chain c000 <- c001 <- ...: each dependency's ``ready`` event -> dependent's ``spawned``."""
    if not ctx.supports(peer, "gate"):
        return
    length = ctx.settings.gate_chain
    ctx.progress(f"dependency gate {peer}: chain of {length}")

    def chain(workdir: Path) -> list[Service]:
        ready = workdir / "ready"
        ready.mkdir(parents=True)
        return [
            Service(
                f"c{index:03d}",
                ctx.child("ready.py", str(ready)),
                ready_pattern="^ready$",
                requires=(f"c{index - 1:03d}",) if index else (),
            )
            for index in range(length)
        ]

    with ctx.launched(peer, chain) as (adapter, scanner):
        if not isinstance(adapter, Mpsv3Adapter):
            ctx.record("gate", peer, error="no event log to read the gate from")
            return
        last = f"c{length - 1:03d}"

        def last_ready() -> bool:
            return any(
                e.get("event") == "ready" and e.get("service") == last for e in adapter.events()
            )

        if wait_for(last_ready, 30.0 + 0.5 * length, 0.05, give_up=adapter.stopped) is None:
            seen = len(scanner.scan())
            ctx.record("gate", peer, error=f"{seen} of {length} started: {adapter.console_tail()}")
            return
        first: dict[tuple[str, str], datetime] = {}
        for event in adapter.events():
            key = (str(event.get("event")), str(event.get("service")))
            if key[0] in ("ready", "spawned") and key not in first:
                first[key] = _event_time(str(event["ts"]))
        for index in range(1, length):
            ready = first.get(("ready", f"c{index - 1:03d}"))
            spawned = first.get(("spawned", f"c{index:03d}"))
            if ready is None or spawned is None:
                ctx.record("gate", peer, link=index, error="missing ready or spawned event")
                continue
            ctx.record("gate", peer, link=index, gate_s=(spawned - ready).total_seconds())


def _event_time(stamp: str) -> datetime:
    """``2026-11-24T17:08:00.123Z`` (the contract's format) as an aware datetime."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def gate_elsewhere() -> dict[str, str]:
    """Why the other dependency-gating tools are not measured on this machine (by name)."""
    reasons = {}
    if shutil.which("process-compose") is None:
        reasons["process-compose"] = (
            "not installable here: a Go binary, on none of PyPI, npm or Debian's archive"
        )
    else:
        reasons["process-compose"] = "installed, but this benchmark has no adapter for it"
    docker = shutil.which("docker")
    daemon = False
    if docker is not None:
        try:
            probe = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
            daemon = probe.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            daemon = False
    reasons["docker compose"] = (
        "installed, but this benchmark has no adapter for it"
        if daemon
        else "no Docker daemon here, and no image registry reachable to pull images"
    )
    return reasons


def reload(ctx: Context, peer: str) -> None:
    """Save a watched file -> the service's new process exists and says it is ready."""
    if not ctx.supports(peer, "reload"):
        return
    ctx.progress(f"hot reload {peer} x{ctx.settings.reload_reps}")

    def app(workdir: Path) -> list[Service]:
        watched = workdir / "watched" / "app.py"
        watched.parent.mkdir(parents=True)
        watched.write_text("# revision 0\n")
        (workdir / "ready").mkdir()
        argv = ctx.child("ready.py", str(workdir / "ready"))
        return [Service("app", argv, watch=(watched,))]

    with ctx.launched(peer, app) as (adapter, scanner):
        ready_dir = adapter.workdir / "ready"
        watched = adapter.workdir / "watched" / "app.py"
        if wait_for(lambda: any(ready_dir.iterdir()), 30.0, give_up=adapter.stopped) is None:
            ctx.record("reload", peer, error=f"service never ready: {adapter.console_tail()}")
            return
        time.sleep(2 * ctx.settings.settle_s)
        for rep in range(ctx.settings.reload_reps):
            pids = scanner.by_service().get("app", [])
            if len(pids) != 1:
                ctx.record("reload", peer, rep=rep, error=f"app has pids {pids}")
                break
            before = set(os.listdir(ready_dir))
            began = time.monotonic()
            watched.write_text(f"# revision {rep + 1}\n")
            seen = scanner.wait_replacement("app", pids[0], timeout_s=10.0)
            marker = ready_dir / str(seen[1]) if seen else None
            if seen is None or marker is None or wait_for(marker.exists, 10.0, 0.001) is None:
                ctx.record("reload", peer, rep=rep, error="no ready replacement within 10 s")
                break
            ready_at = float(marker.read_text().strip())
            time.sleep(0.5)
            restarts = len(set(os.listdir(ready_dir)) - before)
            ctx.record(
                "reload",
                peer,
                rep=rep,
                restarted_s=seen[0] - began,
                ready_s=ready_at - began,
                restarts=restarts,
            )
            wait_for(lambda: len(scanner.by_service().get("app", [])) == 1, 5.0)


PER_PEER: dict[str, Callable[[Context, str], None]] = {
    "cold_start": cold_start,
    "respawn": respawn,
    "gate": gate,
    "reload": reload,
    "logs": logs,
}
