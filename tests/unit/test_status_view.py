"""The status table (plain text that fits a width), its watch loop, and the status JSON schema."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpsv3.cli.status_view import (
    COLUMNS,
    describe_exit,
    format_bytes,
    format_percent,
    human_duration,
    output_width,
    parse_timestamp,
    render_status,
)
from mpsv3.cli.status_watch import watch_status

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "status.schema.json"
NOW = parse_timestamp("2026-11-24T17:10:00.000Z")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HEADERS = {c.header for c in COLUMNS} | {c.short for c in COLUMNS}

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
            "id": "autonomy_orchestrator",
            "state": "quarantined",
            "pid": None,
            "pgid": None,
            "restarts": 10,
            "failures": 10,
            "last_exit": {"code": None, "signal": "SIGKILL", "at": "2026-11-24T16:00:00.000Z"},
            "next_restart_in_s": None,
            "ready_since": None,
            "reason": "10 consecutive failures; last: exited with code 1 after 0.2 s",
        },
    ],
}


def with_figures(status: dict[str, Any]) -> dict[str, Any]:
    """The same status with the lead's new fields (kind, cpu, memory) filled in."""
    status = copy.deepcopy(status)
    status["supervisor"].update(
        cpu_percent=0.4, cpu_seconds=3.5, rss_bytes=38_000_000, engine_pid=4243, containment=["keeper"],
        keeper_pid=4242, reclaimed=[],
    )
    for service in status["services"]:
        service.update(kind="service", replica=None, enabled=True, cpu_percent=None, cpu_seconds=None, rss_bytes=None)
    status["services"][0].update(cpu_percent=12.34, rss_bytes=512 * 1024 * 1024)
    return status


def row_of(text: str, service: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"{service} "))


def header_of(text: str) -> str:
    return text.splitlines()[1]


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


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "-"), (True, "-"), (-1, "-"), (0, "0.0%"), (0.26, "0.3%"), (9.94, "9.9%"), (12.5, "12%"), (250.0, "250%")],
)
def test_format_percent(value: Any, shown: str) -> None:
    assert format_percent(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (1.5, "-"),
        (512, "512B"),
        (812 * 1024, "812K"),
        (45_100_000, "43.0M"),
        (512 * 1024**2, "512M"),
        (1300 * 1024**2, "1.3G"),
        (3 * 1024**4, "3.0T"),
    ],
)
def test_format_bytes_fits_five_columns(value: Any, shown: str) -> None:
    assert format_bytes(value) == shown
    assert len(shown) <= 5


