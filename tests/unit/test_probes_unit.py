"""Pure parts of the probes: descriptions, log matching, notify parsing and socket paths."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from mpsv3.config.schema import LivenessSpec, ReadinessSpec
from mpsv3.engine.notify import (
    MAX_SOCKET_PATH_BYTES,
    NotifySocket,
    parse_notify_message,
    socket_path_for,
)
from mpsv3.engine.probes import LogMatcher, ProbeRunner, run_check
from mpsv3.planner import check_plan


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        (
            {"http_get": {"url": "http://127.0.0.1:8000/api/ping"}},
            "http_get http://127.0.0.1:8000/api/ping",
        ),
        (
            {"http_get": {"url": "http://127.0.0.1:8000/", "expect_status": 204}},
            "http_get http://127.0.0.1:8000/ (expect 204)",
        ),
        ({"tcp": {"port": 6379}}, "tcp 127.0.0.1:6379"),
        ({"tcp": {"host": "::1", "port": 80}}, "tcp [::1]:80"),
        ({"redis_ping": {}}, "redis_ping 127.0.0.1:6379"),
        ({"exec": {"cmd": "pg_isready -h 'my host'"}}, "exec pg_isready -h 'my host'"),
        ({"log": {"pattern": "listening on"}}, "log 'listening on'"),
        ({"notify": True}, "notify"),
    ],
)
def test_describe_readiness_probe(probe: dict[str, object], expected: str) -> None:
    assert check_plan(ReadinessSpec.model_validate(probe)).describe() == expected


def test_describe_liveness_probe() -> None:
    spec = LivenessSpec.model_validate({"tcp": {"host": "db", "port": 5432}})
    assert check_plan(spec).describe() == "tcp db:5432"


def test_log_matcher_matches_once_and_remembers() -> None:
    matcher = LogMatcher(r"listening on :\d+")
    assert not matcher.matched
    assert matcher.feed("starting up") is False
    assert not matcher.matched
    assert matcher.feed("INFO listening on :8000 (pid 12)") is True
    assert matcher.matched
    assert matcher.feed("another line") is False
    assert matcher.matched


def test_log_matcher_uses_search_not_fullmatch() -> None:
    matcher = LogMatcher("^ready$")
    assert matcher.feed("not ready") is False
    assert matcher.feed("ready") is True


def test_log_matcher_rejects_bad_pattern() -> None:
    with pytest.raises(ValueError, match="missing"):  # RE2 since patterns run in linear time
        LogMatcher("(unclosed")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"READY=1", {"READY": "1"}),
        (b"READY=1\nSTATUS=serving on 8000\n", {"READY": "1", "STATUS": "serving on 8000"}),
        (b"STATUS=a=b", {"STATUS": "a=b"}),
        (b"garbage\n\n=x\nMAINPID=42", {"MAINPID": "42"}),
        (b"STATUS=caf\xc3\xa9 \xff", {"STATUS": "caf\u00e9 \ufffd"}),
        (b"", {}),
    ],
)
def test_parse_notify_message(data: bytes, expected: dict[str, str]) -> None:
    assert parse_notify_message(data) == expected


def test_notify_handle_message_records_fields() -> None:
    sock = NotifySocket(Path("/run/x.notify"))
    sock.handle_message({"STATUS": "warming up", "MAINPID": "1234"})
    assert sock.status == "warming up"
    assert sock.mainpid == 1234
    assert not sock.ready
    sock.handle_message({"READY": "0", "MAINPID": "nope"})
    assert not sock.ready
    assert sock.mainpid == 1234
    sock.handle_message({"READY": "1"})
    assert sock.ready
    sock.reset()
    assert not sock.ready
    assert sock.status is None
    assert sock.mainpid is None


def test_notify_env_names_the_bound_path() -> None:
    sock = NotifySocket(Path("/srv/state/run/api.notify"))
    assert sock.env == {"NOTIFY_SOCKET": "/srv/state/run/api.notify"}


def test_short_socket_path_is_kept() -> None:
    path = Path("/tmp/state/run/api.notify")
    assert socket_path_for(path) == path


def test_long_socket_path_falls_back_to_stable_short_temp_path() -> None:
    long_path = Path("/home/someone/" + "deep/" * 30 + "run/api.notify")
    other = Path("/home/someone/" + "deep/" * 30 + "run/db.notify")
    short = socket_path_for(long_path)
    assert len(str(short).encode()) <= MAX_SOCKET_PATH_BYTES
    assert short.parent.parent == Path(tempfile.gettempdir())
    assert short.parent.name.startswith("mpsv3-")
    assert socket_path_for(long_path) == short
    assert socket_path_for(other) != short


def test_event_driven_kinds_are_not_polled(tmp_path: Path) -> None:
    for probe in ({"log": {"pattern": "x"}}, {"notify": True}):
        spec = ReadinessSpec.model_validate(probe)
        with pytest.raises(ValueError, match="not polled"):
            asyncio.run(run_check(check_plan(spec), 1.0, cwd=tmp_path, env={}))


def test_probe_runner_closes_its_kept_connections(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        server = await asyncio.start_server(_answer_200, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        runner = ProbeRunner()
        spec = check_plan(ReadinessSpec.model_validate({"http_get": {"url": f"http://127.0.0.1:{port}/"}}))
        result = await runner.check(spec, 5.0, cwd=tmp_path, env={})
        kept = runner.idle_connections()
        await runner.aclose()
        server.close()
        assert result.ok
        return kept, runner.idle_connections()

    assert asyncio.run(scenario()) == (1, 0)


async def _answer_200(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await reader.read()
    writer.close()
