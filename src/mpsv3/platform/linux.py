"""Linux extras: prctl (subreaper, parent-death signal), pidfd waiting, orphan reaping.

Why here: these are the Linux-only guarantees behind "a killed supervisor leaves no
orphans" and "a double-forked daemon cannot escape a stop". ``posix.py`` uses them when it
runs on Linux; everything here is process-wide state owned by the supervisor process.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mpsv3.platform import proctable

assert sys.platform == "linux"

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int

#: Leaders that this process forked and that someone (asyncio) will wait for: the orphan
#: reaper must never reap them. Filled by ``spawn`` and by :class:`TrackingPidfdWatcher`.
_owned_children: set[int] = set()
#: True once :class:`TrackingPidfdWatcher` sees every child asyncio creates.
_tracking_asyncio = False


def prctl(option: int, arg: int) -> None:
    """Call ``prctl(option, arg, 0, 0, 0)``; raise ``OSError`` on failure."""
    if _prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def set_child_subreaper() -> None:
    """Make this process inherit the orphans of its descendants instead of init."""
    global _descendants_are_ours
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    _descendants_are_ours = None


def descendants_are_ours() -> bool:
    """True when every process our services start stays among our descendants.

    That holds once we are a child subreaper (orphans come back to us) and the kernel lists
    children in /proc; then a tree's members can be found without scanning all of /proc.
    """
    global _descendants_are_ours
    if _descendants_are_ours is None:
        _descendants_are_ours = is_child_subreaper() and proctable.supported()
    return _descendants_are_ours


_descendants_are_ours: bool | None = None


def is_child_subreaper() -> bool:
    """Whether :func:`set_child_subreaper` is in effect for this process."""
    value = ctypes.c_int(0)
    if _prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(value), 0, 0, 0) != 0:
        return False
    return value.value != 0


def pdeathsig_preexec(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that SIGKILLs the child when the forking thread of the parent dies.

    The spawning thread must be the supervisor's main (event loop) thread: Linux fires the
    parent-death signal when the *thread* that forked exits. If the parent already died
    between fork and prctl, the child kills itself at once.
    """

    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def pdeathsig_wrapper() -> list[str] | None:
    """``setpriv --pdeathsig KILL --``: sets the parent-death signal, then execs the service.

    The signal survives the exec, so the service dies with the supervisor exactly as with a
    ``preexec_fn``, without forcing a full fork. None when util-linux's setpriv (2.33+)
    is not installed; the caller then falls back to :func:`pdeathsig_preexec`.
    """
    global _wrapper_checked, _wrapper
    if not _wrapper_checked:
        _wrapper_checked = True
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            try:
                usage = subprocess.run([setpriv, "--help"], capture_output=True, text=True, timeout=5).stdout
            except (OSError, subprocess.SubprocessError):
                usage = ""
            if "--pdeathsig" in usage:
                _wrapper = [setpriv, "--pdeathsig", "KILL", "--"]
    return _wrapper


_wrapper_checked = False
_wrapper: list[str] | None = None

#: The first command of a child born outside its cgroup: it moves itself in (``0`` in
#: ``cgroup.procs`` is "the writer"), then execs the rest, so everything of the service starts
#: inside. A refused move leaves the service running where it was born, as a refused move
#: of the supervisor would.
JOIN_CGROUP_SCRIPT = '{ echo 0 >"$0"; } 2>/dev/null; exec "$@"'


def joining_cgroup(cgroup: Path, wrapper: list[str], identity: dict[str, Any], argv: list[str]) -> list[str]:
    """The argv of a child that joins ``cgroup`` itself, then runs ``argv`` through ``wrapper``
    (setpriv) with the user switch of ``identity`` (``credentials()``'s Popen keywords).

    Why not move the supervisor into the cgroup around the fork: every move into a cgroup
    waits for an RCU grace period in the kernel (7-15 ms here) and the supervisor's loop would
    wait with it, at every spawn; the child can wait instead. The user switch moves from Popen
    to setpriv because only root may move a process between cgroups: ``sh`` runs as root,
    setpriv then drops to the user and sets the parent-death signal, in that order.
    """
    switch: list[str] = []
    if "user" in identity:
        switch.append(f"--reuid={identity['user']}")
    if "group" in identity:
        switch.append(f"--regid={identity['group']}")
        groups = identity.get("extra_groups")
        if groups is None:
            switch.append("--keep-groups")
        else:
            switch.append(f"--groups={','.join(str(g) for g in groups)}" if groups else "--clear-groups")
    return ["/bin/sh", "-c", JOIN_CGROUP_SCRIPT, str(cgroup / "cgroup.procs"), wrapper[0], *switch, *wrapper[1:], *argv]


def pidfd_supported() -> bool:
    """Whether ``os.pidfd_open`` works here (Linux 5.3+, Python 3.9+)."""
    global _pidfd_supported
    if _pidfd_supported is None:
        try:
            os.close(os.pidfd_open(os.getpid()))
            _pidfd_supported = True
        except (AttributeError, OSError):
            _pidfd_supported = False
    return _pidfd_supported


