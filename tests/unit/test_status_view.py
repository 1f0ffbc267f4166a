"""The status table and the status JSON schema, without a supervisor."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.console import Console

from mpsv3.cli.status_view import describe_exit, human_duration, parse_timestamp, render_status

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "status.schema.json"
NOW = parse_timestamp("2026-11-24T17:10:00.000Z")

STATUS: dict[str, Any] = {
    "supervisor": {
        "pid": 4242,
        "name": "mind-protocol",
        "config": "/srv/mind/services.yaml",
        "started_at": "2026-11-24T15:00:00.000Z",
        "version": "0.1.0",
    },
    "services": [
        {
            "id": "falkordb",
            "state": "ready",
            "pid": 100,
            "pgid": 100,
            "restarts": 0,
            "failures": 0,
            "last_exit": None,
            "next_restart_in_s": None,
            "ready_since": "2026-11-24T17:06:55.000Z",
            "reason": None,
        },
        {
            "id": "ws_api",
            "state": "backoff",
            "pid": None,
            "pgid": None,
            "restarts": 3,
            "failures": 2,
            "last_exit": {"code": 1, "signal": None, "at": "2026-11-24T17:09:48.000Z"},
            "next_restart_in_s": 3.5,
            "ready_since": None,
            "reason": "exited with code 1",
        },
        {
            "id": "engine",
            "state": "quarantined",
            "pid": None,
            "pgid": None,
            "restarts": 10,
            "failures": 10,
            "last_exit": {"code": None, "signal": "SIGKILL", "at": "2026-11-24T16:00:00.000Z"},
            "next_restart_in_s": None,
            "ready_since": None,
            "reason": "10 consecutive failures",
        },
    ],
}


def rendered(status: dict[str, Any]) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(render_status(status, NOW))
    return console.export_text()


def row_of(text: str, service: str) -> str:
    return next(line for line in text.splitlines() if f" {service} " in line)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-3, "0.0s"),
        (0.42, "0.4s"),
        (9.96, "9.9s"),
        (42.9, "42s"),
        (185, "3m05s"),
        (7380, "2h03m"),
        (3 * 86400 + 4 * 3600 + 59, "3d04h"),
    ],
)
def test_human_duration(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_parse_timestamp_is_utc_with_milliseconds() -> None:
    assert parse_timestamp("1970-01-01T00:01:00.250Z") == 60.25


def test_describe_exit() -> None:
    assert describe_exit(None, NOW) == "-"
    assert describe_exit({"code": 1, "signal": None, "at": "2026-11-24T17:09:48.000Z"}, NOW) == (
        "exit 1, 12s ago"
    )
    assert describe_exit(
        {"code": None, "signal": "SIGTERM", "at": "2026-11-24T17:07:00.000Z"}, NOW
    ) == ("SIGTERM, 3m00s ago")


def test_table_has_the_columns_and_one_row_per_service() -> None:
    text = rendered(STATUS)
    assert "mind-protocol: supervisor PID 4242, up 2h10m" in text
    header = next(line for line in text.splitlines() if "service" in line and "state" in line)
    for column in ("pid", "uptime", "restarts", "last exit", "next restart in", "reason"):
        assert column in header
    ready = row_of(text, "falkordb")
    assert "ready" in ready and " 100 " in ready and "3m05s" in ready
    backoff = row_of(text, "ws_api")
    assert "backoff" in backoff and "3 (2 failed)" in backoff
    assert "exit 1, 12s ago" in backoff and "3.5s" in backoff and "exited with code 1" in backoff
    quarantined = row_of(text, "engine")
    assert "quarantined" in quarantined and "SIGKILL, 1h10m ago" in quarantined
    assert "/srv/mind/services.yaml (mpsv3 0.1.0)" in text


def test_uptime_only_for_a_live_service() -> None:
    status = copy.deepcopy(STATUS)
    status["services"][0]["state"] = "stopped"
    row = row_of(rendered(status), "falkordb")
    assert "3m05s" not in row


def test_quarantined_state_is_styled_red() -> None:
    table = render_status(STATUS, NOW)
    state_cells = list(table.columns[1].cells)
    assert [str(c) for c in state_cells] == ["ready", "backoff", "quarantined"]
    assert "red" in str(state_cells[2].style)  # type: ignore[attr-defined]


def schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_sample_status_validates() -> None:
    schema_validator().validate(STATUS)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda s: s["services"][0].update(state="running"),
        lambda s: s["services"][0].update(extra=1),
        lambda s: s["services"][0].pop("reason"),
        lambda s: s["supervisor"].update(started_at="2026-11-24 17:08:00"),
        lambda s: s["supervisor"].pop("version"),
        lambda s: s["services"][1]["last_exit"].update(signal=9),
        lambda s: s["services"][1].update(next_restart_in_s=-1),
        lambda s: s.update(events=[]),
        lambda s: s["services"][0].update(pid=0),
    ],
)
def test_the_schema_is_strict(spoil: Any) -> None:
    status = copy.deepcopy(STATUS)
    spoil(status)
    assert not schema_validator().is_valid(status)
