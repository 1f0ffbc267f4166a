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
from benchmarks.details import detail_tables
from benchmarks.fmt import fmt_cpu, fmt_mib, fmt_s, stop_cell
from benchmarks.stats import LineFit

SCHEMA = 2


class Table:
    """Summary rows by peer, with numbered footnotes for "n/a" and "not run" cells."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.peers: list[str] = list(results["peers"])
        self.rows: list[tuple[str, dict[str, str]]] = []
        self.notes: list[str] = []

    def na(self, workload: str, peer: str, part: str | None = None) -> str | None:
        """The cell for a peer that did not run ``workload`` (with a footnote), else None.

        ``part`` names a piece of a workload that a peer may lack on its own (a client
        command: ``client_logs``).
        """
        missing = self.results.get("missing_peers", {})
        if peer in missing:
            return self._note(f"{peer}: not run: {missing[peer]}", "not run")
        for item in self.results.get("na", []):
            if item["peer"] == peer and item["workload"] in (workload, part):
                return self._note(f"{peer}, {item['workload']}: {item['reason']}", "n/a")
        if workload not in self.results.get("workloads", []):
            return "not run"
        return None

    def _note(self, text: str, word: str) -> str:
        if text not in self.notes:
            self.notes.append(text)
        return f"{word} [{self.notes.index(text) + 1}]"

    def add(
        self, label: str, workload: str, cells: dict[str, str], part: str | None = None
    ) -> None:
        row = {}
        for peer in self.peers:
            row[peer] = self.na(workload, peer, part) or cells.get(peer, "-")
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


def _start_rows(table: Table, results: dict[str, Any]) -> None:
    """Cold start per N (mpsv3: warm, and after a config change), first spawn, stop-all."""
    peers = table.peers
    cold = {peer: summary.cold_start(results, peer) for peer in peers}
    changed = summary.cold_start(results, "mpsv3", cache="miss")
    for size in results["settings"]["cold_sizes"]:
        cells = {p: fmt_s(cold[p].get(size, {}).get("start_s")) for p in peers}
        if "mpsv3" in cells and changed.get(size, {}).get("start_s") is not None:
            cells["mpsv3"] += f" (config changed: {fmt_s(changed[size]['start_s'])})"
        table.add(f"cold start N={size}: launch -> all children", "cold_start", cells)
    first = min(results["settings"]["cold_sizes"])
    table.add(
        f"first spawn N={first}: launch -> first child",
        "cold_start",
        {p: fmt_s(cold[p].get(first, {}).get("first_s")) for p in peers},
    )
    for size in results["settings"]["cold_sizes"]:
        table.add(
            f"stop-all N={size}: -> none left (one run)",
            "cold_start",
            {p: stop_cell(cold[p].get(size)) for p in peers},
        )


def _client_rows(table: Table, results: dict[str, Any]) -> None:
    """One row per client command; the first names the bare interpreters' start."""
    peers = table.peers
    floors = summary.client(results, "floor")
    floor_text = ", ".join(
        f"{FLOOR_COMMANDS.get(name, name)}: {fmt_s(spread['p50'])}" for name, spread in floors.items()
    )
    for command, words in CLIENT_ROWS:
        label = f"client `{words}`, p50" + (f" ({floor_text})" if floor_text else "")
        table.add(
            label,
            "client",
            {p: _client_cell(summary.client(results, p).get(command)) for p in peers},
            part=f"client_{command}",
        )
        floor_text = ""


def summary_table(results: dict[str, Any]) -> Table:
    """The one table of the issue: every workload, one column per supervisor."""
    table = Table(results)
    peers = table.peers
    _start_rows(table, results)
    _client_rows(table, results)
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
        f"idle N={size}: supervisor wake-ups per 60 s",
        "idle",
        {
            p: "-" if q is None or "wakeups_per_min" not in q else f"{q['wakeups_per_min']:.0f}"
            for p, q in quiet.items()
        },
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


#: The client rows: command key and what the mpsv3 command is.
CLIENT_ROWS = (("status", "status"), ("logs", "logs ID -n 5"), ("restart", "restart ID"))
FLOOR_COMMANDS = {"python": "python -c pass", "node": "node -e 0"}


def _client_cell(spread: dict[str, float] | None) -> str:
    if spread is None:
        return "-"
    failed = f" ({spread['failed']:.0f} failed)" if spread.get("failed") else ""
    return fmt_s(spread["p50"]) + failed


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
        ".venv/bin/python -m benchmarks --write-docs   # full run: installs the peers, < 25 min on 2 cores",
        ".venv/bin/python -m benchmarks --quick        # CI size, about 1 min (mpsv3 alone)",
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
