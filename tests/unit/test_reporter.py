"""What ``up`` prints of the supervisor's events, and its own rotated log file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpsv3.engine.reporter import ConsoleDigest, Reporter, describe


def ev(event: str, service: str | None = None, ts: str = "2026-12-01T15:04:05.000Z", **fields: Any) -> dict[str, Any]:
    return {"ts": ts, "service": service, "event": event, "level": fields.pop("level", "info"), **fields}


#: A cold start of two services, as the supervisor emits it today.
COLD_START = [
    ev("lease_acquired", pid=4242, instance="mind", config="/srv/mind/services.yaml"),
    ev("watcher_started", services=["api"]),
    ev("state", "db", **{"from": "stopped", "to": "pending", "reason": "starting"}),
    ev("state", "db", **{"from": "pending", "to": "starting", "reason": None}),
    ev("spawned", "db", pid=100, pgid=100, attempt=1),
    ev("state", "db", **{"from": "starting", "to": "ready", "reason": None}),
    ev("ready", "db", after_ms=212.4),
    ev("state", "api", **{"from": "stopped", "to": "pending", "reason": "waiting for db (starting)"}),
    ev("state", "api", **{"from": "pending", "to": "starting", "reason": None}),
    ev("spawned", "api", pid=101, pgid=101, attempt=1),
    ev("probe_passed", "api", probe="liveness", kind="http_get"),
    ev("state", "api", **{"from": "starting", "to": "ready", "reason": None}),
    ev("ready", "api", after_ms=1830),
    ev("stack_ready", after_ms=2340, ready=2, total=2,
       urls=["http://127.0.0.1:3000/healthz", "http://127.0.0.1:3000/api/ping", "http://127.0.0.1:8000/"]),
]

SHUTDOWN = [
    ev("state", "api", ts="2026-12-01T15:05:00.000Z", **{"from": "ready", "to": "stopping", "reason": None}),
    ev("stopping", "api", ts="2026-12-01T15:05:00.000Z", signal="SIGTERM", grace_s=10),
    ev("exited", "api", ts="2026-12-01T15:05:00.250Z", pid=101, code=None, signal="SIGTERM"),
    ev("state", "api", ts="2026-12-01T15:05:00.250Z", **{"from": "stopping", "to": "stopped", "reason": None}),
    ev("stopped", "api", ts="2026-12-01T15:05:00.250Z"),
    ev("stopping", "db", ts="2026-12-01T15:05:00.300Z", signal="SIGTERM", grace_s=10),
    ev("exited", "db", ts="2026-12-01T15:05:01.800Z", pid=100, code=0, signal=None),
    ev("stopped", "db", ts="2026-12-01T15:05:01.800Z"),
    ev("stopped", "worker", ts="2026-12-01T15:05:01.900Z"),  # was in backoff: nothing ran
    ev("shutdown", pid=4242),
]


def digest(events: list[dict[str, Any]]) -> list[str]:
    words = ConsoleDigest()
    return [line for line in map(words.line, events) if line is not None]


def test_a_cold_start_is_a_few_short_lines_and_says_where_to_look() -> None:
    assert digest(COLD_START) == [
        "instance mind, supervisor pid 4242",
        "db ready in 212 ms",
        "api ready in 1.8 s",
        "all 2 services ready in 2.3 s — http://127.0.0.1:3000/ http://127.0.0.1:8000/",
    ]


def test_a_stack_partly_ready_says_how_many() -> None:
    assert digest([ev("stack_ready", after_ms=65000, ready=6, total=7, urls=[])]) == [
        "6 of 7 services ready in 65 s"
    ]


def test_shutdown_is_one_line_per_service() -> None:
    assert digest(SHUTDOWN) == [
        "api stopped in 250 ms (SIGTERM)",
        "db stopped in 1.5 s (code 0)",
        "worker stopped",
        "shut down",
    ]


def test_a_crash_loop_says_what_happened_and_what_comes_next() -> None:
    lines = digest([
        ev("exited", "api", pid=101, code=1, signal=None),
        ev("state", "api", **{"from": "ready", "to": "backoff", "reason": "exited with code 1"}),
        ev("backoff", "api", delay_s=2.0, attempt=2, reason="exited with code 1"),
        ev("restarting", "api", reason="crash"),
        ev("exited", "api", pid=102, code=None, signal="SIGKILL"),
        ev("quarantined", "api", level="alert", reason="10 consecutive failures", criticality="core"),
        ev("alert", "api", level="alert", reason="10 consecutive failures", alert_cmd_pid=7),
        ev("released", "api"),
    ])
    assert lines == [
        "api exited with code 1",
        "api restarts in 2 s (failure 2)",
        "api killed by SIGKILL",
        "ALERT: api quarantined: 10 consecutive failures; `release api` starts it",
        "ALERT: api alert: 10 consecutive failures",
        "api released",
    ]


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (ev("reload", "api", paths=["/p/a.py", "/p/b.py"], count=2, action="restart"),
         "api: 2 files changed (a.py, b.py) -> restart"),
        (ev("reload", "api", paths=["/p/a.py"] * 5, count=9, action="signal:SIGHUP"),
         "api: 9 files changed (a.py, a.py, a.py, …) -> signal:SIGHUP"),
        (ev("restarting", "api", reason="manual"), "api restarting (manual)"),
        (ev("restarting", "api", reason="liveness"), "api restarting (liveness)"),
        (ev("restarting", "api", reason="reload"), None),
        (ev("state", "api", **{"from": "starting", "to": "backoff", "reason": "waiting for a change after a failed reload"}),
         "api waiting for a change after a failed reload"),
        (ev("state", "api", **{"from": "ready", "to": "unhealthy", "reason": "liveness failing (1/3): refused"}),
         "api unhealthy: liveness failing (1/3): refused"),
        (ev("state", "job", **{"from": "starting", "to": "completed", "reason": None}), "job completed"),
        (ev("exited", "job", pid=5, code=0, signal=None), None),
        (ev("probe_failed", "api", probe="readiness", kind="tcp", reason="not ready after 30s"),
         "api not ready: not ready after 30s"),
        (ev("probe_failed", "api", probe="liveness", kind="tcp", reason="refused", consecutive=2, threshold=3),
         "api liveness failed (2/3): refused"),
        (ev("port_conflict", "api", level="error", port=8000, pid=6924, cmdline="python x.py"),
         "ERROR: api cannot start: port 8000 is held by PID 6924 (python x.py), not ours"),
        (ev("spawn_failed", "api", level="error", reason="No such file"), "ERROR: api failed to start: No such file"),
        (ev("config_reloaded", added=["x"], removed=[], changed=["a", "b"]), "config reloaded: added x; changed a, b"),
        (ev("config_reloaded", added=[], removed=[], changed=[]), "config reloaded: no changes"),
        (ev("config_rejected", level="warning", errors=["f:1: bad", "f:2: worse"]),
         "WARNING: config rejected, nothing changed: f:1: bad (and 1 more)"),
        (ev("orphan_reclaimed", pid=77, why="held a declared port"), "reclaimed pid 77 (held a declared port)"),
        (ev("legacy_lock_kept", level="warning", path="/x.pid", pid=3, reason="PID 3 is alive"),
         "WARNING: kept old lock /x.pid (PID 3 is alive)"),
        (ev("watcher_fallback", level="warning", reason="inotify limit"),
         "WARNING: file watcher falls back to polling: inotify limit"),
        (ev("spawned", "api", pid=1, pgid=1, attempt=1), None),
        (ev("watcher_started", services=[]), None),
    ],
)
def test_the_digest_wording(event: dict[str, Any], line: str | None) -> None:
    assert ConsoleDigest().line(event) == line


def test_describe_keeps_every_detail() -> None:
    assert describe(ev("spawned", "db", pid=100, pgid=100, attempt=1)) == "db: spawned pid 100"
    assert describe(ev("state", "db", **{"from": "pending", "to": "starting", "reason": None})) == (
        "db: pending -> starting"
    )
    assert describe(ev("watcher_started", services=["a"])) == "watcher_started services=['a']"
    assert describe(ev("probe_passed", "db", probe="liveness", kind="tcp")) is None
    assert describe(ev("stack_ready", after_ms=900, ready=1, total=1, urls=[])) == "all 1 service ready in 900 ms"


class Lines:
    """A console stand-in that records what the reporter sends it."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def supervisor_line(self, text: str, level: str = "info") -> None:
        self.lines.append((text, level))


