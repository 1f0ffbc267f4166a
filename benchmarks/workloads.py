"""The workloads, each run the same way against every peer that can run it.

Every time comes from the benchmark's own monotonic clock and ``/proc`` (``ProcessScanner``),
never from a supervisor's status output, so the peers are timed by one ruler. Every wait is
bounded; a sample that times out is recorded with an ``error`` instead of a number, and the run
goes on. Functions here take the run's ``Context`` and append to ``ctx.samples``; the log
flood lives in ``logflood``, the client commands in ``clients``, the gate and hot reload in
``features``, and mpsv3's own breakdown in ``anatomy``. ``PER_PEER`` names every workload that
runs one peer at a time.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from benchmarks import anatomy, clients, features, footprint
from benchmarks.adapters.base import Adapter
from benchmarks.adapters.mpsv3 import UNKNOWN, Mpsv3Adapter
from benchmarks.context import Context, shutdown
from benchmarks.logflood import logs
from benchmarks.procs import RUN_VAR, SVC_VAR, ProcessScanner, supervisor_processes, usage


def cold_start(ctx: Context, peer: str) -> None:
    """Launch -> first child and -> all N children exist, for each size N; stop-all once per N.

    The stop is measured on the first repetition of each size (the others are killed, which
    keeps the full run within its time budget). A stop that takes longer than
    ``Settings.stop_cap_s`` is recorded as a timeout with the number of children still alive
    (supervisord stops one program group per loop pass, which at N = 500 would take minutes),
    and what is left is killed. A peer with a plan cache is measured on one config file
    launched over and over: a first launch fills the cache (not recorded), then each
    repetition is a warm start (the file unchanged) and a start right after the file changed.
    """
    cached = ctx.peers[peer].adapter.plan_cache
    for size in ctx.settings.cold_sizes:
        reps = ctx.settings.cold_reps.get(size, 1)
        if not cached:
            for rep in range(reps):
                ctx.progress(f"cold start {peer} N={size} rep {rep + 1}")
                adapter = ctx.new_launch(peer, ctx.sleepers(size))
                _cold_start_once(ctx, adapter, size, rep, measure_stop=rep == 0)
                time.sleep(0.2)
            continue
        adapter = ctx.new_launch(peer, ctx.sleepers(size))
        ctx.progress(f"cold start {peer} N={size}: first launch (fills the plan cache)")
        first = _cold_start_once(ctx, adapter, size, -1, measure_stop=False, keep=False)
        if "error" in first:
            continue
        ctx.samples.remove(first)
        for rep in range(reps):
            ctx.progress(f"cold start {peer} N={size} rep {rep + 1}: warm, then config changed")
            _cold_start_once(ctx, adapter, size, rep, measure_stop=rep == 0, cache="warm")
            adapter.change_config(rep + 1)
            _cold_start_once(ctx, adapter, size, rep, measure_stop=False, cache="miss")


def _cold_start_once(
    ctx: Context,
    adapter: Adapter,
    size: int,
    rep: int,
    measure_stop: bool,
    cache: str | None = None,
    keep: bool = True,
) -> dict[str, Any]:
    """One launch of ``adapter``: its start, and its stop if ``measure_stop``.

    Args:
        cache: ``warm`` or ``miss`` for a peer with a plan cache (recorded with whether the
            launch really reused the cached plan), None for the others.
        keep: False for a launch whose sample the caller drops.
    """
    scanner = ProcessScanner(adapter.launch)
    stop: dict[str, Any] = {}
    stamp = adapter.plan_entry_stamp()
    poll = ctx.settings.cold_poll_s
    try:
        began = time.monotonic()
        adapter.start()
        all_up = scanner.wait_count(size, 30.0 + 0.2 * size, poll, give_up=adapter.stopped)
        seen = len(scanner.scan())
        root = adapter.root_pid()
        cpu = usage(supervisor_processes(root, adapter.launch), with_pss=False).cpu_s
        if measure_stop:
            stop = _measure_stop(ctx, adapter, scanner)
    finally:
        # a launch started again (plan cache) must find nothing to reclaim: stop it gently
        graceful = measure_stop or cache is not None or not keep
        shutdown(adapter, timeout_s=10.0 if graceful else 0.0)
    first = scanner.first_seen
    sample = ctx.record(
        "cold_start",
        adapter.name,
        n=size,
        rep=rep,
        children_seen=seen,
        start_s=None if all_up is None else all_up - began,
        first_s=None if first is None else first - began,
        supervisor_cpu_s=cpu if root is not None else None,
        **stop,
    )
    if cache is not None:
        sample["plan_cache"] = cache
        sample["plan_entry"] = _plan_entry(stamp, adapter.plan_entry_stamp())
    if all_up is None:
        sample["error"] = f"saw {seen} of {size} children; {adapter.console_tail()}"
    return sample


def _plan_entry(before: int | None, after: int | None) -> str:
    """``reused``, ``stored`` (validated and written again), ``none`` (no cache entry) or
    ``unknown`` (this mpsv3 does not say where its entries are)."""
    if after == UNKNOWN:
        return "unknown"
    if after is None:
        return "none"
    return "reused" if before == after else "stored"


def _measure_stop(ctx: Context, adapter: Adapter, scanner: ProcessScanner) -> dict[str, Any]:
    """Stop request -> no child left, and -> supervisor gone (both capped)."""
    asked = time.monotonic()
    asked_wall = time.time()
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
    if isinstance(adapter, Mpsv3Adapter):
        fields.update(anatomy.stop_split(adapter, asked_wall))
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
        if isinstance(adapter, Mpsv3Adapter):
            anatomy.respawn_events(ctx, adapter)


def respawn_floor(ctx: Context) -> None:
    """The ruler's own floor for respawn: the benchmark starts a marked ``sleep`` itself.

    From ``Popen`` to the scanner seeing the new process: what any supervisor's respawn
    includes at least (a fork and exec by a parent process, and the benchmark's polling of
    ``/proc``), measured the same way as the respawn samples.
    """
    ctx.progress(f"respawn floor x{ctx.settings.respawn_reps}")
    launch = f"{ctx.run}.floor"
    env = {**os.environ, RUN_VAR: ctx.run, SVC_VAR: f"{launch}/floor"}
    for rep in range(ctx.settings.respawn_reps):
        scanner = ProcessScanner(launch)
        began = time.monotonic()
        child = subprocess.Popen(
            [ctx.sleep, "3600"], env=env, start_new_session=True, stdin=subprocess.DEVNULL
        )
        try:
            seen = scanner.wait_replacement("floor", old_pid=-1, timeout_s=10.0)
        finally:
            child.kill()
            child.wait()
        if seen is None:
            ctx.record("respawn", "floor", rep=rep, error="the started process was never seen")
        else:
            ctx.record("respawn", "floor", rep=rep, respawn_s=seen[0] - began)
        time.sleep(0.02)


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
        switches = {}
        for adapter in running:
            procs = supervisor_processes(adapter.root_pid(), adapter.launch)
            before[adapter.name] = {proc.pid: usage([proc], with_pss=False).cpu_s for proc in procs}
            switches[adapter.name] = {p.pid: footprint.context_switches(p.pid) for p in procs}
        time.sleep(window)
        for adapter in running:
            _idle_sample(ctx, adapter, size, before[adapter.name], switches[adapter.name])
    finally:
        for adapter in running:
            shutdown(adapter, timeout_s=2.0)


def _idle_sample(
    ctx: Context,
    adapter: Adapter,
    size: int,
    cpu_before: dict[int, float],
    switches_before: dict[int, dict[int, int]],
) -> None:
    """Record one peer's idle window: CPU, wake-ups, and memory in total and per process."""
    window = ctx.settings.idle_window_s
    if adapter.stopped():
        tail = adapter.console_tail()
        ctx.record("idle", adapter.name, n=size, error=f"supervisor exited while idle: {tail}")
        return
    procs = supervisor_processes(adapter.root_pid(), adapter.launch)
    now = usage(procs)
    cpu = 0.0
    for proc in procs:
        cpu += usage([proc], with_pss=False).cpu_s - cpu_before.get(proc.pid, 0.0)
    after = {proc.pid: footprint.context_switches(proc.pid) for proc in procs}
    woke = footprint.wakeups(switches_before, after)
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
        wakeups=woke,
        wakeups_per_min=woke * 60.0 / window,
        per_process=footprint.per_process(
            [proc.pid for proc in procs[: footprint.LISTED]],
            with_mappings=adapter.name == "mpsv3",
        ),
    )


PER_PEER: dict[str, Callable[[Context, str], None]] = {
    "cold_start": cold_start,
    "respawn": respawn,
    "gate": features.gate,
    "reload": features.reload,
    "logs": logs,
    "client": clients.client_commands,
}
