"""Process trees with real processes: spawn, terminate the whole tree, escapees, reaping.

Acceptance of issue 4: stopping a service stops everything it started, including a child
that ignores SIGTERM and a daemon that double-forked out of the group.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from mpsv3 import platform
from mpsv3._compat import timeout
from mpsv3.platform import ExitStatus, ProcessTree, SpawnError

HELPERS = Path(__file__).resolve().parent / "helpers"


def marked_env(service: str = "svc") -> tuple[str, dict[str, str]]:
    instance = f"test-{uuid.uuid4().hex[:8]}"
    return instance, dict(os.environ, **platform.process_markers(instance, service))


def alive(pids: list[int]) -> list[int]:
    """The pids still running (zombies count as gone: they have exited)."""
    living = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                living.append(pid)
        except psutil.NoSuchProcess:
            continue
    return living


async def members_at_least(tree: ProcessTree, count: int) -> list[int]:
    """The tree's members once it has at least ``count`` of them (it is still forking)."""
    async with timeout(10):
        while len(members := tree.alive_members()) < count:
            await asyncio.sleep(0.05)
    return members


def test_terminate_stops_the_whole_group(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[int], ExitStatus, list[int]]:
        _, env = marked_env()
        tree = await platform.spawn(["sh", "-c", "sleep 1000 & sleep 1000 & wait"], tmp_path, env)
        assert tree.pgid == tree.pid
        members = await members_at_least(tree, 3)
        status = await platform.terminate(tree, "SIGTERM", 5)
        return members, status, tree.alive_members()

    members, status, left = asyncio.run(scenario())
    assert len(members) == 3
    assert status == ExitStatus(None, "SIGTERM")
    assert left == []
    assert alive(members) == []