def test_the_console_gets_the_digest_and_the_file_gets_everything(tmp_path: Path) -> None:
    console = Lines()
    reporter = Reporter(tmp_path / "logs" / "mpsv3.log", console)  # type: ignore[arg-type]
    for event in COLD_START:
        reporter.on_event(event)
    reporter.on_event(ev("port_conflict", "api", level="error", port=1, pid=2, cmdline="x"))
    assert not (tmp_path / "logs" / "mpsv3.log").read_text()  # written on the bus's flush
    reporter.flush()
    reporter.close()
    file_lines = (tmp_path / "logs" / "mpsv3.log").read_text().splitlines()
    assert len(file_lines) == len(COLD_START)  # every event but the probe pass, plus the conflict
    assert file_lines[4] == "2026-12-01T15:04:05.000Z db: spawned pid 100"
    assert [text for text, _ in console.lines][:2] == ["instance mind, supervisor pid 4242", "db ready in 212 ms"]
    assert console.lines[-1][1] == "error"


def test_verbose_shows_the_files_lines_on_the_console(tmp_path: Path) -> None:
    console = Lines()
    reporter = Reporter(tmp_path / "mpsv3.log", console, verbose=True)  # type: ignore[arg-type]
    for event in COLD_START:
        reporter.on_event(event)
    reporter.close()
    assert [f"{COLD_START[0]['ts']} {text}" for text, _ in console.lines] == (
        (tmp_path / "mpsv3.log").read_text().splitlines()
    )


def test_the_supervisor_log_rotates_like_a_service_log(tmp_path: Path) -> None:
    path = tmp_path / "mpsv3.log"
    reporter = Reporter(path, None, max_bytes=2000, backups=2)
    for turn in range(40):
        for _ in range(3):
            reporter.on_event(ev("spawned", "svc", pid=1000 + turn, pgid=1000 + turn, attempt=1))
        reporter.flush()
    reporter.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["mpsv3.log", "mpsv3.log.1", "mpsv3.log.2"]
    for name in files:
        text = (tmp_path / name).read_text()
        assert len(text.encode()) <= 2000 and text.endswith("\n")
        assert all(line.endswith(" svc: spawned pid " + line.rsplit(" ", 1)[1]) for line in text.splitlines())
    assert (tmp_path / "mpsv3.log").read_text().splitlines()[-1].endswith("spawned pid 1039")


def test_events_after_close_reach_no_file(tmp_path: Path) -> None:
    reporter = Reporter(tmp_path / "mpsv3.log", None)
    reporter.close()
    reporter.on_event(ev("shutdown", pid=1))
    reporter.flush()  # a flush scheduled on the loop after shutdown: no traceback
    assert (tmp_path / "mpsv3.log").read_text() == ""