_pidfd_supported: bool | None = None


def register_child(pid: int) -> None:
    """Mark ``pid`` as a child that its spawner waits for (the reaper leaves it alone)."""
    _owned_children.add(pid)


def forget_child(pid: int) -> None:
    """The spawner has collected ``pid``'s exit status."""
    _owned_children.discard(pid)


class TrackingPidfdWatcher(asyncio.AbstractChildWatcher):
    """asyncio's pidfd child watcher, loop-agnostic, recording which children it owns.

    Python 3.10/3.11's ``PidfdChildWatcher`` is bound to one loop; this one (like 3.12's)
    uses the running loop of each call. It also registers every pid in the set the orphan
    reaper consults, so the reaper never steals an exit status asyncio is waiting for.
    """

    def __enter__(self) -> TrackingPidfdWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        return None

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        return None

    def add_child_handler(  # type: ignore[override]  # variadic generic of the stub
        self, pid: int, callback: Callable[..., object], *args: Any
    ) -> None:
        register_child(pid)
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        loop.add_reader(pidfd, self._do_wait, loop, pid, pidfd, callback, args)

    def remove_child_handler(self, pid: int) -> bool:
        # Handlers are removed when they fire; asyncio only calls this when a spawn failed.
        return False

    def _do_wait(
        self,
        loop: asyncio.AbstractEventLoop,
        pid: int,
        pidfd: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
    ) -> None:
        loop.remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            returncode = 255
        else:
            returncode = os.waitstatus_to_exitcode(status)
        finally:
            os.close(pidfd)
            forget_child(pid)
        callback(pid, returncode, *args)


def install_child_watcher() -> None:
    """Route asyncio's child reaping through :class:`TrackingPidfdWatcher` (Python < 3.14)."""
    global _tracking_asyncio
    if sys.version_info >= (3, 14) or _tracking_asyncio:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(TrackingPidfdWatcher())
    _tracking_asyncio = True


def reap_orphans() -> list[int]:
    """Reap exited children that nobody else waits for (orphans adopted as subreaper).

    A zombie child is reaped only if it is not a tracked spawn, and it is in another
    session than ours (so a plain ``subprocess`` child of this process is never touched).
    When asyncio's children cannot be tracked, session leaders are left alone as well,
    since asyncio may have started them with ``start_new_session``.

    Returns:
        The pids reaped.
    """
    own_sid = os.getsid(0)
    reaped: list[int] = []
    for pid in proctable.children_of(os.getpid()):
        if pid in _owned_children:
            continue
        entry = proctable.read_entry(pid)
        if entry is None or not entry.zombie:
            continue
        try:
            sid = os.getsid(pid)
        except OSError:
            continue
        if sid == own_sid or (not _tracking_asyncio and sid == pid):
            continue
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.append(pid)
        except ChildProcessError:
            continue
    return reaped


def prepare_supervisor(loop: asyncio.AbstractEventLoop) -> None:
    """Become a child subreaper and reap adopted orphans on SIGCHLD (see ``platform``)."""
    set_child_subreaper()
    install_child_watcher()
    loop.add_signal_handler(signal.SIGCHLD, reap_orphans)


async def wait_pids_exit(pids: Iterable[int], timeout: float) -> bool:
    """Wait until every pid has exited, event-driven through pidfds.

    Works for any process, not only children. A pid that is already gone counts as
    exited. Raises ``OSError`` when the kernel has no pidfd support (the caller falls back).

    Returns:
        True if all exited within ``timeout`` seconds.
    """
    from mpsv3.platform.base import done_within  # not at import: `up` (the keeper) needs none of it

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    pending: set[int] = set()

    def exited(fd: int) -> None:
        loop.remove_reader(fd)
        pending.discard(fd)
        os.close(fd)
        if not pending and not done.done():
            done.set_result(None)

    try:
        for pid in set(pids):
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            pending.add(fd)
            loop.add_reader(fd, exited, fd)
        if not pending:
            return True
        return await done_within(done, timeout)
    finally:
        for fd in pending:
            loop.remove_reader(fd)
            os.close(fd)


def flock_holder(path: Path) -> int | None:
    """The pid holding a ``flock`` on ``path`` per ``/proc/locks``; None if nobody does.

    Authoritative (the kernel's own table), unlike the PID written into the file, which a
    new holder writes only a moment after it acquired the lock.

    Raises:
        OSError: the lock table cannot be read.
    """
    table = Path("/proc/locks").read_text()
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            try:
                return int(fields[4])
            except ValueError:
                return None
    return None


def on_process_exit(loop: asyncio.AbstractEventLoop, pid: int, callback: Callable[[], None]) -> None:
    """Call ``callback`` on the loop once ``pid`` has exited (at once if it is gone already)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        loop.call_soon(callback)
        return

    def exited() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        callback()

    loop.add_reader(fd, exited)
