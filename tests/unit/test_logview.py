"""Log tails and following across rotation, recreation and truncation, on real files."""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import pytest

from mpsv3.cli.logview import LogFollower, log_path, tail_lines
from mpsv3.errors import MpsvError
from support import config, run_cli, service


def write(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def numbered(start: int, stop: int) -> str:
    return "".join(f"line {i}\n" for i in range(start, stop))


def test_log_path() -> None:
    assert log_path(Path("/s"), "ws_api") == Path("/s/logs/ws_api.log")


def test_tail_lines_takes_the_end(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    write(log, numbered(0, 500))
    assert tail_lines(log, 3) == ["line 497", "line 498", "line 499"]
    assert tail_lines(log, 0) == []
    assert len(tail_lines(log, 10_000)) == 500


def test_tail_lines_across_blocks_and_partial_last_line(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    long_line = "x" * 200_000
    write(log, f"first\n{long_line}\nlast without newline")
    assert tail_lines(log, 2) == [long_line, "last without newline"]
    assert tail_lines(log, 5) == ["first", long_line, "last without newline"]


def test_tail_lines_reaches_into_the_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    write(tmp_path / "api.log.1", numbered(0, 10))
    write(log, numbered(10, 12))
    assert tail_lines(log, 4) == ["line 8", "line 9", "line 10", "line 11"]
    assert tail_lines(tmp_path / "missing.log", 4) == []


def test_tail_lines_decodes_bad_bytes_and_crlf(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_bytes(b"ok\r\n\xff\xfebad\n")
    assert tail_lines(log, 2) == ["ok", "\ufffd\ufffdbad"]


def test_follower_starts_after_the_last_complete_line(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    write(log, numbered(0, 5) + "half")
    with LogFollower(log) as follower:
        assert follower.tail(2) == ["line 3", "line 4"]
        assert follower.read_new() == []
        write(log, " done\nline 6\n")
        assert follower.read_new() == ["half done", "line 6"]
        assert follower.read_new() == []


def test_follower_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    write(log, numbered(0, 3))
    with LogFollower(log) as follower:
        write(log, numbered(3, 5) + "cut")
        log.rename(tmp_path / "api.log.1")
        assert follower.read_new() == ["line 3", "line 4"]  # no new file yet: keep the old
        write(tmp_path / "api.log.1", " off\n")  # a late write to the rotated file
        write(log, numbered(5, 7))
        assert follower.read_new() == ["cut off", "line 5", "line 6"]
        write(log, numbered(7, 8))
        assert follower.read_new() == ["line 7"]


def test_follower_survives_recreation_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    write(log, numbered(0, 3))
    with LogFollower(log) as follower:
        log.unlink()
        write(log, numbered(100, 102))
        assert follower.read_new() == ["line 100", "line 101"]
        with open(log, "w", encoding="utf-8") as handle:
            handle.write("fresh\n")
        assert follower.read_new() == ["fresh"]


def test_follower_of_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with LogFollower(log) as follower:
        assert follower.tail(10) == []
        assert follower.read_new() == []
        write(log, numbered(0, 2))
        assert follower.read_new() == ["line 0", "line 1"]


def test_follow_needs_the_logs_folder(tmp_path: Path) -> None:
    with LogFollower(tmp_path / "nowhere" / "api.log") as follower, pytest.raises(MpsvError):
        next(follower.follow())


def test_follow_wakes_on_writes_across_rotation(tmp_path: Path) -> None:
    """The real thing: a thread follows with watchfiles while this one writes and rotates."""
    log = tmp_path / "api.log"
    write(log, numbered(0, 2))
    received: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    follower = LogFollower(log)

    def run() -> None:
        for line in follower.follow(stop):
            received.put(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def expect(lines: list[str]) -> None:
        got = []
        deadline = time.monotonic() + 15
        while len(got) < len(lines) and time.monotonic() < deadline:
            try:
                got.append(received.get(timeout=0.5))
            except queue.Empty:
                continue
        assert got == lines

    try:
        time.sleep(0.3)  # let the watcher start; anything earlier is still read on a safety wake
        write(log, numbered(2, 4))
        expect(["line 2", "line 3"])
        os.rename(log, tmp_path / "api.log.1")
        write(log, numbered(4, 6))
        expect(["line 4", "line 5"])
        log.unlink()  # a restart that recreates the file
        write(log, numbered(6, 7))
        expect(["line 6"])
    finally:
        stop.set()
        thread.join(10)
        follower.close()
    assert not thread.is_alive()
    assert received.empty()


# ------------------------------------------------------------------ the `logs` command

CONFIG = config(*(service(sid, ["python", "-c", "pass"]) for sid in ("api", "db")), name="logtest")


def test_logs_command_reads_files_without_a_supervisor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "services.yaml"
    config.write_text(CONFIG)
    logs = tmp_path / ".mpsv3" / "logs"
    logs.mkdir(parents=True)
    write(logs / "api.log.1", numbered(0, 3))
    write(logs / "api.log", numbered(3, 5))
    assert run_cli(capsys, "logs", "api", "-n", "3", "-c", str(config)) == (
        0,
        "line 2\nline 3\nline 4\n",
        "",
    )
    assert run_cli(capsys, "logs", "api", "-c", str(config))[1] == numbered(0, 5)


def test_logs_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "services.yaml"
    config.write_text(CONFIG)
    code, out, err = run_cli(capsys, "logs", "web", "-c", str(config))
    assert (code, out, err) == (1, "", "mpsv3: unknown service 'web' (valid: api, db)\n")
    code, out, err = run_cli(capsys, "logs", "db", "-c", str(config))
    assert (code, out) == (1, "")
    assert err.startswith("mpsv3: no log for 'db' yet (")
    code, _out, err = run_cli(capsys, "logs", "db", "-f", "-c", str(config))
    assert code == 1 and "no logs yet" in err
