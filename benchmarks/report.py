"""The run's outputs: the JSON of every raw sample, the markdown tables, and docs/benchmarks.md.

Why generated: the issue's rule is that the table in the docs is produced by the command, never
typed, so the same functions print the table after a run and write the docs page from the saved
JSON (``python -m benchmarks --report FILE --write-docs`` re-renders without re-measuring).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import explain, summary, targets
from benchmarks.fmt import fmt_cpu, fmt_mib, fmt_s, stop_cell
from benchmarks.stats import LineFit

SCHEMA = 1


class Table:
    """Summary rows by peer, with numbered footnotes for "n/a" and "not run" cells."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.peers: list[str] = list(results["peers"])
        self.rows: list[tuple[str, dict[str, str]]] = []
        self.notes: list[str] = []

    def na(self, workload: str, peer: str) -> str | None:
        """The cell for a peer that did not run ``workload`` (with a footnote), else None."""
        missing = self.results.get("missing_peers", {})
        if peer in missing:
            return self._note(f"{peer}: not run: {missing[peer]}", "not run")
        for item in self.results.get("na", []):
            if item["peer"] == peer and item["workload"] == workload:
                return self._note(f"{peer}, {workload}: {item['reason']}", "n/a")
        if workload not in self.results.get("workloads", []):
            return "not run"
        return None

    def _note(self, text: str, word: str) -> str:
        if text not in self.notes:
            self.notes.append(text)
        return f"{word} [{self.notes.index(text) + 1}]"

    def add(self, label: str, workload: str, cells: dict[str, str]) -> None:
        row = {}
        for peer in self.peers:
            row[peer] = self.na(workload, peer) or cells.get(peer, "-")
        self.rows.append((label, row))

    def markdown(self) -> str:
        head = "| | " + " | ".join(self.peers) + " |"
        rule = "|---|" + "---|" * len(self.peers)
        lines = [head, rule]
        lines += [
            f"| {label} | " + " | ".join(row[p] for p in self.peers) + " |"
            for label, row in self.rows
        ]
        if self.notes:
            lines.append("")
            lines += [f"[{index}] {text}  " for index, text in enumerate(self.notes, start=1)]
        return "\n".join(lines)


def summary_table(results: dict[str, Any]) -> Table:
    """The one table of the issue: every workload, one column per supervisor."""
    table = Table(results)
    peers = table.peers
    cold = {peer: summary.cold_start(results, peer) for peer in peers}
    for size in results["settings"]["cold_sizes"]:
        table.add(
            f"cold start N={size}: launch -> all children",
            "cold_start",
            {p: fmt_s(cold[p].get(size, {}).get("start_s")) for p in peers},
        )
    for size in results["settings"]["cold_sizes"]:
        table.add(
            f"stop-all N={size}: -> none left (one run)",
            "cold_start",
            {p: stop_cell(cold[p].get(size)) for p in peers},
        )
    table.add(
        "respawn after SIGKILL, p50 / p90",
        "respawn",
        {p: _p50_p90(results, "respawn", p, "respawn_s") for p in peers},
    )
    table.add(
        "dependency ready -> dependent spawned, p50 / p90",
        "gate",
        {p: _p50_p90(results, "gate", p, "gate_s") for p in peers},
    )
    table.add(
        "hot reload: save -> new process ready, p50 / p90",
        "reload",
        {p: _p50_p90(results, "reload", p, "ready_s") for p in peers},
    )
    size = summary.idle_size(results)
    quiet = {peer: summary.idle(results, peer).get(size) for peer in peers}
    table.add(
        f"idle N={size}: supervisor CPU per 60 s",
        "idle",
        {p: "-" if q is None else fmt_cpu(q["cpu_s_per_min"]) for p, q in quiet.items()},
    )
    table.add(
        f"idle N={size}: memory RSS / PSS",
        "idle",
        {
            p: "-" if q is None else f"{fmt_mib(q['rss_bytes'])} / {fmt_mib(q['pss_bytes'])}"
            for p, q in quiet.items()
        },
    )
    floor = summary.logs(results, "floor")
    floor_text = fmt_s(floor["runtime_s"]) if floor else "-"
    lines = results["settings"]["flood_lines"]
    table.add(
        f"{lines:,} lines flood: child runtime (floor {floor_text})",
        "logs",
        {p: _flood_cell(summary.logs(results, p), lines) for p in peers},
    )
    table.add(
        "scale: cold start cost per service",
        "cold_start",
        {p: _fit_cell(summary.scale(results, p)["start_s"], 1000, "ms") for p in peers},
    )
    table.add(
        "scale: idle CPU per service per 60 s",
        "idle",
        {p: _fit_cell(summary.scale(results, p)["cpu_s_per_min"], 1000, "ms") for p in peers},
    )
    table.add(
        "scale: memory (PSS) per service",
        "idle",
        {p: _fit_cell(summary.scale(results, p)["pss_bytes"], 1 / 1024, "KiB") for p in peers},
    )
    return table


