"""The UI's pure parts: rows, filter, header and detail lines, scale targets, signals, replies,
and the log pane's source (real files in a temp dir)."""

from __future__ import annotations

import calendar
import copy
import time
from pathlib import Path
from typing import Any

import pytest

from mpsv3.cli.status_view import parse_timestamp
from mpsv3.ui import model
from mpsv3.ui.logs import LogSource, display_line

NOW = parse_timestamp("2026-11-24T17:10:00.000Z")


def svc(sid: str, state: str = "ready", **extra: Any) -> dict[str, Any]:
    base = {
        "id": sid, "state": state, "pid": 100, "pgid": 100, "restarts": 0, "failures": 0,
        "last_exit": None, "next_restart_in_s": None, "ready_since": "2026-11-24T17:06:55.000Z", "reason": None,
    }
    return {**base, **extra}


STATUS: dict[str, Any] = {
    "supervisor": {"pid": 42, "name": "mind", "config": "/x/services.yaml", "started_at": "2026-11-24T15:00:00.000Z", "version": "0.1.0"},
    "services": [
        svc("db"),
        svc("api", "backoff", pid=None, reason="exited with code 1", next_restart_in_s=3.5, failures=2,
            last_exit={"code": 1, "signal": None, "at": "2026-11-24T17:09:48.000Z"}),
        svc("worker-1", replica=1), svc("worker-2", replica=2), svc("worker-3", replica=3),
        svc("engine", "quarantined", pid=None, reason="10 consecutive failures"),
    ],
}


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", ["db", "api", "worker-1", "worker-2", "worker-3", "engine"]),
        ("work", ["worker-1", "worker-2", "worker-3"]),
        ("WORK 2", ["worker-2"]),
        ("state:back", ["api"]),
        ("s:q", ["engine"]),
        ("consecutive", ["engine"]),
        ("ready db", ["db"]),
        ("nothing-like-this", []),
    ],
)
def test_the_filter(query: str, ids: list[str]) -> None:
    assert [row.id for row in model.table_rows(STATUS, NOW, query)] == ids


def test_rows_carry_the_status_cells() -> None:
    api = model.table_rows(STATUS, NOW, "api")[0]
    assert api.cells["next"] == "3.5s" and api.cells["cpu"] == "-" and api.cells["mem"] == "-"
    assert [key for key, _ in model.TABLE_COLUMNS][:4] == ["service", "state", "cpu", "mem"]


def test_summary_line() -> None:
    assert model.summary_line(STATUS, NOW) == (
        "mind · pid 42 · up 2h10m │ 4 ready · 1 backoff · 1 quarantined │ cpu - · mem -"
    )
    figures = copy.deepcopy(STATUS)
    figures["supervisor"].update(cpu_percent=1.25, rss_bytes=40 * 1024 * 1024)
    assert model.summary_line(figures, NOW).endswith("│ cpu 1.2% · mem 40.0M")
    assert "no services" in model.summary_line({"supervisor": {}, "services": []}, NOW)


def test_detail_line_puts_the_reason_first() -> None:
    api = STATUS["services"][1]
    assert model.detail_line(api, NOW) == (
        "api · backoff · restart in 3.5s · exited with code 1 · restarts 0, failures 2 · last: exit 1, 12s ago"
    )
    db = dict(STATUS["services"][0], kind="service", enabled=False)
    assert model.detail_line(db, NOW) == "db · ready · disabled · service · pid 100 (group 100) · restarts 0, failures 0"
    assert model.detail_line(None, NOW) == "no service selected"


@pytest.mark.parametrize(
    ("sid", "target"),
    [("worker-2", ("worker", 3)), ("db", ("db", 1)), ("unknown", ("unknown", 1))],
)
def test_scale_target(sid: str, target: tuple[str, int]) -> None:
    assert model.scale_target(STATUS, sid) == target


def test_a_replica_field_that_does_not_match_the_id_scales_the_id_itself() -> None:
    status = {"services": [svc("odd-name", replica=2)]}
    assert model.scale_target(status, "odd-name") == ("odd-name", 1)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("hup", ("SIGHUP", None)),
        (" SIGUSR1 ", ("SIGUSR1", None)),
        ("9", ("SIGKILL", None)),
        ("", (None, "no signal given")),
        ("999", (None, "no signal number 999 here")),
        ("sigfoo", (None, "unknown signal 'sigfoo'")),
    ],
)
def test_parse_signal(text: str, parsed: tuple[str | None, str | None]) -> None:
    assert model.parse_signal(text) == parsed


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        ({"ok": True, "result": {"message": "restarting db"}}, ("restarting db", False)),
        ({"ok": True, "result": "stopping db"}, ("stopping db", False)),
        ({"ok": True, "result": {"added": []}}, ("reload: done", False)),
        ({"ok": False, "error": "unknown command 'scale'"}, ("reload: unknown command 'scale'", True)),
        ({"ok": False}, ("reload: refused", True)),
    ],
)
def test_reply_text(reply: dict[str, Any], shown: tuple[str, bool]) -> None:
    assert model.reply_text("reload", reply) == shown


def local(stamp: str) -> str:
    return time.strftime("%H:%M:%S", time.localtime(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))))


def test_display_line_shortens_the_stamp_and_removes_control_codes() -> None:
    stamp = "2026-12-01T15:04:05.123Z"
    assert display_line(f"{stamp} \x1b[31mred\x1b[0m\tand\x07 bell") == (stamp, f"{local(stamp)} red    and bell")
    assert display_line("plain \x1b]0;title\x07line") == ("", "plain line")


def write(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def test_one_service_tail_then_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "api.log"
    write(log, "one", "two", "three")
    source = LogSource(tmp_path, ["api"])
    assert source.tail(2) == ["two", "three"] and not source.merged
    write(log, "four")
    assert source.read_new() == ["four"]
    assert source.read_new() == []
    source.close()


def test_merged_lines_are_in_stamp_order_with_their_source(tmp_path: Path) -> None:
    a, b = "2026-12-01T15:04:05.100Z", "2026-12-01T15:04:05.200Z"
    c = "2026-12-01T15:04:06.000Z"
    write(tmp_path / "logs" / "api.log", f"{b} api second")
    write(tmp_path / "logs" / "db.log", f"{a} db first", "db continued (no stamp)", f"{c} db third")
    source = LogSource(tmp_path, ["api", "db"])
    assert source.merged
    assert source.tail(10) == [
        f"db  │ {local(a)} db first",
        "db  │ db continued (no stamp)",
        f"api │ {local(b)} api second",
        f"db  │ {local(c)} db third",
    ]
    write(tmp_path / "logs" / "db.log", "2026-12-01T15:04:08.000Z db later")
    write(tmp_path / "logs" / "api.log", "2026-12-01T15:04:07.000Z api earlier")
    assert [line.split("│")[0].strip() for line in source.read_new()] == ["api", "db"]
    source.set_ids(["db"])
    assert source.ids == ("db",) and not source.merged
    write(tmp_path / "logs" / "api.log", "not followed any more")
    write(tmp_path / "logs" / "db.log", "db only")
    assert source.read_new() == ["db only"]
    source.close()


def test_a_log_that_does_not_exist_yet_is_followed_from_its_birth(tmp_path: Path) -> None:
    source = LogSource(tmp_path, ["late"])
    assert source.tail(5) == [] and source.read_new() == []
    write(tmp_path / "logs" / "late.log", "born")
    assert source.read_new() == ["born"]
    source.close()
