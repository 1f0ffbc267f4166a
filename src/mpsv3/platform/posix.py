"""POSIX process control: a session per service, group signals, flock lease.

Why here: on POSIX a service's "tree" is its session/process group (``setsid`` at spawn)
plus whatever escaped it but still carries the service's environment markers. On Linux
the extras in ``linux.py`` (parent-death signal, subreaper, pidfd waits) make this tight;
elsewhere the same code runs with kqueue or a helper thread for waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpsv3._lazy import lazy_module

if TYPE_CHECKING:
    import psutil
else:
    psutil = lazy_module("psutil")

from mpsv3.platform.base import (
    ExitStatus,
    SpawnError,
    done_within,
    leader_identity,
    wait_members_gone,
)
from mpsv3.platform.leader import Leader, start_leader
from mpsv3.platform.pressure import is_exhaustion
from mpsv3.platform.scan import is_alive, iter_marked, self_and_ancestors
from mpsv3.platform.users import credentials

assert sys.platform != "win32"

if sys.platform == "linux":
    from mpsv3.platform import cgroups, linux, pidfd_leader, proctable

#: Line limit of the output stream (a longer line is an error for ``readline``).
OUTPUT_LIMIT = 1 << 20


def parse_signal(signame: str) -> signal.Signals:
    """``SIGTERM``, ``TERM`` or ``15`` -> ``signal.SIGTERM``; ``ValueError`` if unknown."""
    name = signame.strip().upper()
    if name.isdigit():
        return signal.Signals(int(name))
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise ValueError(f"unknown signal {signame!r}") from None


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


async def wait_pids_exit(pids: Iterable[int], timeout: float) -> bool:
    """Wait, without polling on the loop, until every pid has exited.

    Linux: pidfds. BSD/macOS: kqueue ``NOTE_EXIT``. Elsewhere: psutil in a thread.

    Returns:
        True if all exited within ``timeout`` seconds.
    """
    wanted = set(pids)
    if not wanted:
        return True
    if sys.platform == "linux":
        try:
            return await linux.wait_pids_exit(wanted, timeout)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
    elif sys.platform != "win32":
        return await _kqueue_wait(wanted, timeout)
    return await _thread_wait(wanted, timeout)


async def _thread_wait(pids: set[int], timeout: float) -> bool:
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    _, alive = await asyncio.to_thread(psutil.wait_procs, procs, max(timeout, 0.0))
    return not [proc for proc in alive if is_alive(proc)]


if sys.platform != "linux" and sys.platform != "win32":
    import select

    async def _kqueue_wait(pids: set[int], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        kq = select.kqueue()
        pending: set[int] = set()
        done: asyncio.Future[None] = loop.create_future()
        try:
            for pid in pids:
                event = select.kevent(
                    pid,
                    filter=select.KQ_FILTER_PROC,
                    flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT,
                    fflags=select.KQ_NOTE_EXIT,
                )
                try:
                    kq.control([event], 0, 0)
                except ProcessLookupError:
                    continue
                pending.add(pid)

            def readable() -> None:
                for event in kq.control(None, 64, 0):
                    pending.discard(event.ident)
                if not pending and not done.done():
                    done.set_result(None)

            if not pending:
                return True
            loop.add_reader(kq.fileno(), readable)
            return await done_within(done, timeout)
        finally:
            loop.remove_reader(kq.fileno())
            kq.close()


class PosixProcessTree:
    """A service spawned as the leader of a new session (pgid == pid).

    Owned by the service's runner task. Members are the group, the leader's descendants,
    and processes carrying this service's markers (double-forked escapees).
    """

    def __init__(self, proc: Leader, env: dict[str, str], cgroup: Path | None = None) -> None:
        self._proc = proc
        self.pid: int = proc.pid
        self.pgid: int | None = proc.pid
        self.output: asyncio.StreamReader = proc.output
        self.create_time, self._markers = leader_identity(proc.pid, env)
        #: The service's cgroup (Linux, when delegated): every member, whatever it did.
        self.cgroup = cgroup

    async def wait(self) -> ExitStatus:
        returncode = await self._proc.wait()
        if sys.platform == "linux":
            linux.forget_child(self.pid)
        return ExitStatus.from_returncode(returncode)

    def alive_members(self) -> list[int]:
        if sys.platform == "linux" and self.cgroup is not None:
            found = set(cgroups.members(self.cgroup)) - self_and_ancestors()
            found.update(self._found_members())
            return sorted(found)
        return self._found_members()

    def _found_members(self) -> list[int]:
        """Members found without a cgroup: the group and session, descendants, marked ones."""
        if sys.platform == "linux" and linux.descendants_are_ours():
            return proctable.tree_members(self.pgid, self.pid, self._proc.returncode is None, self._markers)
        excluded = self_and_ancestors()
        members: set[int] = set()
        pgid = self.pgid
        for proc in psutil.process_iter(["pid", "status"]):
            if proc.pid in excluded or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if pgid is not None and _pgid_of(proc.pid) == pgid:
                members.add(proc.pid)
        if self._proc.returncode is None:
            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(self.pid)
                members.update(c.pid for c in leader.children(recursive=True) if is_alive(c))
        if self._markers is not None:
            instance, service = self._markers
            members.update(proc.pid for proc in iter_marked(instance, service))
        members -= excluded
        return sorted(members)

    def _signal_all(self, signum: signal.Signals) -> None:
        members = self.alive_members()
        pgid = self.pgid
        # The pgid cannot name a stranger's group while our leader is unreaped or any
        # member of the group is alive (the kernel keeps the number in use until then).
        if pgid is not None and (self._proc.returncode is None or pgid in map(_pgid_of, members)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)
        for pid in members:
            if pgid is not None and _pgid_of(pid) == pgid:
                continue
            try:
                os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                continue

    def send_signal(self, signame: str) -> None:
        self._signal_all(parse_signal(signame))

    def signal_leader(self, signame: str) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, parse_signal(signame))

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def kill(self) -> None:
        if sys.platform == "linux" and self.cgroup is not None:
            cgroups.kill(self.cgroup)
        self._signal_all(signal.SIGKILL)

    async def wait_gone(self, timeout: float) -> bool:
        return await wait_members_gone(self, timeout)


def _check_executable(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Raise the SpawnError that exec would raise for a missing or non-executable program."""
    program = argv[0]
    if os.sep in program:
        path = program if os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.exists(path):
            raise SpawnError(f"cannot start {program!r}: No such file or directory")
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise SpawnError(f"cannot start {program!r}: Permission denied")
        return
    if _which(program, env.get("PATH", os.defpath)) is None:
        raise SpawnError(f"cannot start {program!r}: No such file or directory (not found on PATH)")


