"""Leftovers of a killed run: found by pid + start time + instance marker, then reclaimed.

The safety rule under test: a process is ours only if all three match; a stranger (no
marker, another instance, or a reused pid with another start time) is never returned.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mpsv3 import platform
from mpsv3.platform import ProcessRecord

HELPERS = Path(__file__).resolve().parent / "helpers"


@pytest.fixture
def instance() -> str:
    return f"reclaim-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; killed and reaped at the end whatever happened."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def start(
    started: list[subprocess.Popen[bytes]], argv: list[str], markers: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **(markers or {}))
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.PIPE)
    started.append(proc)
    return proc


def record_of(proc: subprocess.Popen[bytes], service: str = "svc") -> ProcessRecord:
    return ProcessRecord(service, proc.pid, proc.pid, psutil.Process(proc.pid).create_time())


def test_a_recorded_marked_process_is_a_leftover(
    instance: str, started: list[subprocess.Popen[bytes]]
) -> None:
    proc = start(started, ["sleep", "1000"], platform.process_markers(instance, "svc"))
    found = platform.find_leftovers(instance, [record_of(proc)])
    assert [p.pid for p in found] == [proc.pid]


def test_strangers_are_never_leftovers(
    instance: str, started: list[subprocess.Popen[bytes]]
) -> None:
    unmarked = start(started, ["sleep", "1000"], None)
    other = start(started, ["sleep", "1000"], platform.process_markers("another-instance", "svc"))
    reused = start(started, ["sleep", "1000"], platform.process_markers(instance, "svc"))
    records = [
        record_of(unmarked),
        record_of(other),
        # Same pid, but the recorded start time is not this process's: the pid was reused.
        ProcessRecord("svc", reused.pid, reused.pid, record_of(reused).create_time - 60),
        ProcessRecord("svc", os.getpid(), None, psutil.Process().create_time()),
    ]
    assert platform.find_leftovers(instance, records) == []


def test_a_marked_child_of_the_caller_is_not_a_leftover(
    instance: str, started: list[subprocess.Popen[bytes]]
) -> None:
    start(started, ["sleep", "1000"], platform.process_markers(instance, "svc"))
    assert platform.find_leftovers(instance, []) == []


def test_a_double_forked_survivor_is_found_by_its_marker(
    instance: str, started: list[subprocess.Popen[bytes]]
) -> None:
    leader = start(
        started,
        [sys.executable, str(HELPERS / "double_fork.py"), "0"],
        platform.process_markers(instance, "svc"),
    )
    assert leader.stdout is not None
    daemon = int(leader.stdout.readline().split()[1])
    leader.wait()
    try:
        found = platform.find_leftovers(instance, [])
        assert [p.pid for p in found] == [daemon]
        reclaimed = asyncio.run(platform.reclaim(found, grace_s=3))
        assert reclaimed == [daemon]
        assert not psutil.pid_exists(daemon) or psutil.Process(daemon).status() == "zombie"
    finally:
        if psutil.pid_exists(daemon):
            psutil.Process(daemon).kill()


def test_reclaim_stops_the_leftover_and_its_group(
    instance: str, started: list[subprocess.Popen[bytes]]
) -> None:
    proc = start(
        started,
        ["sh", "-c", "sleep 1000 & sleep 1000 & echo up; wait"],
        platform.process_markers(instance, "svc"),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"up"
    group = [p.pid for p in psutil.Process(proc.pid).children()] + [proc.pid]
    found = platform.find_leftovers(instance, [record_of(proc)])
    reclaimed = asyncio.run(platform.reclaim(found, grace_s=3))
    assert sorted(group) == reclaimed
    proc.wait(timeout=5)
    for pid in group:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_reclaim_kills_a_leftover_that_ignores_sigterm(
    instance: str, started: list[subprocess.Popen[bytes]]
) -> None:
    proc = start(
        started,
        [
            sys.executable,
            "-c",
            "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(1000)",
        ],
        platform.process_markers(instance, "svc"),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"up"

    async def scenario() -> tuple[list[int], float]:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        pids = await platform.reclaim(platform.find_leftovers(instance, [record_of(proc)]), 0.3)
        return pids, loop.time() - begin

    pids, took = asyncio.run(scenario())
    assert pids == [proc.pid]
    assert 0.25 <= took < 5
    assert proc.wait(timeout=5) == -9
