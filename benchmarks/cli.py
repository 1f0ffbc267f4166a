"""``python -m benchmarks``: install the peers, run every workload, print and save the results.

Owned by nobody else: it builds the run's ``Context``, runs the workloads in a fixed order (each
one guarded, so one failing peer never loses the others' samples), kills every process of the
run at the end, and writes the JSON, the markdown and, on request, docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from benchmarks import anatomy, clients, features, logflood, report, summary, workloads
from benchmarks import peers as peer_install
from benchmarks.adapters import ALL_PEERS, PYTHON_PEERS, build_peers
from benchmarks.adapters.base import WORKLOADS
from benchmarks.context import Context, Settings

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DOCS = REPO / "docs" / "benchmarks.md"
#: Workloads ``--profile`` can rerun with mpsv3 under py-spy (idle runs all peers at once).
PROFILABLE = tuple(workloads.PER_PEER)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="mpsv3 side by side with supervisord, circus, honcho and PM2.",
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized run (under 2 minutes)")
    parser.add_argument(
        "--peers", default=",".join(ALL_PEERS), help=f"comma list of {', '.join(ALL_PEERS)}"
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}"
    )
    parser.add_argument("--idle-seconds", type=float, help="override the idle window")
    parser.add_argument(
        "--sizes", help="override the service counts, e.g. 10,50 (cold start and idle)"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--write-docs", action="store_true", help=f"write {DOCS.relative_to(REPO)}")
    parser.add_argument("--docs-path", type=Path, default=DOCS, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help="render a saved results JSON, run nothing")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="respawn",
        choices=PROFILABLE,
        help="rerun one workload (default respawn) with mpsv3 under py-spy: flame graph SVGs",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless mpsv3's samples are sane"
    )
    parser.add_argument("--note", default="", help="a sentence printed under the machine facts")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--keep", action="store_true", help="keep the launches' work directories")
    return parser.parse_args(argv)


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, OS, kernel, Python and Node: the facts the docs name."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    node = "-"
    if shutil.which("node"):
        done = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        node = done.stdout.strip().lstrip("v") or "-"
    return {
        "cores": psutil.cpu_count(),
        "cpu_model": model,
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
    }


def mpsv3_launcher() -> tuple[list[str], str]:
    """The argv prefix that runs the mpsv3 CLI of this checkout, and its version.

    The checkout's modules are byte-compiled first, as pip does for every installed package
    (the peers included): an editable install under ``PYTHONDONTWRITEBYTECODE`` would
    otherwise compile every module at every start and measure the compiler, not mpsv3.
    """
    import compileall

    import mpsv3

    compileall.compile_dir(str(Path(mpsv3.__file__).parent), quiet=1, workers=0)
    script = Path(sys.prefix) / "bin" / "mpsv3"
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "mpsv3"]
    done = subprocess.run(
        [*launcher, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    version = done.stdout.strip().rsplit(" ", 1)[-1] if done.returncode == 0 else "unavailable"
    return launcher, version


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.quick_run() if args.quick else Settings.full()
    if args.idle_seconds is not None:
        settings = dataclasses.replace(settings, idle_window_s=args.idle_seconds)
    if args.sizes:
        sizes = tuple(int(size) for size in args.sizes.split(",") if size)
        reps = {size: settings.cold_reps.get(size, 1) for size in sizes}
        settings = dataclasses.replace(settings, cold_sizes=sizes, cold_reps=reps, idle_sizes=sizes)
    return settings


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Install, measure, clean up; the results dict (also what the JSON holds)."""
    selected = [name for name in args.peers.split(",") if name]
    chosen = [name for name in args.workloads.split(",") if name]
    unknown = [name for name in chosen if name not in WORKLOADS]
    if unknown:
        raise SystemExit(
            f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(WORKLOADS)}"
        )
    settings = _settings(args)
    started = time.monotonic()
    began_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    cache = peer_install.cache_dir()
    progress(f"peers: {', '.join(selected)} (cache {cache})")
    tools = peer_install.install_peers(
        cache,
        python_peers=any(name in PYTHON_PEERS for name in selected),
        pm2="pm2" in selected,
        with_profiler=args.profile is not None,
    )
    launcher, version = mpsv3_launcher()
    peers, missing = build_peers(selected, tools, launcher, version)
    run_id = uuid.uuid4().hex[:10]
    scratch = Path(tempfile.mkdtemp(prefix="mpsv3-bench-"))
    ctx = Context(run_id, scratch, peers, settings, progress)
    results: dict[str, Any] = {
        "schema": report.SCHEMA,
        "run": run_id,
        "started_at": began_at,
        "command": shlex.join(["python", "-m", "benchmarks", *argv]),
        "quick": settings.quick,
        "note": args.note,
        "machine": machine_info(),
        "versions": {
            "mpsv3": version,
            **{name: peer.version for name, peer in peers.items() if name != "mpsv3"},
        },
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "cold_reps"}
        | {"cold_reps": {str(k): v for k, v in settings.cold_reps.items()}},
        "peers": selected,
        "missing_peers": missing,
        "workloads": chosen,
        "gate_elsewhere": {},
    }
    try:
        _measure(ctx, chosen, results)
        if args.profile is not None and "mpsv3" in peers and tools.venv_bin is not None:
            results["profile"] = _profile(ctx, tools.venv_bin / "py-spy", launcher, version, args)
    finally:
        results["leftovers"] = ctx.cleanup()
        if args.keep:
            progress(f"work directories kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    results["samples"] = ctx.samples
    results["na"] = ctx.na
    results["duration_s"] = time.monotonic() - started
    return results


def _measure(ctx: Context, chosen: list[str], results: dict[str, Any]) -> None:
    """Every chosen workload, for every peer; a crash becomes an error sample, not an abort."""

    def guarded(workload: str, peer: str, step: Any, *args: Any) -> None:
        try:
            step(*args)
        except Exception as exc:  # one failing step must not lose the run
            ctx.record(
                workload,
                peer,
                error=f"{type(exc).__name__}: {exc}",
                trace=traceback.format_exc(limit=5),
            )
            ctx.cleanup()

    if "logs" in chosen:
        guarded("logs", "floor", logflood.flood_floor, ctx)
    if "respawn" in chosen:
        guarded("respawn", "floor", workloads.respawn_floor, ctx)
    if "client" in chosen:
        guarded("client", "floor", clients.client_floors, ctx)
    if "gate" in chosen:
        results["gate_elsewhere"] = features.gate_elsewhere()
    for peer in ctx.peers:
        for workload in workloads.PER_PEER:
            if workload in chosen:
                guarded(workload, peer, workloads.PER_PEER[workload], ctx, peer)
    if "idle" in chosen:
        for size in ctx.settings.idle_sizes:
            guarded("idle", "all", workloads.idle, ctx, list(ctx.peers), size)
    if "anatomy" in chosen:
        guarded("anatomy", "mpsv3", anatomy.run, ctx)


def _profile(
    ctx: Context, py_spy: Path, launcher: list[str], version: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One workload again, with every ``mpsv3 up`` under ``py-spy record``: flame graph SVGs.

    The profiled run's samples are kept apart (profiling slows mpsv3 down); cold start is
    profiled at its largest N only.
    """
    workload = args.profile
    args.results_dir.mkdir(parents=True, exist_ok=True)
    output = args.results_dir / f"profile-{workload}-{{launch}}.svg"
    wrapper = [str(py_spy), "record", "--rate", "250", "--output", str(output)]
    tools = peer_install.PeerTools(None, None, {}, {})
    profiled, _ = build_peers(["mpsv3"], tools, launcher, version, profiler=wrapper)
    size = max(ctx.settings.cold_sizes)
    plain, saved = ctx.peers, ctx.settings
    ctx.peers = {"mpsv3": profiled["mpsv3"]}
    ctx.settings = dataclasses.replace(saved, cold_sizes=(size,), cold_reps={size: 1})
    kept = len(ctx.samples)
    ctx.progress(f"profiling mpsv3 {workload} with py-spy")
    try:
        workloads.PER_PEER[workload](ctx, "mpsv3")
    finally:
        ctx.peers, ctx.settings = plain, saved
        profiled_samples = ctx.samples[kept:]
        del ctx.samples[kept:]
    svgs = sorted(str(path) for path in args.results_dir.glob(f"profile-{workload}-*.svg"))
    return {"workload": workload, "svg": svgs, "samples": profiled_samples}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.report is not None:
        results = json.loads(args.report.read_text())
    else:
        results = run(args, argv)
        path = report.write_json(results, args.results_dir)
        print(f"raw samples: {path}", file=sys.stderr)
    print(report.markdown(results))
    if args.write_docs:
        args.docs_path.parent.mkdir(parents=True, exist_ok=True)
        args.docs_path.write_text(report.docs_page(results))
        print(f"wrote {args.docs_path}", file=sys.stderr)
    if results.get("leftovers"):
        print(f"warning: killed leftover processes {results['leftovers']}", file=sys.stderr)
    if args.check and "mpsv3" in results["peers"]:
        problems = summary.sanity_problems(results)
        for problem in problems:
            print(f"mpsv3 sample not sane: {problem}", file=sys.stderr)
        return 1 if problems else 0
    return 0
