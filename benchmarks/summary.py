"""From raw samples to the numbers the report shows: medians, p50/p90, linear fits, checks.

Pure functions over the results dict that the entry point writes as JSON, so a saved run can be
summarized again (``--report FILE``) and the numbers in the docs can be traced back to samples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from benchmarks.stats import LineFit, fit_line, median, percentile

Sample = dict[str, Any]

#: Sample fields that must be a positive number of seconds in a sane sample.
POSITIVE = frozenset(
    {
        "start_s", "first_s", "stop_s", "exit_s", "respawn_s", "restarted_s", "ready_s",
        "runtime_s", "wall_s", "engine_s", "all_s",
    }
)
#: Fields that may be 0: CPU time is counted in clock ticks, event times in milliseconds.
NON_NEGATIVE = frozenset(
    {"gate_s", "cpu_s", "cpu_s_per_min", "supervisor_cpu_s", "drain_s", "wakeups", "total_us"}
)


def samples(results: dict[str, Any], workload: str, peer: str | None = None) -> list[Sample]:
    """The samples of one workload (and peer), errors included."""
    return [
        sample
        for sample in results["samples"]
        if sample["workload"] == workload and (peer is None or sample["peer"] == peer)
    ]


def values(found: Iterable[Sample], key: str, **where: Any) -> list[float]:
    """``key`` of every sample that has a number there and matches ``where``."""
    out = []
    for sample in found:
        if all(sample.get(name) == wanted for name, wanted in where.items()):
            value = sample.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append(float(value))
    return out


def spread(numbers: list[float]) -> dict[str, float] | None:
    """p50, p90, min, max and count, or None for no numbers."""
    if not numbers:
        return None
    return {
        "p50": percentile(numbers, 0.5),
        "p90": percentile(numbers, 0.9),
        "min": min(numbers),
        "max": max(numbers),
        "count": float(len(numbers)),
    }


def cold_start(
    results: dict[str, Any], peer: str, cache: str = "warm"
) -> dict[int, dict[str, Any]]:
    """Per N: median launch->all, launch->first, stop->none, exits, and stops that timed out.

    Args:
        cache: for a peer with a plan cache (mpsv3), which starts: ``warm`` (the config
            unchanged since the last start, the usual case) or ``miss`` (right after it
            changed). A peer without one has a single kind of start, shown for both.
    """
    found = [
        s
        for s in samples(results, "cold_start", peer)
        if s.get("plan_cache", cache) == cache
    ]
    by_size: dict[int, dict[str, Any]] = {}
    for size in sorted({int(s["n"]) for s in found if "n" in s}):
        runs = [s for s in found if s.get("n") == size]
        starts = values(runs, "start_s")
        stops = values(runs, "stop_s")
        exits = values(runs, "exit_s")
        cpu = values(runs, "supervisor_cpu_s")
        firsts = values(runs, "first_s")
        by_size[size] = {
            "start_s": median(starts) if starts else None,
            "first_s": median(firsts) if firsts else None,
            "plan_entry": sorted({str(s["plan_entry"]) for s in runs if "plan_entry" in s}),
            "stop_s": median(stops) if stops else None,
            "exit_s": median(exits) if exits else None,
            "cpu_s": median(cpu) if cpu else None,
            "runs": len(runs),
            "stop_timeouts": sum(1 for s in runs if "stop_timeout_s" in s),
            "left_at_timeout": max((int(s.get("left", 0)) for s in runs), default=0),
            "stop_cap_s": max((float(s.get("stop_timeout_s", 0)) for s in runs), default=0.0),
            "errors": [s["error"] for s in runs if "error" in s],
        }
    return by_size


def idle(results: dict[str, Any], peer: str) -> dict[int, Sample]:
    """Per N: the idle sample (one window per size)."""
    out: dict[int, Sample] = {}
    for sample in samples(results, "idle", peer):
        if "n" in sample and "error" not in sample:
            out[int(sample["n"])] = sample
    return out


def idle_size(results: dict[str, Any]) -> int:
    """The idle size the summary shows: 50 (the issue's), else the largest measured."""
    sizes = results["settings"]["idle_sizes"]
    return 50 if 50 in sizes else max(sizes)


def logs(results: dict[str, Any], peer: str) -> dict[str, Any] | None:
    """Median child runtime and the worst line check over the flood's repetitions."""
    runs = [s for s in samples(results, "logs", peer) if "error" not in s]
    runtimes = values(runs, "runtime_s")
    drains = values(runs, "drain_s")
    if not runtimes:
        return None
    checked = [s for s in runs if "lines_whole" in s]
    cpu = values(runs, "supervisor_cpu_s")
    return {
        "runtime_s": median(runtimes),
        "cpu_s": median(cpu) if cpu else None,
        "drain_s": median(drains) if drains else None,
        "runs": len(runs),
        "complete_runs": sum(1 for s in checked if s.get("complete")),
        "checked_runs": len(checked),
        "worst_missing": max((int(s["missing"]) for s in checked), default=0),
        "worst_whole": min((int(s["lines_whole"]) for s in checked), default=0),
    }


def client(results: dict[str, Any], peer: str) -> dict[str, dict[str, float]]:
    """Per client command (or floor interpreter): p50, p90, min, max and count of wall time."""
    out: dict[str, dict[str, float]] = {}
    found = samples(results, "client", peer)
    answered = [s for s in found if "error" not in s]
    for command in sorted({str(s["command"]) for s in found if "command" in s}):
        spread_ = spread(values(answered, "wall_s", command=command))
        if spread_ is not None:
            spread_["failed"] = float(
                sum(1 for s in found if s.get("command") == command and "error" in s)
            )
            out[command] = spread_
    return out


def anatomy(results: dict[str, Any], part: str) -> list[Sample]:
    """mpsv3's breakdown samples of one ``part`` (phases, imports, respawn), errors excluded."""
    return [
        s
        for s in samples(results, "anatomy", "mpsv3")
        if s.get("part") == part and "error" not in s
    ]


def phases(results: dict[str, Any]) -> dict[str, float] | None:
    """Median launch -> supervisor process, -> first child, -> all children (s), and N."""
    found = anatomy(results, "phases")
    if not found:
        return None
    out = {key: median(values(found, key)) for key in ("engine_s", "first_s", "all_s")}
    out["n"] = float(found[0]["n"])
    return out


def imports(results: dict[str, Any]) -> dict[str, Sample]:
    """Import profile per process (``up``, ``engine``) and client command (``status``...)."""
    return {str(s["process"]): s for s in anatomy(results, "imports")}


def scale(results: dict[str, Any], peer: str) -> dict[str, LineFit | None]:
    """Least-squares lines over N: cold start time, idle CPU per minute, RSS and PSS."""
    fits: dict[str, LineFit | None] = {}
    cold = [
        s
        for s in samples(results, "cold_start", peer)
        if isinstance(s.get("start_s"), float) and s.get("plan_cache", "warm") == "warm"
    ]
    fits["start_s"] = _fit([s["n"] for s in cold], [s["start_s"] for s in cold])
    quiet = list(idle(results, peer).values())
    for key in ("cpu_s_per_min", "rss_bytes", "pss_bytes"):
        fits[key] = _fit([s["n"] for s in quiet], [s[key] for s in quiet])
    return fits


def _fit(xs: list[float], ys: list[float]) -> LineFit | None:
    try:
        return fit_line(xs, ys)
    except ValueError:
        return None


def sanity_problems(results: dict[str, Any], peer: str = "mpsv3") -> list[str]:
    """What is wrong with ``peer``'s own samples (empty: sane). CI checks mpsv3 this way.

    Sane means: every workload the peer supports produced samples, none has an error, every
    time is positive, every cold start saw all N children, and the log flood arrived whole.
    """
    problems = []
    mine = [s for s in results["samples"] if s["peer"] == peer]
    if not mine:
        return [f"no samples for {peer}"]
    not_applicable = {item["workload"] for item in results.get("na", []) if item["peer"] == peer}
    for workload in results.get("workloads", []):
        if workload not in not_applicable and not any(s["workload"] == workload for s in mine):
            problems.append(f"{workload}: no samples")
    for sample in mine:
        where = f"{sample['workload']} {label(sample)}"
        if "error" in sample:
            problems.append(f"{where}: {sample['error']}")
            continue
        for key, value in sample.items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key in POSITIVE and not (number and value > 0):
                problems.append(f"{where}: {key} = {value!r}")
            if key in NON_NEGATIVE and not (number and value >= 0):
                problems.append(f"{where}: {key} = {value!r}")
        if sample["workload"] == "cold_start" and sample.get("children_seen") != sample.get("n"):
            problems.append(f"{where}: saw {sample.get('children_seen')} of {sample.get('n')}")
        if sample["workload"] == "logs" and sample.get("complete") is not True:
            problems.append(f"{where}: {sample.get('missing')} lines missing or cut")
        if sample["workload"] == "idle" and not sample.get("rss_bytes"):
            problems.append(f"{where}: no memory measured")
    problems += _missing_parts(results, mine)
    return problems


#: workload -> the field that names its parts, and the parts mpsv3 must have.
EXPECTED_PARTS = {
    "client": ("command", {"status", "logs", "restart"}),
    "anatomy": ("process", {"up", "engine", "status", "logs", "restart"}),
}


def _missing_parts(results: dict[str, Any], mine: list[Sample]) -> list[str]:
    """The client commands and the import profiles that produced no sample."""
    problems = []
    for workload, (field, wanted) in EXPECTED_PARTS.items():
        if workload not in results.get("workloads", []):
            continue
        seen = {str(s.get(field)) for s in mine if s["workload"] == workload}
        problems += [f"{workload}: no {field} {name}" for name in sorted(wanted - seen)]
    return problems


def label(sample: Sample) -> str:
    keys = ("n", "rep", "link", "service", "command", "part", "process")
    parts = [f"{key}={sample[key]}" for key in keys if key in sample]
    return " ".join(parts)
