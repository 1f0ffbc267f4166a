"""Windows process control: a Job Object per service, CTRL_BREAK to stop, named-mutex lease.

Why here: Windows has no process groups to signal and no flock. A service is started
suspended in a new console process group, put into its own Job Object (kill-on-close, so a
dying supervisor takes every service with it), then resumed: nothing it starts can escape
the job before the assignment. A graceful stop is CTRL_BREAK_EVENT to its group (it
reaches the service only when it shares the supervisor's console); the hard stop is
TerminateJobObject. Everything goes through ctypes; no pywin32.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from mpsv3.platform.base import ExitStatus, SpawnError, leader_identity, wait_members_gone
from mpsv3.platform.leader import LeaderProcess, start_leader
from mpsv3.platform.scan import is_alive, iter_marked, self_and_ancestors

assert sys.platform == "win32"

# After the assert: type-checked for Windows only, like the rest of this module.
from mpsv3.platform.win32_api import (  # noqa: E402
    CREATE_SUSPENDED,
    KILLED_EXIT_CODE,
    OUTPUT_LIMIT,
    assign_and_resume,
    close_handle,
    create_kill_on_close_job,
    job_pids,
    kernel32,
)


async def wait_pids_exit(pids: list[int], timeout: float) -> bool:
    """Wait in a helper thread (psutil waits on the process handles) for every pid to exit."""
    procs = []
    for pid in set(pids):
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    if not procs:
        return True
    _, alive = await asyncio.to_thread(psutil.wait_procs, procs, max(timeout, 0.0))
    return not [proc for proc in alive if is_alive(proc)]


class WindowsProcessTree:
    """A service in its own console process group and Job Object.

    Owned by the service's runner task. The job handle is closed once the whole tree is
    gone; until then, a dying supervisor closing it kills the tree (KILL_ON_JOB_CLOSE).
    """

    def __init__(self, proc: LeaderProcess, job: int, env: dict[str, str]) -> None:
        self._proc = proc
        self._job: int | None = job
        self._killed = False
        self.pid: int = proc.pid
        self.pgid: int | None = None
        self.output: asyncio.StreamReader = proc.output
        self.create_time, self._markers = leader_identity(proc.pid, env)

    async def wait(self) -> ExitStatus:
        returncode = await self._proc.wait()
        if self._killed and returncode == KILLED_EXIT_CODE:
            return ExitStatus(code=None, signal="SIGKILL")
        return ExitStatus.from_returncode(returncode)

    def alive_members(self) -> list[int]:
        excluded = self_and_ancestors()
        members: set[int] = set()
        if self._job is not None:
            members.update(job_pids(self._job))
        if self._markers is not None:
            instance, service = self._markers
            members.update(proc.pid for proc in iter_marked(instance, service))
        alive = []
        for pid in sorted(members - excluded):
            try:
                if is_alive(psutil.Process(pid)):
                    alive.append(pid)
            except psutil.Error:
                continue
        return alive

    def send_signal(self, signame: str) -> None:
        """SIGKILL kills the job; any other name is CTRL_BREAK_EVENT to the leader's group."""
        if signame.strip().upper() in ("SIGKILL", "KILL", "9"):
            self.kill()
            return
        if self._proc.returncode is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.CTRL_BREAK_EVENT)

    def signal_leader(self, signame: str) -> None:
        """Only the leader's console group can be signalled: the same as ``send_signal``."""
        self.send_signal(signame)

    def resume(self) -> None:
        """Windows has no stopped processes to continue."""

    def kill(self) -> None:
        self._killed = True
        if self._job is not None:
            kernel32.TerminateJobObject(self._job, KILLED_EXIT_CODE)
        if self._markers is not None:
            instance, service = self._markers
            for proc in iter_marked(instance, service):
                with contextlib.suppress(psutil.Error):
                    proc.kill()

    async def wait_gone(self, timeout: float) -> bool:
        if not await wait_members_gone(self, timeout):
            return False
        if self._proc.returncode is not None:
            job, self._job = self._job, None
            close_handle(job)
        return True


async def spawn(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    *,
    user: str | None = None,
    group: str | None = None,
    cgroup: Path | None = None,
) -> WindowsProcessTree:
    """Start ``argv`` suspended in a new process group, put it in a new job, resume it.

    ``user``/``group`` are refused (no switch on Windows); ``cgroup`` does not apply.

    Raises:
        SpawnError: the program cannot be executed, or the job cannot be set up.
    """
    if not argv:
        raise SpawnError("cannot start an empty command")
    if user is not None or group is not None:
        raise SpawnError("cannot start as another user: user: and group: work on POSIX systems only")
    try:
        job = create_kill_on_close_job()
    except OSError as exc:
        raise SpawnError(f"cannot start {argv[0]!r}: cannot create a job object: {exc}") from exc
    try:
        proc = await start_leader(
            argv,
            OUTPUT_LIMIT,
            cwd=cwd,
            env=env,
            creationflags=subprocess.CREATE_NEW_PROCESS_GROUP | CREATE_SUSPENDED,
        )
    except OSError as exc:
        close_handle(job)
        reason = exc.strerror or str(exc)
        raise SpawnError(f"cannot start {argv[0]!r}: {reason}") from exc
    try:
        assign_and_resume(job, proc.pid)
    except OSError as exc:
        with contextlib.suppress(OSError):
            proc.kill()
        await proc.wait()
        close_handle(job)
        raise SpawnError(f"cannot start {argv[0]!r}: cannot put it in a job object: {exc}") from exc
    return WindowsProcessTree(proc, job, env)


def prepare_supervisor(loop: asyncio.AbstractEventLoop) -> None:
    """Check that the loop can run subprocesses (the proactor loop, the default)."""
    if not isinstance(loop, asyncio.ProactorEventLoop):
        raise RuntimeError("mpsv3 needs asyncio's ProactorEventLoop on Windows")


