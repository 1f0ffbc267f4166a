"""The details section: every size, percentile and breakdown that the summary table condenses.

Pure functions of the results dict, like the rest of the report (``report`` puts them on the
page); mpsv3's own breakdown (phases, imports, memory by process) closes the section.
"""

from __future__ import annotations

from typing import Any

from benchmarks import summary
from benchmarks.fmt import fmt_cpu, fmt_mib, fmt_s, stop_cell


def _cold(results: dict[str, Any], peers: list[str]) -> list[str]:
    out = [
        "### Cold start and stop-all (medians)",
        "",
        "mpsv3 is started on the same config file again and again: `warm` starts find it "
        "unchanged (the usual case), `changed` starts follow an edit of the file; `plan cache` "
        "says whether the warm starts really reused the cached plan.",
        "",
        "| peer | N | runs | launch -> first child | launch -> all | stop -> none left "
        "| supervisor exit | supervisor CPU during start | plan cache |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for peer in peers:
        kinds = [("warm", "warm"), ("miss", "changed")] if peer == "mpsv3" else [("warm", "")]
        for cache, word in kinds:
            for size, entry in summary.cold_start(results, peer, cache=cache).items():
                name = f"{peer} ({word})" if word else peer
                stop = stop_cell(entry) if entry["stop_s"] or entry["stop_timeouts"] else "-"
                out.append(
                    f"| {name} | {size} | {entry['runs']} | {fmt_s(entry['first_s'])}"
                    f" | {fmt_s(entry['start_s'])} | {stop} | {fmt_s(entry['exit_s'])}"
                    f" | {fmt_s(entry['cpu_s'])} | {', '.join(entry['plan_entry']) or '-'} |"
                )
    return out


def _spreads(results: dict[str, Any], peers: list[str]) -> list[str]:
    out: list[str] = []
    for workload, key, title, extra in (
        ("respawn", "respawn_s", "Respawn after SIGKILL", ["floor"]),
        ("gate", "gate_s", "Dependency gate: ready -> dependent spawned", []),
        ("reload", "restarted_s", "Hot reload: save -> new PID", []),
        ("reload", "ready_s", "Hot reload: save -> new process ready", []),
    ):
        out += [
            "",
            f"### {title}",
            "",
            "| peer | samples | p50 | p90 | min | max | failed |",
            "|---|---|---|---|---|---|---|",
        ]
        for peer in [*extra, *peers]:
            found = summary.samples(results, workload, peer)
            spread = summary.spread(summary.values(found, key))
            if spread is None:
                continue
            failed = sum(1 for s in found if "error" in s)
            name = "floor (the benchmark starts a process itself)" if peer == "floor" else peer
            out.append(
                f"| {name} | {spread['count']:.0f} | {fmt_s(spread['p50'])} | {fmt_s(spread['p90'])}"
                f" | {fmt_s(spread['min'])} | {fmt_s(spread['max'])} | {failed} |"
            )
    return out


def _clients(results: dict[str, Any], peers: list[str]) -> list[str]:
    out = [
        "",
        "### Client commands: start of the client -> its exit",
        "",
        "| peer | command | samples | p50 | p90 | min | max | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for peer in ["floor", *peers]:
        for command, spread in summary.client(results, peer).items():
            out.append(
                f"| {peer} | {command} | {spread['count']:.0f} | {fmt_s(spread['p50'])}"
                f" | {fmt_s(spread['p90'])} | {fmt_s(spread['min'])} | {fmt_s(spread['max'])}"
                f" | {spread['failed']:.0f} |"
            )
    return out


def _idle(results: dict[str, Any], peers: list[str]) -> list[str]:
    out = [
        "",
        "### Idle overhead",
        "",
        "| peer | N | window | CPU | CPU per 60 s | wake-ups per 60 s | RSS | PSS | processes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for peer in peers:
        for size, sample in sorted(summary.idle(results, peer).items()):
            woke = sample.get("wakeups_per_min")
            out.append(
                f"| {peer} | {size} | {sample['window_s']:.0f} s | {fmt_cpu(sample['cpu_s'])}"
                f" | {fmt_cpu(sample['cpu_s_per_min'])} | {'-' if woke is None else f'{woke:.0f}'}"
                f" | {fmt_mib(sample['rss_bytes'])} | {fmt_mib(sample['pss_bytes'])}"
                f" | {sample['processes']} |"
            )
    return out


def _flood(results: dict[str, Any], peers: list[str]) -> list[str]:
    out = [
        "",
        "### Log flood",
        "",
        "| peer | runs | child runtime (median) | supervisor CPU | log complete after the child "
        "ended | runs with every line whole | worst: lines whole | worst: missing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for peer in ["floor", *peers]:
        entry = summary.logs(results, peer)
        if entry is None:
            continue
        if entry["checked_runs"]:
            checked = (
                f"{entry['complete_runs']} of {entry['checked_runs']} | {entry['worst_whole']:,}"
                f" | {entry['worst_missing']:,}"
            )
        else:
            checked = "- | - | -"
        out.append(
            f"| {peer} | {entry['runs']} | {fmt_s(entry['runtime_s'])} | {fmt_s(entry['cpu_s'])}"
            f" | {fmt_s(entry['drain_s'])} | {checked} |"
        )
    return out


def _anatomy(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    phases = summary.phases(results)
    if phases is not None:
        out += [
            "",
            f"### mpsv3: a warm start of {phases['n']:.0f} services, phase by phase (medians)",
            "",
            "| launch -> `mpsv3.engine` exists | -> first child | -> all children |",
            "|---|---|---|",
            f"| {fmt_s(phases['engine_s'])} | {fmt_s(phases['first_s'] - phases['engine_s'])}"
            f" | {fmt_s(phases['all_s'] - phases['first_s'])} |",
        ]
    profiles = summary.imports(results)
    if profiles:
        out += [
            "",
            "### mpsv3: imports under `-X importtime` (self time summed per package)",
            "",
            "| process | modules | total | largest packages | third-party libraries (imported by) |",
            "|---|---|---|---|---|",
        ]
        for process, profile in profiles.items():
            top = ", ".join(f"{t['package']} {t['self_us'] / 1000:.0f} ms" for t in profile["top"])
            libs = ", ".join(f"{k} ({v})" for k, v in profile["third_party"].items()) or "none"
            out.append(
                f"| {process} | {profile['modules']} | {profile['total_us'] / 1000:.0f} ms"
                f" | {top} | {libs} |"
            )
    return out + _memory_by_process(results)


def _memory_by_process(results: dict[str, Any]) -> list[str]:
    size = summary.idle_size(results)
    sample = summary.idle(results, "mpsv3").get(size)
    if sample is None or not sample.get("per_process"):
        return []
    out = [
        "",
        f"### mpsv3: memory by process and mapping at {size} idle services (`/proc/PID/smaps`)",
        "",
        "| process | RSS | PSS | largest mappings (RSS) |",
        "|---|---|---|---|",
    ]
    for proc in sample["per_process"]:
        maps = ", ".join(
            f"{m['name']} {fmt_mib(m['rss_bytes'])}" for m in proc.get("mappings", [])
        )
        out.append(
            f"| {proc['name']} | {fmt_mib(proc['rss_bytes'])} | {fmt_mib(proc['pss_bytes'])}"
            f" | {maps or '-'} |"
        )
    return out


def detail_tables(results: dict[str, Any]) -> str:
    """Every size and percentile, per workload, then mpsv3's breakdown and failed samples."""
    peers = list(results["peers"])
    out = _cold(results, peers) + _spreads(results, peers) + _clients(results, peers)
    out += _idle(results, peers) + _flood(results, peers) + _anatomy(results)
    errors = [s for s in results["samples"] if "error" in s]
    if errors:
        out += ["", "### Failed samples", ""]
        out += [
            f"- {s['peer']} {s['workload']} {summary.label(s)}: {s['error']}" for s in errors[:30]
        ]
    return "\n".join(out)