def ignores_sigterm(pid: int) -> bool:
    """Whether ``pid`` ignores SIGTERM (Linux: the SigIgn mask in /proc; else assume so)."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return True
    for line in status.read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_a_tree_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[int], ExitStatus, float]:
        _, env = marked_env()
        # The ignored disposition is inherited by the sleep child through exec.
        tree = await platform.spawn(["sh", "-c", "trap '' TERM; sleep 1000"], tmp_path, env)
        members = await members_at_least(tree, 2)
        for pid in members:
            assert ignores_sigterm(pid)
        loop = asyncio.get_running_loop()
        started = loop.time()
        status = await platform.terminate(tree, "SIGTERM", 0.5)
        return members, status, loop.time() - started

    members, status, elapsed = asyncio.run(scenario())
    assert status == ExitStatus(None, "SIGKILL")
    assert elapsed >= 0.45
    assert elapsed < 5
    assert alive(members) == []


def test_a_double_forked_daemon_is_found_by_its_markers(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, bool, ExitStatus]:
        _, env = marked_env()
        tree = await platform.spawn(
            [sys.executable, str(HELPERS / "double_fork.py"), "1000"], tmp_path, env
        )
        daemon = int((await tree.output.readline()).split()[1])
        # Out of the group and the session: only the environment markers find it.
        assert os.getpgid(daemon) != tree.pgid
        assert os.getsid(daemon) != tree.pid
        found = daemon in tree.alive_members()
        status = await platform.terminate(tree, "SIGTERM", 5)
        return daemon, found, status

    daemon, found, status = asyncio.run(scenario())
    assert found
    assert status == ExitStatus(None, "SIGTERM")
    assert alive([daemon]) == []


def test_a_tree_without_markers_does_not_claim_strangers(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "1000"], env=marked_env()[1])
    try:

        async def scenario() -> list[int]:
            tree = await platform.spawn(["sleep", "1000"], tmp_path, dict(os.environ))
            members = tree.alive_members()
            await platform.terminate(tree, "SIGTERM", 5)
            return members

        members = asyncio.run(scenario())
        assert stranger.pid not in members
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_the_leader_exit_is_reported_while_a_child_keeps_the_output_open(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[ExitStatus, float, list[int]]:
        _, env = marked_env()
        tree = await platform.spawn(["sh", "-c", "sleep 1000 & exit 3"], tmp_path, env)
        loop = asyncio.get_running_loop()
        started = loop.time()
        status = await asyncio.wait_for(tree.wait(), 5)
        took = loop.time() - started
        members = tree.alive_members()
        await platform.terminate(tree, "SIGTERM", 5)
        return status, took, members

    status, took, members = asyncio.run(scenario())
    assert status == ExitStatus(3, None)
    assert took < 3
    assert len(members) == 1  # the sleep, still in the group


def test_output_merges_stdout_and_stderr(tmp_path: Path) -> None:
    async def scenario() -> tuple[bytes, ExitStatus]:
        tree = await platform.spawn(
            ["sh", "-c", "echo out; echo err >&2; exit 2"], tmp_path, dict(os.environ)
        )
        output = await tree.output.read()
        return output, await tree.wait()

    output, status = asyncio.run(scenario())
    assert output.split() == [b"out", b"err"]
    assert status == ExitStatus(2, None)


def test_spawn_runs_in_cwd_with_env_and_no_stdin(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        env = dict(os.environ, GREETING="hello")
        tree = await platform.spawn(
            ["sh", "-c", 'pwd; echo "$GREETING"; cat; echo done'], tmp_path, env
        )
        output = await tree.output.read()
        await tree.wait()
        return output

    assert asyncio.run(scenario()).decode().split() == [str(tmp_path.resolve()), "hello", "done"]


@pytest.mark.parametrize(
    ("argv", "cwd_name", "message"),
    [
        (
            ["no-such-program-mpsv3"],
            None,
            "cannot start 'no-such-program-mpsv3': No such file or directory",
        ),
        (["sh"], "missing-dir", "cannot start 'sh': No such file or directory"),
        ([], None, "cannot start an empty command"),
    ],
)
def test_spawn_errors_are_one_line(
    tmp_path: Path, argv: list[str], cwd_name: str | None, message: str
) -> None:
    cwd = tmp_path / cwd_name if cwd_name else tmp_path

    async def scenario() -> None:
        await platform.spawn(argv, cwd, dict(os.environ))

    with pytest.raises(SpawnError) as excinfo:
        asyncio.run(scenario())
    assert str(excinfo.value).startswith(message)
    assert "\n" not in str(excinfo.value)


def test_spawn_error_for_a_file_that_is_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    script.chmod(0o644)

    async def scenario() -> None:
        await platform.spawn([str(script)], tmp_path, dict(os.environ))

    with pytest.raises(SpawnError, match="Permission denied"):
        asyncio.run(scenario())


def run_scenario(name: str, tmp_path: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(HELPERS / "supervisor_scenario.py"), name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return data


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreaper is Linux-only")
def test_subreaper_adopts_and_reaps_orphans_without_stealing_exits(tmp_path: Path) -> None:
    result = run_scenario("orphans", tmp_path)
    assert result == {
        "leader": "exit 0",  # asyncio still got the leader's real status
        "subreaper": True,
        "adopted": True,
        "gone": True,
        "zombies": [],
        "orphan_exists": False,
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreaper is Linux-only")
def test_subreaper_terminate_kills_an_adopted_daemon(tmp_path: Path) -> None:
    result = run_scenario("escape", tmp_path)
    assert result == {
        "leader": "exit 0",
        "adopted": True,
        "member": True,
        "daemon_exists": False,
        "zombies": [],
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pdeathsig is Linux-only")
def test_a_killed_supervisor_takes_its_leaders_with_it(tmp_path: Path) -> None:
    supervisor = subprocess.Popen(
        [sys.executable, str(HELPERS / "supervisor_scenario.py"), "pdeath"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert supervisor.stdout is not None
        leader = int(supervisor.stdout.readline().split()[1])
        assert psutil.Process(leader).ppid() == supervisor.pid
    finally:
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
    deadline = time.monotonic() + 5
    while alive([leader]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive([leader]) == []


def test_port_holders_finds_a_listener(tmp_path: Path, port: int) -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time\n"
            "s = socket.socket()\n"
            f"s.bind(('127.0.0.1', {port}))\n"
            "s.listen()\n"
            "print('listening', flush=True)\n"
            "time.sleep(1000)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "listening"
        holders = platform.port_holders(port)
        assert [pid for pid, _ in holders] == [server.pid]
        assert holders[0][1].startswith("python")
    finally:
        server.kill()
        server.wait()
    assert platform.port_holders(port) == []
