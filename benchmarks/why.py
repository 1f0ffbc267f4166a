"""The measured reasons behind mpsv3's numbers, as sentences for the targets section.

Why a module: the issue asks, for every target missed and every row a peer still wins, what
limits mpsv3, measured (``-X importtime``, ``/proc/PID/smaps``, context switches, mpsv3's own
events). ``anatomy`` and ``footprint`` take those measurements during the run; these functions
only read them back from the results dict and say them, so the text follows the numbers.
"""

from __future__ import annotations

from typing import Any

from benchmarks import summary
from benchmarks.fmt import fmt_mib, fmt_s
from benchmarks.stats import median

#: Why a peer's cold start is what it is: facts read in each program's source.
PEER_STARTS = {
    "honcho": "honcho imports a small CLI and forks one helper process per service, which "
    "runs its command through `/bin/sh`; it validates nothing and keeps no state",
    "circus": "circus imports its arbiter and ZeroMQ and starts watcher after watcher",
    "supervisord": "supervisord spawns on the first pass of its 1 s main loop",
    "pm2": "PM2's Node CLI starts its daemon and hands it the apps over RPC, one at a time",
}


def _ms(us: float) -> str:
    return f"{us / 1000:.0f} ms"


def _packages(profile: dict[str, Any], count: int = 4) -> str:
    """``mpsv3.config 93 ms, pydantic 62 ms, ...``: the largest packages by self time."""
    return ", ".join(f"{t['package']} {_ms(t['self_us'])}" for t in profile["top"][:count])


def _libraries(profile: dict[str, Any]) -> str:
    """``pydantic (by mpsv3.config.schema), click (by mpsv3.cli.main)``: third parties loaded."""
    loaded = profile.get("third_party", {})
    if not loaded:
        return "no third-party library"
    return ", ".join(f"{name} (by {by})" for name, by in loaded.items())


def _floor(results: dict[str, Any]) -> float | None:
    python = summary.client(results, "floor").get("python")
    return None if python is None else python["p50"]


def plan_cache_note(results: dict[str, Any]) -> str:
    """What the warm starts really did with the plan cache (from each launch's cache entry)."""
    entries = {
        entry
        for size in summary.cold_start(results, "mpsv3").values()
        for entry in size.get("plan_entry", [])
    }
    if not entries:
        return ""
    if entries == {"reused"}:
        return "Every warm start reused the cached plan (its entry was not rewritten)."
    if entries == {"none"}:
        return (
            "No warm start reused a plan: `up` wrote no plan-cache entry for the config, so in "
            "this build it validates the config on every start and warm equals changed."
        )
    if entries == {"unknown"}:
        return "Whether the warm starts reused a cached plan could not be read from this mpsv3."
    return f"Warm starts and the plan cache: entries {', '.join(sorted(entries))}."


def cold(results: dict[str, Any], size: int) -> str:
    """Where a warm cold start of mpsv3 spends its time, phase by phase."""
    parts = []
    phases = summary.phases(results)
    profiles = summary.imports(results)
    floor = _floor(results)
    entry = summary.cold_start(results, "mpsv3").get(size, {})
    if entry.get("first_s") is not None:
        parts.append(
            f"Its first child exists {fmt_s(entry['first_s'])} after launch, the last "
            f"{fmt_s(entry['start_s'] - entry['first_s'])} later;"
        )
    if phases is not None:
        n = int(phases["n"])
        text = (
            f"in separate timed warm starts of {n} services, the supervising process "
            f"(`python -m mpsv3.engine`) exists {fmt_s(phases['engine_s'])} after launch, the "
            f"first child {fmt_s(phases['first_s'] - phases['engine_s'])} later, all {n} "
            f"{fmt_s(phases['all_s'] - phases['first_s'])} after that"
        )
        if floor is not None:
            text += f"; a bare interpreter starts in {fmt_s(floor)}, and this path starts two"
        parts.append(text + ".")
    if "up" in profiles and "engine" in profiles:
        up, engine = profiles["up"], profiles["engine"]
        parts.append(
            f"Under `-X importtime` (which slows imports; read the shares): `mpsv3 up` imports "
            f"{up['modules']} modules in {_ms(up['total_us'])} ({_packages(up)}; libraries: "
            f"{_libraries(up)}); the supervisor imports {engine['modules']} in "
            f"{_ms(engine['total_us'])} ({_packages(engine)})."
        )
    fit = summary.scale(results, "mpsv3")["start_s"]
    if fit is not None and size > 50:
        parts.append(f"Each further service adds {fit.slope * 1000:.2f} ms (the scale row).")
    note = plan_cache_note(results)
    return " ".join([*parts, note]).strip()


def client(results: dict[str, Any], command: str) -> str:
    """What a client command spends beyond a bare interpreter's start."""
    mine = summary.client(results, "mpsv3").get(command)
    floor = _floor(results)
    if mine is None:
        return ""
    text = f"`mpsv3 {command}` takes {fmt_s(mine['p50'])}"
    if floor is not None:
        text += f", a bare `python -c pass` {fmt_s(floor)}"
    profile = summary.imports(results).get(command)
    if profile is not None:
        text += (
            f". Under `-X importtime` it imports {profile['modules']} modules in "
            f"{_ms(profile['total_us'])} ({_packages(profile)}); libraries: "
            f"{_libraries(profile)}"
        )
    return text + "."


