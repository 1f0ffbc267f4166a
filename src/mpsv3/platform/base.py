"""What every platform shares: exit statuses, the process-tree protocol, the stop sequence.

Why here: the runner talks to a spawned service only through :class:`ProcessTree`, so
the POSIX and Windows implementations can differ in how they find and signal a tree while
the stop sequence (:func:`terminate`) is written once. Nothing in this module spawns or
signals a process itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mpsv3._lazy import lazy_module

if TYPE_CHECKING:
    import psutil
else:
    psutil = lazy_module("psutil")

# Moved to dirs.py (private directories and files); re-exported for existing importers.
from mpsv3.platform.dirs import lease_file_name as lease_file_name
from mpsv3.platform.dirs import runtime_dir as runtime_dir

#: Environment variables that mark a process as started by an mpsv3 instance for a service.
INSTANCE_MARKER = "MPSV3_INSTANCE"
SERVICE_MARKER = "MPSV3_SERVICE"

#: Tolerance when comparing a recorded process start time with the live one: psutil reports
#: start times from clock ticks, so two reads of the same process can differ slightly.
CREATE_TIME_TOLERANCE_S = 0.05

#: How long :func:`terminate` waits for the tree to vanish after the final kill.
KILL_WAIT_S = 5.0


class SpawnError(Exception):
    """A service could not be started (its program is missing, not executable, bad cwd).

    The message is one line meant for the operator, for example
    ``cannot start 'foo': No such file or directory``.
    """


@dataclass(frozen=True)
class ExitStatus:
    """How a service's leader ended: an exit code, or the signal that killed it."""

    code: int | None
    signal: str | None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """Convert a ``subprocess`` return code (negative = killed by that signal)."""
        if returncode < 0:
            return cls(code=None, signal=signal_name(-returncode))
        return cls(code=returncode, signal=None)

    def describe(self) -> str:
        """``exit 1`` or ``killed by SIGKILL``: the wording used in logs and status."""
        if self.signal is not None:
            return f"killed by {self.signal}"
        return f"exit {self.code}"


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9; ``signal 42`` for a number without a name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass(frozen=True)
class ProcessRecord:
    """One spawned leader as written to the runtime state file, for reclaiming leftovers."""

    service: str
    pid: int
    pgid: int | None
    create_time: float
    stop_signal: str = "SIGTERM"
    grace_s: float = 10.0
    cgroup: str | None = None


class ProcessTree(Protocol):
    """One spawned service: its leader, its group, everything it started.

    Owned by the service's runner task; not shared between tasks.
    """

    pid: int
    pgid: int | None
    create_time: float
    output: asyncio.StreamReader

    async def wait(self) -> ExitStatus:
        """The leader's exit, reported by the OS (no polling)."""
        ...

    def send_signal(self, signame: str) -> None:
        """Send ``signame`` to the whole tree; never raises when it is already gone."""
        ...

    def signal_leader(self, signame: str) -> None:
        """Send ``signame`` to the leader only (systemd's ``kill -HUP $MAINPID``)."""
        ...

    def resume(self) -> None:
        """Continue every stopped (SIGSTOP) member, so that a stop signal is acted on."""
        ...

    def kill(self) -> None:
        """Kill everything of the tree at once (SIGKILL / TerminateJobObject)."""
        ...

    def alive_members(self) -> list[int]:
        """PIDs of the tree still alive: group, descendants and marked escapees."""
        ...

    async def wait_gone(self, timeout: float) -> bool:
        """Wait until every member has exited; True if that happened within ``timeout``."""
        ...


def leader_identity(pid: int, env: dict[str, str]) -> tuple[float, tuple[str, str] | None]:
    """What recognises a spawned tree later: its leader's start time and its markers."""
    create_time = start_time(pid)
    if create_time is None:
        create_time = time.time()
    instance, service = env.get(INSTANCE_MARKER), env.get(SERVICE_MARKER)
    return create_time, ((instance, service) if instance and service else None)


def start_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch, as psutil's ``create_time`` says it.

    Linux reads ``/proc`` (boot time plus the start tick) without loading psutil; elsewhere
    psutil. None when the process is gone.
    """
    if sys.platform == "linux":
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _boot_time() -> float:
    if not _BOOT:
        with open("/proc/stat", "rb") as handle:
            _BOOT.append(float(next(line for line in handle if line.startswith(b"btime")).split()[1]))
    return _BOOT[0]


_BOOT: list[float] = []


def process_markers(instance: str, service: str) -> dict[str, str]:
    """The environment entries that let a later supervisor recognise its own processes.

    The runner puts them into every service's environment; they are inherited by every
    descendant, including ones that escape the process group.
    """
    return {INSTANCE_MARKER: instance, SERVICE_MARKER: service}


async def done_within(done: asyncio.Future[None], timeout: float) -> bool:
    """Whether ``done`` resolves within ``timeout`` seconds (it is not cancelled if not)."""
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout=max(timeout, 0.0))
    except asyncio.TimeoutError:
        return False
    return True


async def wait_members_gone(tree: ProcessTree, timeout: float) -> bool:
    """Wait until no member of ``tree`` is alive, at most ``timeout``; True if none is left.

    Members can join while we wait (a fork in the tree), so the list is read again each time
    the platform's exit wait returns, until it is empty or the time is up.
    """
    from mpsv3.platform import wait_pids_exit

    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout, 0.0)
    while True:
        members = tree.alive_members()
        if not members:
            return True
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        await wait_pids_exit(members, remaining)


async def terminate(tree: ProcessTree, signame: str, grace_s: float) -> ExitStatus:
    """Stop a tree: ``signame`` (and SIGCONT) to all of it, ``grace_s`` to leave, then kill.

    The one stop routine of mpsv3: services, leftovers of an earlier run, probe commands and
    the alert command all end through it.

    Args:
        tree: the spawned service.
        signame: the graceful stop signal, e.g. ``SIGTERM``.
        grace_s: how long the whole tree (leader and every member) may take to exit.

    Returns:
        The leader's exit status (``killed by SIGKILL`` when the grace period ran out
        before the leader itself exited).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(grace_s, 0.0)
    tree.send_signal(signame)
    tree.resume()  # a stopped process would wait out the whole grace before acting on it
    leader = asyncio.ensure_future(tree.wait())
    try:
        await asyncio.wait_for(asyncio.shield(leader), timeout=max(deadline - loop.time(), 0.0))
        all_gone = await tree.wait_gone(max(deadline - loop.time(), 0.0))
    except asyncio.TimeoutError:
        all_gone = False
    if not all_gone:
        tree.kill()
        await leader
        if not await tree.wait_gone(KILL_WAIT_S):
            tree.kill()
            await tree.wait_gone(KILL_WAIT_S)
    return await leader
