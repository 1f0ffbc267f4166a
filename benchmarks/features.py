"""The workloads of features only some peers have: the dependency gate and hot reload.

Like every workload, they time with the benchmark's own clock (and, for the gate, mpsv3's
``events.jsonl``, the only peer that gates on readiness); a peer without the feature is
reported as "n/a" with the reason its adapter gives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.adapters.base import Service
from benchmarks.adapters.mpsv3 import Mpsv3Adapter
from benchmarks.context import Context, wait_for


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
                first[key] = event_time(str(event["ts"]))
        for index in range(1, length):
            ready = first.get(("ready", f"c{index - 1:03d}"))
            spawned = first.get(("spawned", f"c{index:03d}"))
            if ready is None or spawned is None:
                ctx.record("gate", peer, link=index, error="missing ready or spawned event")
                continue
            ctx.record("gate", peer, link=index, gate_s=(spawned - ready).total_seconds())


def event_time(stamp: str) -> datetime:
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