def memory(results: dict[str, Any]) -> str:
    """Which of mpsv3's processes holds the memory, and what backs it."""
    size = summary.idle_size(results)
    sample = summary.idle(results, "mpsv3").get(size)
    if sample is None or not sample.get("per_process"):
        return ""
    parts = []
    for proc in sample["per_process"]:
        text = (
            f"{proc['name']} {fmt_mib(proc['rss_bytes'])} RSS / {fmt_mib(proc['pss_bytes'])} PSS"
        )
        maps = proc.get("mappings", [])[:3]
        if maps:
            text += " (" + ", ".join(
                f"{m['name']} {fmt_mib(m['rss_bytes'])}" for m in maps
            ) + ")"
        parts.append(text)
    return (
        f"At {size} services: " + "; ".join(parts) + ". `[anon]` is memory the process "
        "allocated (for Python, the objects of every module it imported); a shared library "
        "counts in full in each process's RSS and is split between them in PSS."
    )


def respawn(results: dict[str, Any]) -> str:
    """The respawn time against the ruler's own floor and mpsv3's exit -> spawn events."""
    mine = summary.spread(summary.values(summary.samples(results, "respawn", "mpsv3"), "respawn_s"))
    floor = summary.spread(summary.values(summary.samples(results, "respawn", "floor"), "respawn_s"))
    gaps = [g for s in summary.anatomy(results, "respawn") for g in s["exited_to_spawned_s"]]
    if mine is None:
        return ""
    text = f"kill -> replacement seen: p50 {fmt_s(mine['p50'])}"
    if floor is not None:
        text += (
            f"; the benchmark's own floor (it starts a process itself and polls `/proc` for it) "
            f"is p50 {fmt_s(floor['p50'])}"
        )
    if gaps:
        text += (
            f"; inside mpsv3, the `exited` event -> the `spawned` event takes p50 "
            f"{fmt_s(median(gaps))} (millisecond stamps): reaping, the exit and backoff "
            "decisions and their events, then the spawn of the replacement"
        )
    moves = [m for s in summary.anatomy(results, "respawn") for m in s.get("cgroup_move_s", [])]
    if moves:
        text += (
            f"; then the replacement joins its cgroup before it execs the service, and one move "
            f"into a cgroup costs p50 {fmt_s(median(moves))} on this kernel (an RCU grace "
            "period; the benchmark moves a sleeping process 10 times, 0.3 s apart): "
            "`MPSV3_CGROUPS=0` saves it and keeps the guarantees but one (README)"
        )
    return text + "."


def flood(results: dict[str, Any]) -> str:
    """The child's runtime against the floor, and the supervisor's CPU moving the lines."""
    mine = summary.logs(results, "mpsv3")
    floor = summary.logs(results, "floor")
    if mine is None or floor is None:
        return ""
    lines = results["settings"]["flood_lines"]
    text = (
        f"the child ran {fmt_s(mine['runtime_s'])} against {fmt_s(floor['runtime_s'])} with "
        f"stdout on /dev/null"
    )
    if mine.get("cpu_s") is not None:
        text += (
            f"; mpsv3 spent {fmt_s(mine['cpu_s'])} of CPU on its {lines:,} lines "
            f"({mine['cpu_s'] / lines * 1e6:.2f} µs a line: read, stamp, write to the log, copy "
            "to the console); a child waits whenever its pipe is full"
        )
    others = []
    for peer in results["peers"]:
        entry = summary.logs(results, peer) if peer != "mpsv3" else None
        if entry is not None and entry.get("cpu_s") is not None:
            others.append(f"{peer} {fmt_s(entry['cpu_s'])}")
    if others:
        text += f"; the peers' CPU for the same lines: {', '.join(others)}"
    return text + "."


def stop(results: dict[str, Any], size: int) -> str:
    """mpsv3's stop of N services, from its own events."""
    runs = [
        s
        for s in summary.samples(results, "cold_start", "mpsv3")
        if s.get("n") == size and "events_last_stopping_s" in s
    ]
    if not runs:
        return ""
    run = runs[0]
    exited = run.get("events_last_exited_s")
    text = (
        f"after the stop request mpsv3 signalled its first service at "
        f"{fmt_s(run['events_first_stopping_s'])} and its last at "
        f"{fmt_s(run['events_last_stopping_s'])}"
    )
    if exited is not None:
        text += f"; its last `exited` event (the child reaped) is stamped {fmt_s(exited)}"
    return text + f"; no child was left at {fmt_s(run.get('stop_s'))}."


def idle(results: dict[str, Any]) -> str:
    """How often each peer's supervisor woke while idle."""
    size = summary.idle_size(results)
    counts = []
    for peer in results["peers"]:
        sample = summary.idle(results, peer).get(size)
        if sample is not None and "wakeups_per_min" in sample:
            counts.append(f"{peer} {sample['wakeups_per_min']:.0f}")
    if not counts:
        return ""
    return (
        f"context switches of the supervisor's threads per 60 s at {size} services (each "
        f"wake-up is one): {', '.join(counts)}."
    )
