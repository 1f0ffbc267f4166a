"""The benchmark's quick mode against mpsv3 alone: it completes, and its output has the right shape.

CI runs this instead of the full benchmark: it checks that ``python -m benchmarks`` works end to
end (config writing, launches, ``/proc`` scanning, every workload, mpsv3's own breakdown, the
JSON, the markdown and the docs page with its targets table) and that mpsv3's own numbers make
sense (positive times, every child seen, every log line whole once its stamp is stripped). It
never checks a timing threshold: the machine is shared. The peers are not installed here; the
targets table's logic is checked on a made-up run beside a made-up peer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO))

from benchmarks import footprint, importtime, targets  # noqa: E402
from benchmarks.adapters.mpsv3 import STAMP  # noqa: E402
from benchmarks.fmt import fmt_s  # noqa: E402
from benchmarks.logflood import check_flood_log  # noqa: E402
from benchmarks.stats import fit_line, percentile  # noqa: E402
from benchmarks.summary import sanity_problems  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")

PAYLOAD = "abcdefghijklmnopqrstuvwxyz0123"


def _quick_run(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    results_dir = tmp_path / "results"
    docs = tmp_path / "benchmarks.md"
    argv = [
        sys.executable, "-m", "benchmarks", "--quick", "--peers", "mpsv3", "--sizes", "5,10",
        "--idle-seconds", "1", "--results-dir", str(results_dir), "--write-docs",
        "--docs-path", str(docs), "--check", "--quiet",
    ]
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((results_dir / "latest.json").read_text())
    return done, results, docs.read_text()


def test_quick_run_of_mpsv3_is_sane_and_complete(tmp_path: Path) -> None:
    done, results, page = _quick_run(tmp_path)
    assert sanity_problems(results) == []
    assert results["leftovers"] == []
    mine = [s for s in results["samples"] if s["peer"] == "mpsv3"]

    cold = [s for s in mine if s["workload"] == "cold_start"]
    kinds = sorted((s["n"], s["plan_cache"]) for s in cold)
    assert kinds == [(5, "miss"), (5, "warm"), (10, "miss"), (10, "warm")]
    assert all(s["children_seen"] == s["n"] and 0 < s["first_s"] <= s["start_s"] for s in cold)
    assert all(s["plan_entry"] in ("reused", "stored", "none", "unknown") for s in cold)
    warm_stops = [s for s in cold if s["plan_cache"] == "warm"]
    assert all(s["stop_s"] > 0 and s["events_last_stopping_s"] >= 0 for s in warm_stops)

    respawns = [s["respawn_s"] for s in mine if s["workload"] == "respawn"]
    assert len(respawns) == results["settings"]["respawn_reps"]
    floor = [s for s in results["samples"] if s["peer"] == "floor"]
    assert {s["workload"] for s in floor} == {"logs", "respawn", "client"}

    clients = [s for s in mine if s["workload"] == "client"]
    reps = results["settings"]["client_reps"]
    for command in ("status", "logs", "restart"):
        walls = [s["wall_s"] for s in clients if s["command"] == command]
        assert len(walls) == reps and all(wall > 0 for wall in walls)

    flood = [s for s in mine if s["workload"] == "logs"]
    assert flood and all(s["complete"] and s["lines_whole"] == 200_000 for s in flood)
    assert all(s["supervisor_cpu_s"] >= 0 for s in flood)

    idle = [s for s in mine if s["workload"] == "idle"]
    assert sorted(s["n"] for s in idle) == [5, 10]
    for sample in idle:
        names = {proc["name"] for proc in sample["per_process"]}
        assert {"keeper.py", "mpsv3.engine"} <= names, names
        assert sample["wakeups"] >= 0 and sample["rss_bytes"] > 0
        assert all(proc["mappings"] for proc in sample["per_process"])

    anatomy = [s for s in mine if s["workload"] == "anatomy"]
    phases = [s for s in anatomy if s["part"] == "phases"]
    assert phases and all(0 < s["engine_s"] <= s["first_s"] <= s["all_s"] for s in phases)
    profiles = {s["process"]: s for s in anatomy if s["part"] == "imports"}
    assert set(profiles) == {"up", "engine", "status", "logs", "restart"}
    assert all(p["modules"] > 10 and p["total_us"] > 0 for p in profiles.values())
    assert "mpsv3" not in " ".join(profiles["up"]["third_party"])

    assert "| cold start N=10: launch -> all children |" in done.stdout
    assert "| first spawn N=5: launch -> first child |" in done.stdout
    assert "### mpsv3: imports under `-X importtime`" in done.stdout
    assert "## Machine" in page and "## Why each number is what it is" in page
    table = page.split("## mpsv3 against its targets", 1)[1].split("## Why each number", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 10, rows  # the header, then every target of the issue
    verdicts = [row.rsplit("|", 2)[-2].strip() for row in rows[1:]]
    assert all(re.match(r"met|missed|not measured|no limit", v) for v in verdicts), verdicts


def test_flood_log_check_strips_the_stamp_and_finds_cut_and_missing_lines(tmp_path: Path) -> None:
    log = tmp_path / "flood.log"
    stamp = "2026-12-01T15:04:05.123Z "
    lines = [f"{stamp}L{index:06d} {PAYLOAD}" for index in range(6)]
    lines[2] = f"{stamp}L000002 {PAYLOAD[:10]}"  # cut short
    lines[3] = f"{stamp[:10]}L000003 {PAYLOAD}"  # a torn stamp
    lines[4] = f"{stamp}L000004 {PAYLOAD}L000005 {PAYLOAD}"  # two records run together
    lines[5] = lines[0]  # a duplicate
    log.write_text("\n".join(lines) + "\n")
    checked = check_flood_log(log, expected=6, prefix=STAMP)
    assert checked == {"lines_whole": 3, "missing": 4, "duplicates": 1, "complete": False}
    log.write_text("".join(f"{stamp}L{index:06d} {PAYLOAD}\n" for index in range(3)))
    assert check_flood_log(log, expected=3, prefix=STAMP)["complete"] is True
    assert check_flood_log(log, expected=3)["complete"] is False  # the stamp is not a record
    assert len(stamp) == 25 and STAMP.fullmatch(stamp)


def test_importtime_blocks_split_processes_and_sum_self_time_by_package() -> None:
    text = "\n".join(
        [
            importtime.HEADER,
            "import time:       100 |        100 |     pydantic.fields",
            "import time:       200 |        300 |   pydantic",
            "import time:        50 |        350 | mpsv3.config.schema",
            "12:00:00 mpsv3 | a line of the supervisor between two processes",
            importtime.HEADER,
            "import time:        70 |         70 | asyncio",
        ]
    )
    up, engine = importtime.blocks(text)
    assert importtime.total_us(up) == 350 and importtime.total_us(engine) == 70
    assert importtime.by_package(up) == {"pydantic": 300, "mpsv3.config": 50}
    assert importtime.importers(up) == {"pydantic": "mpsv3.config.schema"}
    assert importtime.summary(engine)["third_party"] == {}


def test_footprint_reads_our_own_process() -> None:
    rollup = footprint.memory_rollup(os.getpid())
    assert rollup is not None and rollup[0] >= rollup[1] > 0
    found = footprint.mappings(os.getpid())
    assert found and sum(m.rss for m in found) == pytest.approx(rollup[0], rel=0.2)
    assert any(m.name == "[anon]" for m in found)
    before = {os.getpid(): footprint.context_switches(os.getpid())}
    os.sched_yield()
    subprocess.run(["true"], check=True)  # waiting for a child is a voluntary switch
    after = {os.getpid(): footprint.context_switches(os.getpid())}
    assert footprint.wakeups(before, after) >= 1
    assert footprint.describe(os.getpid()) == "pytest"  # `.venv/bin/pytest` or `-m pytest`


def _made_up_run() -> dict[str, Any]:
    """mpsv3 and a peer, with numbers chosen so that some targets are met and some are not."""
    samples: list[dict[str, Any]] = []
    for peer, start, stop in (("mpsv3", 0.080, 0.300), ("circus", 0.150, 0.140)):
        for size in (10, 200):
            sample = {"workload": "cold_start", "peer": peer, "n": size, "rep": 0,
                      "start_s": start if size == 10 else 0.5, "first_s": 0.05, "stop_s": stop}
            if peer == "mpsv3":
                sample |= {"plan_cache": "warm", "plan_entry": "reused"}
                samples.append({**sample, "plan_cache": "miss", "start_s": 0.3, "plan_entry": "stored"})
            samples.append(sample)
    samples += [{"workload": "client", "peer": "floor", "command": "python", "wall_s": 0.015}]
    samples += [
        {"workload": "client", "peer": "mpsv3", "command": c, "wall_s": w}
        for c, w in (("status", 0.045), ("logs", 0.090), ("restart", 0.050))
    ]
    samples += [{"workload": "client", "peer": "circus", "command": "status", "wall_s": 0.2}]
    samples += [{"workload": "respawn", "peer": "mpsv3", "respawn_s": v} for v in (0.002, 0.0045)]
    return {"peers": ["mpsv3", "circus"], "samples": samples, "workloads": ["cold_start"],
            "settings": {"cold_sizes": [10, 200], "idle_sizes": [50], "flood_lines": 200_000}}


def test_targets_are_judged_from_the_run_and_a_winning_peer_needs_a_reason() -> None:
    found = {row.what: row for row in targets.rows(_made_up_run())}
    cold10 = found["cold start N=10, launch -> all children exist (warm plan cache)"]
    assert cold10.verdict == "met" and cold10.mpsv3 == "80 ms (config changed: 300 ms)"
    assert cold10.best_peer == "circus 150 ms" and cold10.why == ""
    status = found["client command `mpsv3 status`, p50"]
    assert status.verdict == "met" and status.best_peer == "circusctl status 200 ms"
    logs = found["client command `mpsv3 logs -n 5`, p50"]
    assert logs.verdict.startswith("missed by 35 ms") and "`mpsv3 logs` takes 90 ms" in logs.why
    respawn = found["respawn after SIGKILL, p50 / p90"]
    assert respawn.verdict.startswith("missed: p50 over 3.0 ms") and "p90" not in respawn.verdict
    assert respawn.mpsv3 == f"{fmt_s(0.00325)} / {fmt_s(0.00425)}"
    assert respawn.why.startswith("kill -> replacement seen: p50")
    stop = found["stop-all N=200, stop -> no child left"]
    assert stop.verdict.startswith("missed by 160 ms") and stop.best_peer == "circus 140 ms"
    idle = [row for what, row in found.items() if what.startswith("idle CPU")]
    assert idle[0].verdict == "not measured in this run"


def test_percentile_and_line_fit() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([0.0, 10.0], 0.9) == pytest.approx(9.0)
    fit = fit_line([10, 50, 200, 500], [0.1 + 0.002 * n for n in (10, 50, 200, 500)])
    assert fit.slope == pytest.approx(0.002)
    assert fit.intercept == pytest.approx(0.1)
    assert fit.is_linear()
    with pytest.raises(ValueError):
        fit_line([10, 10], [1.0, 2.0])
