"""The benchmark's quick mode against mpsv3 alone: it completes and mpsv3's samples are sane.

CI runs this instead of the full benchmark: it checks that ``python -m benchmarks`` works end to
end (config writing, launch, ``/proc`` scanning, every workload, the JSON and the markdown) and
that mpsv3's own numbers make sense (positive times, every child seen, every log line whole).
It never checks a timing threshold: the machine is shared. The peers are not installed here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO))

from benchmarks.logflood import check_flood_log  # noqa: E402
from benchmarks.stats import fit_line, percentile  # noqa: E402
from benchmarks.summary import sanity_problems  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")


def test_quick_run_of_mpsv3_is_sane(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    docs = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--peers",
            "mpsv3",
            "--sizes",
            "5,10",
            "--idle-seconds",
            "1",
            "--results-dir",
            str(results_dir),
            "--write-docs",
            "--docs-path",
            str(docs),
            "--check",
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((results_dir / "latest.json").read_text())
    assert sanity_problems(results) == []
    assert results["leftovers"] == []
    mine = [s for s in results["samples"] if s["peer"] == "mpsv3"]
    cold = [s for s in mine if s["workload"] == "cold_start"]
    assert sorted(s["n"] for s in cold) == [5, 10]
    assert all(s["children_seen"] == s["n"] and s["start_s"] > 0 for s in cold)
    assert all(s["stop_s"] > 0 for s in cold if s["rep"] == 0)
    respawns = [s["respawn_s"] for s in mine if s["workload"] == "respawn"]
    assert len(respawns) == results["settings"]["respawn_reps"]
    assert all(value > 0 for value in respawns)
    gates = [s for s in mine if s["workload"] == "gate"]
    assert len(gates) == results["settings"]["gate_chain"] - 1
    reloads = [s for s in mine if s["workload"] == "reload"]
    assert reloads and all(s["ready_s"] >= s["restarted_s"] > 0 for s in reloads)
    flood = [s for s in mine if s["workload"] == "logs"]
    assert flood and all(s["complete"] and s["lines_whole"] == 200_000 for s in flood)
    idle = [s for s in mine if s["workload"] == "idle"]
    assert sorted(s["n"] for s in idle) == [5, 10]
    assert all(s["rss_bytes"] > 0 and s["processes"] >= 1 for s in idle)
    assert "| cold start N=10: launch -> all children |" in done.stdout
    page = docs.read_text()
    assert "## Machine" in page and "mpsv3" in page and "## Why each number is what it is" in page


def test_flood_log_check_finds_cut_and_missing_lines(tmp_path: Path) -> None:
    log = tmp_path / "flood.log"
    payload = "abcdefghijklmnopqrstuvwxyz0123"
    lines = [f"12:00:00 flood.1 | L{index:06d} {payload}" for index in range(5)]
    lines[2] = f"L000002 {payload[:10]}"  # cut short
    lines.append(lines[0])  # a duplicate
    log.write_text("\n".join(lines) + "\n")
    checked = check_flood_log(log, expected=6)
    assert checked == {"lines_whole": 5, "missing": 2, "duplicates": 1, "complete": False}
    log.write_text("".join(f"L{index:06d} {payload}\n" for index in range(3)))
    assert check_flood_log(log, expected=3)["complete"] is True


def test_percentile_and_line_fit() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([0.0, 10.0], 0.9) == pytest.approx(9.0)
    fit = fit_line([10, 50, 200, 500], [0.1 + 0.002 * n for n in (10, 50, 200, 500)])
    assert fit.slope == pytest.approx(0.002)
    assert fit.intercept == pytest.approx(0.1)
    assert fit.is_linear()
    with pytest.raises(ValueError):
        fit_line([10, 10], [1.0, 2.0])
