"""Pure parts of the platform layer: exit statuses, names, markers, the stop sequence."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from mpsv3.platform import ExitStatus, process_markers, runtime_dir, terminate
from mpsv3.platform.base import lease_file_name, signal_name
from mpsv3.platform.posix import parse_signal


@pytest.mark.parametrize(
    ("returncode", "expected", "text"),
    [
        (0, ExitStatus(0, None), "exit 0"),
        (1, ExitStatus(1, None), "exit 1"),
        (99, ExitStatus(99, None), "exit 99"),
        (-9, ExitStatus(None, "SIGKILL"), "killed by SIGKILL"),
        (-15, ExitStatus(None, "SIGTERM"), "killed by SIGTERM"),
    ],
)
def test_exit_status_from_returncode(returncode: int, expected: ExitStatus, text: str) -> None:
    status = ExitStatus.from_returncode(returncode)
    assert status == expected
    assert status.describe() == text


def test_signal_name_without_a_name() -> None:
    assert signal_name(int(signal.SIGHUP)) == "SIGHUP"
    assert signal_name(200) == "signal 200"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SIGTERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("HUP", signal.SIGHUP),
        ("9", signal.SIGKILL),
    ],
)
def test_parse_signal(text: str, expected: signal.Signals) -> None:
    assert parse_signal(text) is expected


def test_parse_signal_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        parse_signal("SIGNOPE")


def test_process_markers() -> None:
    assert process_markers("mind", "ws_api") == {
        "MPSV3_INSTANCE": "mind",
        "MPSV3_SERVICE": "ws_api",
    }


def test_lease_file_name_is_safe_and_collision_free() -> None:
    assert lease_file_name("mind-protocol_2.x") == "mind-protocol_2.x"
    assert lease_file_name("a b") == "a%20b"
    assert lease_file_name("a/b") == "a%2Fb"
    assert lease_file_name("a%20b") != lease_file_name("a b")
    assert "/" not in lease_file_name("../../etc/passwd")


def test_runtime_dir_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPSV3_RUNTIME_DIR", str(tmp_path / "rt"))
    path = runtime_dir()
    assert path == tmp_path / "rt"
    assert path.is_dir()
    assert path.stat().st_mode & 0o777 == 0o700


def test_runtime_dir_falls_back_to_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MPSV3_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert runtime_dir() == tmp_path / "mpsv3"


class FakeTree:
    """A ProcessTree whose members leave when told to, recording what it was sent."""

    def __init__(self, obeys: set[str]) -> None:
        self.pid = 100
        self.pgid: int | None = 100
        self.create_time = 0.0
        self.output = asyncio.StreamReader()
        self.obeys = obeys
        self.sent: list[str] = []
        self.members = {100, 101}
        self.exited: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self.changed = asyncio.Event()
        self.resumed = 0

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self.exited)

    def send_signal(self, signame: str) -> None:
        self.sent.append(signame)
        if signame in self.obeys:
            self._die(signame)

    def kill(self) -> None:
        self.sent.append("KILL")
        self._die("SIGKILL")

    def signal_leader(self, signame: str) -> None:
        self.send_signal(signame)

    def resume(self) -> None:
        self.resumed += 1

    def _die(self, signame: str) -> None:
        self.members.clear()
        if not self.exited.done():
            self.exited.set_result(ExitStatus(None, signame))
        self.changed.set()

    def alive_members(self) -> list[int]:
        return sorted(self.members)

    async def wait_gone(self, timeout: float) -> bool:
        if not self.members:
            return True
        try:
            await asyncio.wait_for(self.changed.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return not self.members


def test_terminate_stops_with_the_graceful_signal_when_obeyed() -> None:
    async def scenario() -> tuple[ExitStatus, list[str]]:
        tree = FakeTree(obeys={"SIGTERM"})
        status = await terminate(tree, "SIGTERM", 5)
        return status, tree.sent

    status, sent = asyncio.run(scenario())
    assert status == ExitStatus(None, "SIGTERM")
    assert sent == ["SIGTERM"]


def test_terminate_continues_a_stopped_tree_after_the_stop_signal() -> None:
    async def scenario() -> int:
        tree = FakeTree(obeys=set())
        await terminate(tree, "SIGTERM", 0.01)
        return tree.resumed

    assert asyncio.run(scenario()) == 1


def test_terminate_kills_after_the_grace_period() -> None:
    async def scenario() -> tuple[ExitStatus, list[str], float]:
        tree = FakeTree(obeys=set())
        loop = asyncio.get_running_loop()
        started = loop.time()
        status = await terminate(tree, "SIGTERM", 0.2)
        return status, tree.sent, loop.time() - started

    status, sent, elapsed = asyncio.run(scenario())
    assert status == ExitStatus(None, "SIGKILL")
    assert sent == ["SIGTERM", "KILL"]
    assert 0.15 <= elapsed < 3.0


def test_terminate_kills_members_that_outlive_the_leader() -> None:
    async def scenario() -> tuple[ExitStatus, list[str]]:
        tree = FakeTree(obeys=set())
        tree.exited.set_result(ExitStatus(0, None))  # the leader left, a member stays
        status = await terminate(tree, "SIGTERM", 0.1)
        return status, tree.sent

    status, sent = asyncio.run(scenario())
    assert status == ExitStatus(0, None)
    assert sent == ["SIGTERM", "KILL"]