@functools.lru_cache(maxsize=1024)
def _which(program: str, path: str) -> str | None:
    """``shutil.which``, remembered: a stack of 500 services names a handful of programs."""
    return shutil.which(program, path=path)


def _spawn_error(argv: list[str], exc: OSError) -> SpawnError:
    reason = exc.strerror or str(exc)
    if exc.filename is not None and str(exc.filename) != argv[0]:
        reason = f"{reason}: {exc.filename}"
    return SpawnError(f"cannot start {argv[0]!r}: {reason}")


async def spawn(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    *,
    user: str | None = None,
    group: str | None = None,
    cgroup: Path | None = None,
) -> PosixProcessTree:
    """Start ``argv`` as the leader of a new session, output merged into one pipe.

    Args:
        argv, cwd, env: what to run, where, with what environment.
        user, group: switch to this user (and group; default the user's, with its
            supplementary groups) in the child before exec; needs root.
        cgroup: Linux: the service's cgroup; the child is born in it.

    Linux: the leader gets SIGKILL if the supervisor dies (parent-death signal, set after
    the user switch so that it holds); call this from the event loop's (main) thread.

    Raises:
        SpawnError: the program cannot be executed (missing, not executable, bad cwd,
            unknown user).
    """
    if not argv:
        raise SpawnError("cannot start an empty command")
    identity = credentials(user, group) if user or group else {}
    command, preexec, identity, enter = _launch(argv, cwd, env, identity, cgroup)
    start: Callable[..., Awaitable[Leader]] = start_leader
    if sys.platform == "linux" and linux.pidfd_supported():
        start = pidfd_leader.start_pidfd_leader
    try:
        with _born_in(enter):
            proc = await start(
                command, OUTPUT_LIMIT, cwd=cwd, env=env, start_new_session=True, preexec_fn=preexec, **identity
            )
    except OSError as exc:
        if is_exhaustion(exc):
            raise  # our shortage (EMFILE...), not the service's: the caller retries later
        raise _spawn_error(argv, exc) from exc
    if sys.platform == "linux":
        linux.register_child(proc.pid)
    return PosixProcessTree(proc, env, cgroup)


def _born_in(cgroup: Path | None) -> contextlib.AbstractContextManager[None]:
    if sys.platform == "linux":
        return cgroups.born_in(cgroup)
    return contextlib.nullcontext()


def _launch(
    argv: list[str], cwd: Path, env: dict[str, str], identity: dict[str, Any], cgroup: Path | None
) -> tuple[list[str], Callable[[], None] | None, dict[str, Any], Path | None]:
    """What to exec, the ``preexec_fn``, Popen's user keywords, and the cgroup the supervisor
    must enter around the fork (None when there is none, or the child joins it itself).

    Linux sets the parent-death signal. With util-linux's setpriv, the child is exec'd through
    it rather than given a ``preexec_fn``: a ``preexec_fn`` forces a full fork of the
    supervisor (2.5 ms) where the wrapper lets subprocess vfork (under 1 ms); the wrapper
    reports a missing program only after the fork, so that is checked first. With a cgroup,
    the child joins it itself (``linux.joining_cgroup``); without setpriv the supervisor enters
    it around the fork.
    """
    if sys.platform == "linux":
        wrapper = linux.pdeathsig_wrapper()
        if wrapper is None:
            return argv, linux.pdeathsig_preexec(os.getpid()), identity, cgroup
        _check_executable(argv, cwd, env)
        if cgroup is None or cgroups.home() is None:
            return [*wrapper, *argv], None, identity, None
        return linux.joining_cgroup(cgroup, wrapper, identity, argv), None, {}, None
    return argv, None, identity, None


def prepare_supervisor(loop: asyncio.AbstractEventLoop) -> None:
    """Linux: become a child subreaper and reap adopted orphans. Elsewhere: nothing."""
    if sys.platform == "linux":
        linux.prepare_supervisor(loop)