def _p50_p90(results: dict[str, Any], workload: str, peer: str, key: str) -> str:
    found = summary.samples(results, workload, peer)
    spread = summary.spread(summary.values(found, key))
    failed = sum(1 for s in found if "error" in s)
    if spread is None:
        return f"failed ({failed})" if failed else "-"
    text = f"{fmt_s(spread['p50'])} / {fmt_s(spread['p90'])}"
    return text + (f" ({failed} failed)" if failed else "")


def _flood_cell(entry: dict[str, Any] | None, lines: int) -> str:
    if entry is None:
        return "-"
    if entry["complete_runs"] == entry["checked_runs"]:
        whole = "all lines whole"
    else:
        whole = f"{entry['worst_missing']:,} of {lines:,} lost or cut"
    drain = entry.get("drain_s")
    late = f", log complete {fmt_s(drain)} after the child" if drain and drain >= 0.05 else ""
    return f"{fmt_s(entry['runtime_s'])}, {whole}{late}"


def _fit_cell(fit: LineFit | None, factor: float, unit: str) -> str:
    if fit is None:
        return "-"
    shape = (
        f"linear, R² {fit.r2:.2f}"
        if fit.is_linear()
        else (f"R² {fit.r2:.2f}" if fit.points >= 3 else f"{fit.points} sizes")
    )
    return f"{fit.slope * factor:+.2f} {unit} ({shape})"


