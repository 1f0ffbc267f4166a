"""The singleton lease with real processes (acceptance of issue 3).

Exactly one of many simultaneous contenders wins; the others name the winner; the kernel
frees the lease the moment the holder dies (kill -9 included); a leftover file on disk
never blocks; two instance names never conflict.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mpsv3.platform import SingletonLease

CONTENDER = Path(__file__).resolve().parent / "helpers" / "lease_contender.py"


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runtime"
    monkeypatch.setenv("MPSV3_RUNTIME_DIR", str(path))
    return path


@pytest.fixture
def contenders() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def contend(
    contenders: list[subprocess.Popen[str]], name: str, hold_s: float = 60, *extra: str
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(CONTENDER), name, str(hold_s), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    contenders.append(proc)
    return proc


def outcome(proc: subprocess.Popen[str]) -> tuple[str, int | None]:
    assert proc.stdout is not None
    word, pid = proc.stdout.readline().split()
    return word, None if pid == "None" else int(pid)


def test_exactly_one_of_ten_simultaneous_contenders_wins(
    contenders: list[subprocess.Popen[str]],
) -> None:
    procs = [contend(contenders, "stack") for _ in range(10)]
    results = [outcome(proc) for proc in procs]
    winners = [proc for proc, (word, _) in zip(procs, results, strict=True) if word == "ACQUIRED"]
    assert len(winners) == 1
    holder = winners[0].pid
    assert sorted(results) == sorted([("ACQUIRED", holder)] + [("HELD", holder)] * 9)
    for proc in procs:
        if proc is not winners[0]:
            assert proc.wait(timeout=10) == 3


def test_a_killed_holder_frees_the_lease_at_once(contenders: list[subprocess.Popen[str]]) -> None:
    holder = contend(contenders, "stack")
    assert outcome(holder) == ("ACQUIRED", holder.pid)
    assert SingletonLease("stack").holder_pid() == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    reaped = time.monotonic()
    lease = SingletonLease("stack")
    try:
        assert lease.acquire()  # at the first try
        assert time.monotonic() - reaped < 0.1
        assert lease.holder_pid() == os.getpid()
    finally:
        lease.release()
    successor = contend(contenders, "stack")
    assert outcome(successor) == ("ACQUIRED", successor.pid)


def test_a_leftover_lock_file_does_not_block(runtime_dir: Path) -> None:
    runtime_dir.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (runtime_dir / "stack.lock").write_text(f"{dead.pid}\n")
    lease = SingletonLease("stack")
    assert lease.holder_pid() is None  # the file's PID decides nothing
    try:
        assert lease.acquire()
        assert (runtime_dir / "stack.lock").read_text() == f"{os.getpid()}\n"
    finally:
        lease.release()
    assert (runtime_dir / "stack.lock").read_text() == ""


def test_two_instance_names_do_not_conflict(contenders: list[subprocess.Popen[str]]) -> None:
    first = contend(contenders, "mind-protocol")
    second = contend(contenders, "mind-protocol-test")
    assert outcome(first) == ("ACQUIRED", first.pid)
    assert outcome(second) == ("ACQUIRED", second.pid)


def test_a_second_lease_in_the_same_process_is_refused() -> None:
    first, second = SingletonLease("stack"), SingletonLease("stack")
    try:
        assert first.acquire()
        assert first.acquire()  # idempotent for the holder
        assert not second.acquire()
        assert second.holder_pid() == os.getpid()
        first.release()
        assert second.acquire()
    finally:
        first.release()
        second.release()


def test_children_of_the_holder_do_not_inherit_the_lease(
    contenders: list[subprocess.Popen[str]],
) -> None:
    holder = contend(contenders, "stack", 60, "--spawn-child")
    assert outcome(holder) == ("ACQUIRED", holder.pid)
    word, child_pid = outcome(holder)
    assert word == "CHILD"
    assert child_pid is not None
    child = psutil.Process(child_pid)
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert child.is_running()
        lease = SingletonLease("stack")
        try:
            assert lease.acquire()
        finally:
            lease.release()
    finally:
        child.kill()
        child.wait(timeout=5)


def test_the_runtime_dir_and_the_lease_file_are_private(runtime_dir: Path) -> None:
    lease = SingletonLease("stack")
    try:
        assert lease.acquire()
        assert runtime_dir.stat().st_mode & 0o777 == 0o700
        assert (runtime_dir / "stack.lock").stat().st_mode & 0o777 == 0o600
    finally:
        lease.release()
