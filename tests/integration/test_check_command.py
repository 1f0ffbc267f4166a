"""`mpsv3 check` on the seed's 7-service stack, and its exit codes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "mind-protocol" / "services.yaml"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mpsv3", *args], capture_output=True, text=True, timeout=60)


def test_check_prints_the_start_layers_of_the_mind_protocol_stack() -> None:
    result = run("check", "-c", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    layers = [line.split(". ", 1)[1].split(", ") for line in result.stdout.splitlines() if line.startswith("  ") and ". " in line]
    assert layers[0] == ["falkordb"]
    assert "ws_api" in layers[1]
    rest = {"dashboard", "conversation_watcher", "stimulus_injection", "signals_collector", "autonomy_orchestrator"}
    assert {sid for layer in layers[1:] for sid in layer} - {"ws_api"} == rest
    assert "7 services" in result.stdout


def test_check_explain_prints_every_default() -> None:
    result = run("check", "-c", str(EXAMPLE), "--explain")
    assert result.returncode == 0
    for key in ("attempt_timeout_s: 2.0", "reset_after_s: 60.0", "max_bytes: 10485760", "criticality: critical"):
        assert key in result.stdout


def test_bad_config_exits_78_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "services.yaml"
    bad.write_text("version: 1\nservices:\n  - id: a\n    cmd: x\n    requires: [b]\n    readyness: {}\n")
    result = run("check", "-c", str(bad))
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{bad}:") for line in lines)
    assert "Traceback" not in result.stderr


def test_version_and_missing_config() -> None:
    assert run("--version").stdout.startswith("mpsv3, version 0.1.0")
    missing = run("check", "-c", "/nonexistent/services.yaml")
    assert missing.returncode == 78
    assert "cannot read config" in missing.stderr


WARNED = """\
version: 1
state_dir: {state}
services:
  - id: once
    cmd: ["{python}", "-c", "import time; time.sleep(60)"]
    restart: {{policy: never}}
  - id: app
    cmd: ["{python}", "-c", "import time; time.sleep(60)"]
    requires: [once]
"""


def test_a_configs_warnings_are_printed_by_check_and_by_every_up(tmp_path: Path) -> None:
    """A warning (the config runs, but a dependent may wait for ever) is said, not cached away."""
    config = tmp_path / "services.yaml"
    config.write_text(WARNED.format(state=tmp_path / "state", python=sys.executable))
    warning = f'{config}:9: warning: service "app": requires "once", which has restart.policy: never'
    checked = run("check", "-c", str(config))
    assert checked.returncode == 0 and checked.stderr.startswith(warning)
    for _ in range(2):  # the second up takes the plan from the cache: the warning still shows
        up = subprocess.Popen([sys.executable, "-m", "mpsv3", "up", "-c", str(config), "--quiet"],
                              stderr=subprocess.PIPE, text=True)
        try:
            assert up.stderr is not None
            assert up.stderr.readline().startswith(warning)
            events = tmp_path / "state" / "events.jsonl"
            deadline = time.monotonic() + 30
            while '"stack_ready"' not in (events.read_text() if events.exists() else ""):
                assert time.monotonic() < deadline, "the stack did not start"
                time.sleep(0.05)
        finally:
            up.terminate()
            assert up.wait(timeout=30) == 0
        events.unlink()