def detail_tables(results: dict[str, Any]) -> str:
    """Every size and percentile, per workload: what the summary table condenses."""
    peers = list(results["peers"])
    out = [
        "### Cold start and stop-all (medians)",
        "",
        "| peer | N | runs | launch -> all | stop -> none left | supervisor exit | supervisor CPU during start |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer in peers:
        for size, entry in summary.cold_start(results, peer).items():
            out.append(
                f"| {peer} | {size} | {entry['runs']} | {fmt_s(entry['start_s'])} | {stop_cell(entry)}"
                f" | {fmt_s(entry['exit_s'])} | {fmt_s(entry['cpu_s'])} |"
            )
    for workload, key, title in (
        ("respawn", "respawn_s", "Respawn after SIGKILL"),
        ("gate", "gate_s", "Dependency gate: ready -> dependent spawned"),
        ("reload", "restarted_s", "Hot reload: save -> new PID"),
        ("reload", "ready_s", "Hot reload: save -> new process ready"),
    ):
        out += [
            "",
            f"### {title}",
            "",
            "| peer | samples | p50 | p90 | min | max | failed |",
            "|---|---|---|---|---|---|---|",
        ]
        for peer in peers:
            found = summary.samples(results, workload, peer)
            spread = summary.spread(summary.values(found, key))
            if spread is None:
                continue
            failed = sum(1 for s in found if "error" in s)
            out.append(
                f"| {peer} | {spread['count']:.0f} | {fmt_s(spread['p50'])} | {fmt_s(spread['p90'])}"
                f" | {fmt_s(spread['min'])} | {fmt_s(spread['max'])} | {failed} |"
            )
    out += [
        "",
        "### Idle overhead",
        "",
        "| peer | N | window | CPU | CPU per 60 s | RSS | PSS | processes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for peer in peers:
        for size, sample in sorted(summary.idle(results, peer).items()):
            out.append(
                f"| {peer} | {size} | {sample['window_s']:.0f} s | {fmt_cpu(sample['cpu_s'])}"
                f" | {fmt_cpu(sample['cpu_s_per_min'])} | {fmt_mib(sample['rss_bytes'])}"
                f" | {fmt_mib(sample['pss_bytes'])} | {sample['processes']} |"
            )
    out += [
        "",
        "### Log flood",
        "",
        "| peer | runs | child runtime (median) | log complete after the child ended | runs with every line whole | worst: lines whole | worst: missing |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer in ["floor", *peers]:
        flood = summary.logs(results, peer)
        if flood is None:
            continue
        entry = flood
        if entry["checked_runs"]:
            checked = (
                f"{entry['complete_runs']} of {entry['checked_runs']} | {entry['worst_whole']:,}"
                f" | {entry['worst_missing']:,}"
            )
        else:
            checked = "- | - | -"
        out.append(
            f"| {peer} | {entry['runs']} | {fmt_s(entry['runtime_s'])}"
            f" | {fmt_s(entry['drain_s'])} | {checked} |"
        )
    errors = [s for s in results["samples"] if "error" in s]
    if errors:
        out += ["", "### Failed samples", ""]
        out += [
            f"- {s['peer']} {s['workload']} {summary._label(s)}: {s['error']}" for s in errors[:30]
        ]
    return "\n".join(out)


def markdown(results: dict[str, Any]) -> str:
    """What the command prints: the summary table, its notes, and the details."""
    return summary_table(results).markdown() + "\n\n" + detail_tables(results) + "\n"


def write_json(results: dict[str, Any], directory: Path) -> Path:
    """``<directory>/bench-<started>.json`` and ``latest.json``; returns the first."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "")
    path = directory / f"bench-{stamp}.json"
    text = json.dumps(results, indent=1, sort_keys=False)
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path


def docs_page(results: dict[str, Any]) -> str:
    """The whole docs/benchmarks.md: machine, versions, command, the table, and why."""
    machine = results["machine"]
    versions = results["versions"]
    mode = "quick (CI size)" if results["quick"] else "full"
    parts = [
        "# Benchmarks: mpsv3 beside supervisord, circus, honcho and PM2",
        "",
        f"Generated by `{results['command']}` on {results['started_at']} ({mode} run, "
        f"{results['duration_s'] / 60:.1f} min). Do not edit by hand: rerun the command.",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cores']} cores, {machine['cpu_model']}; memory {machine['memory_gib']:.0f} GiB",
        f"- OS: {machine['os']}, kernel {machine['kernel']}",
        f"- Python {machine['python']} (mpsv3 and the Python children), Node {machine['node']} (PM2)",
        "- Peers: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
    ]
    if results.get("note"):
        parts += ["", f"Note: {results['note']}"]
    parts += [
        "",
        "## Reproduce",
        "",
        "```",
        ".venv/bin/python -m benchmarks --write-docs   # full run: installs the peers, < 15 min on 2 cores",
        ".venv/bin/python -m benchmarks --quick        # CI size, < 2 min",
        "```",
        "",
        "The peers are installed into `~/.cache/mpsv3-bench` (`MPSV3_BENCH_CACHE` overrides it):",
        "supervisor, circus and honcho from PyPI in their own venv, PM2 from the npm registry with a",
        "private `PM2_HOME` per launch. Every raw sample is in `benchmarks/results/`.",
        "",
        "## Results (medians unless p50 / p90 is named)",
        "",
        summary_table(results).markdown(),
        "",
        "## mpsv3 against its targets",
        "",
        targets.section(results),
        "",
        "## Why each number is what it is",
        "",
        explain.why(results),
        "",
        "## How it is measured",
        "",
        explain.method(results),
        "",
        "## Details",
        "",
        detail_tables(results),
        "",
    ]
    return "\n".join(parts)