def test_the_table_at_80_columns_cuts_no_header_and_wraps_no_cell() -> None:
    text = render_status(STATUS, NOW, width=80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert set(header_of(text).split()) <= HEADERS
    assert {"SERVICE", "STATE", "REASON"} <= set(header_of(text).split())
    backoff = row_of(text, "ws_api")
    assert "backoff" in backoff and "3.5s" in backoff  # the next restart, as a column or folded
    quarantined = row_of(text, "autonomy_orchestrator")
    assert " quarantined " in quarantined and "10 consecutive" in quarantined
    assert quarantined.endswith("…")  # the reason takes the rest, and is cut there
    assert lines[0].startswith("mind-protocol  pid 4242  up 2h10m  1 ready, 1 backoff, 1 quarantined")


def test_a_wide_terminal_shows_long_headers_and_every_narrow_column() -> None:
    text = render_status(with_figures(STATUS), NOW, width=200)
    header = header_of(text)
    for name in ("SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "CPU", "MEM", "NEXT RESTART", "REASON"):
        assert name in header
    ready = row_of(text, "falkordb")
    assert "ready" in ready and " 100 " in ready and "3m05s" in ready and "12%" in ready and "512M" in ready
    backoff = row_of(text, "ws_api")
    assert backoff.split()[-4:] == ["exited", "with", "code", "1"] and " 3.5s " in backoff
    assert "cpu 0.4%  mem 36.2M" in text.splitlines()[0]


def test_absent_figures_are_dashes_and_a_column_of_dashes_goes_first() -> None:
    wide = render_status(STATUS, NOW, width=200)
    assert row_of(wide, "falkordb").split()[4:7] == ["0", "-", "-"]  # restarts, cpu, mem
    narrow = render_status(STATUS, NOW, width=70)
    assert "CPU" not in header_of(narrow) and "PID" in header_of(narrow)
    assert "CPU" in header_of(render_status(with_figures(STATUS), NOW, width=70))


def test_wide_shows_every_column_and_the_whole_reason() -> None:
    text = render_status(with_figures(STATUS), NOW, width=40, wide=True)
    header = header_of(text)
    for column in COLUMNS:
        assert column.header in header
    quarantined = row_of(text, "autonomy_orchestrator")
    assert quarantined.endswith("10 consecutive failures; last: exited with code 1 after 0.2 s")
    assert "SIGKILL, 1h10m ago" in quarantined and "service" in quarantined
    assert "/srv/mind/services.yaml (mpsv3 0.1.0)" in text.splitlines()[0]


def test_uptime_only_for_a_live_service() -> None:
    status = copy.deepcopy(STATUS)
    status["services"][0]["state"] = "stopped"
    assert "3m05s" not in row_of(render_status(status, NOW, width=200), "falkordb")


def test_colour_only_when_asked_and_it_changes_no_width() -> None:
    plain = render_status(STATUS, NOW, width=80)
    assert "\x1b" not in plain
    coloured = render_status(STATUS, NOW, width=80, colour=True)
    assert "\x1b[1;31mquarantined\x1b[0m" in coloured and "\x1b[1;32mready" in coloured
    assert ANSI.sub("", coloured) == plain


def test_no_services() -> None:
    text = render_status({"supervisor": STATUS["supervisor"], "services": []}, NOW, width=80)
    assert "no services" in text.splitlines()[0] and text.splitlines()[-1] == "(no services)"


_ids = st.from_regex(r"[a-z][a-z0-9_-]{0,22}", fullmatch=True)
_services = st.lists(
    st.fixed_dictionaries(
        {
            "id": _ids,
            "state": st.sampled_from(["pending", "starting", "ready", "backoff", "quarantined", "stopped"]),
            "pid": st.one_of(st.none(), st.integers(1, 4_194_304)),
            "restarts": st.integers(0, 100_000),
            "failures": st.integers(0, 50),
            "next_restart_in_s": st.one_of(st.none(), st.floats(0, 1e6)),
            "reason": st.one_of(st.none(), st.text(max_size=200)),
            "cpu_percent": st.one_of(st.none(), st.floats(0, 1600)),
            "rss_bytes": st.one_of(st.none(), st.integers(0, 2**45)),
        }
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(services=_services, width=st.integers(60, 240))
def test_any_status_fits_any_width_with_whole_headers_and_cells(
    services: list[dict[str, Any]], width: int
) -> None:
    status = {"supervisor": STATUS["supervisor"], "services": services}
    text = render_status(status, NOW, width=width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    assert set(header_of(text).split()) <= HEADERS | {"RESTART"}
    for service, line in zip(services, lines[2:], strict=False):
        assert line.startswith(service["id"] + " ") or line == service["id"]
        assert f" {service['state']}" in line


def test_output_width() -> None:
    assert output_width(io.StringIO(), {"COLUMNS": "132"}) == 132
    assert output_width(io.StringIO(), {"COLUMNS": "x"}) == 80
    assert output_width(io.StringIO(), {}) == 80


class Script:
    """A fake supervisor for the watch loop: a list of status documents (or exceptions)."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.sleeps: list[float] = []

    def fetch(self) -> dict[str, Any]:
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return dict(reply)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_watch_to_a_pipe_prints_one_whole_frame_per_interval() -> None:
    script = Script(STATUS, STATUS, STATUS)
    out = io.StringIO()
    watch_status(
        script.fetch, out, interval=2.0, is_tty=False, sleep=script.sleep, clock=lambda: NOW, frames=3,
        size=lambda: (80, 24),
    )
    frames = out.getvalue().split("\n\n")
    assert frames[-1] == "" and len(frames) == 4
    assert all(frame + "\n" == render_status(STATUS, NOW, width=80) for frame in frames[:3])
    assert script.sleeps == [2.0, 2.0]
    assert "\x1b" not in out.getvalue()


def test_watch_on_a_terminal_redraws_in_place_and_gives_the_cursor_back() -> None:
    script = Script(STATUS, STATUS, RuntimeError("supervisor went away"))
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="went away"):
        watch_status(
            script.fetch, out, interval=1.0, is_tty=True, sleep=script.sleep, clock=lambda: NOW,
            size=lambda: (100, 40),
        )
    text = out.getvalue()
    lines = len(render_status(STATUS, NOW, width=100).splitlines())
    assert text.startswith("\x1b[?25l") and text.endswith("\x1b[?25h")
    assert text.count(f"\x1b[{lines}F") == 1  # the second frame goes back over the first
    assert text.count("\x1b[J") == 2


def test_watch_on_a_short_terminal_never_scrolls() -> None:
    status = copy.deepcopy(STATUS)
    status["services"] = [dict(STATUS["services"][0], id=f"svc{i}") for i in range(30)]
    out = io.StringIO()
    watch_status(Script(status).fetch, out, is_tty=True, frames=1, size=lambda: (80, 10), clock=lambda: NOW)
    body = ANSI.sub("", out.getvalue())
    assert len(body.splitlines()) == 9 and "… 24 more lines" in body


def test_watch_ends_quietly_when_the_reader_leaves() -> None:
    class Closed(io.StringIO):
        def write(self, _text: str) -> int:
            raise BrokenPipeError

    watch_status(Script(STATUS).fetch, Closed(), is_tty=False, frames=5, size=lambda: (80, 24))


def schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_sample_status_validates() -> None:
    schema_validator().validate(with_figures(STATUS))


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
