"""Lock files of the old guardian: removed when stale, kept (never killed) when live."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mpsv3.engine.legacy_locks import LegacyLockVerdict, clean_legacy_locks


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "1000"])
    yield proc
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_lock_naming_a_dead_pid_is_removed(tmp_path: Path) -> None:
    pid = dead_pid()
    lock = write(tmp_path / ".launcher.lock", f"{pid}\n")
    assert clean_legacy_locks(tmp_path, [".launcher.lock"]) == [
        LegacyLockVerdict(lock, pid, "removed", f"PID {pid} is not running")
    ]
    assert not lock.exists()


def test_a_lock_held_by_a_live_process_is_kept_and_nothing_is_killed(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    lock = write(tmp_path / ".locks" / "ws.pid", json.dumps({"pid": sleeper.pid}))
    verdicts = clean_legacy_locks(tmp_path, [".locks/*.pid"])
    assert verdicts == [
        LegacyLockVerdict(lock, sleeper.pid, "kept", f"PID {sleeper.pid} is alive (sleep 1000)")
    ]
    assert lock.exists()
    assert sleeper.poll() is None


def test_a_lock_whose_pid_was_reused_is_removed(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    lock = write(tmp_path / ".launcher.lock", str(sleeper.pid))
    written = psutil.Process(sleeper.pid).create_time() - 3600
    os.utime(lock, (written, written))  # written an hour before this process started
    [verdict] = clean_legacy_locks(tmp_path, [".launcher.lock"])
    assert verdict.action == "removed"
    assert "reused" in verdict.reason
    assert sleeper.poll() is None


@pytest.mark.parametrize("content", ["", "garbage\n", '{"owner": "guardian"}'])
def test_a_lock_without_a_pid_is_removed(tmp_path: Path, content: str) -> None:
    lock = write(tmp_path / ".launcher.lock", content)
    assert clean_legacy_locks(tmp_path, [".launcher.lock"]) == [
        LegacyLockVerdict(lock, None, "removed", "no PID in it")
    ]


def test_a_lock_naming_us_is_removed(tmp_path: Path) -> None:
    lock = write(tmp_path / ".launcher.lock", str(os.getpid()))
    [verdict] = clean_legacy_locks(tmp_path, [".launcher.lock"])
    assert (verdict.action, verdict.pid) == ("removed", os.getpid())
    assert not lock.exists()


def test_a_lock_naming_a_zombie_is_removed(tmp_path: Path) -> None:
    zombie = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 5
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        lock = write(tmp_path / ".launcher.lock", str(zombie.pid))
        [verdict] = clean_legacy_locks(tmp_path, [".launcher.lock"])
        assert (verdict.action, verdict.pid) == ("removed", zombie.pid)
        assert "zombie" in verdict.reason
        assert not lock.exists()
    finally:
        zombie.wait()


def test_an_unreadable_lock_is_kept(tmp_path: Path) -> None:
    lock = write(tmp_path / ".launcher.lock", "123")
    lock.chmod(0)
    try:
        if os.access(lock, os.R_OK):
            pytest.skip("running as a user who can read any file")
        [verdict] = clean_legacy_locks(tmp_path, [".launcher.lock"])
        assert verdict.action == "kept"
        assert verdict.reason.startswith("cannot read it")
    finally:
        lock.chmod(0o600)


def test_a_directory_matching_the_pattern_is_skipped(tmp_path: Path) -> None:
    (tmp_path / ".locks" / "odd.pid").mkdir(parents=True)
    assert clean_legacy_locks(tmp_path, [".locks/*.pid"]) == []


def test_globs_with_double_star_each_file_judged_once(tmp_path: Path) -> None:
    pid = dead_pid()
    first = write(tmp_path / ".locks" / "a.pid", str(pid))
    second = write(tmp_path / "deep" / "er" / ".locks" / "b.pid", str(pid))
    verdicts = clean_legacy_locks(tmp_path, ["**/.locks/*.pid", ".locks/*.pid", "missing/*.lock"])
    assert sorted(v.path for v in verdicts) == sorted([first, second])
    assert {v.action for v in verdicts} == {"removed"}
