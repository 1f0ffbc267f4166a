"""The keeper: a small parent of the supervisor that outlives it only to end its services.

Why a second process: when the supervisor is killed (``kill -9``, the OOM killer, a crash),
nothing of it can run any more, and a parent-death signal reaches only each service's main
process, not its children, nor one that changed its uid (the kernel clears the signal), nor
a daemon that double-forked. The keeper is a child subreaper and the parent of the supervisor:
every process the services leave behind is, or becomes, its descendant. When the supervisor
ends, the keeper stops what is left (each service's own stop signal and SIGCONT, at most
``SWEEP_GRACE_S``, then SIGKILL to every descendant and ``cgroup.kill``), reaps it, and exits
with the supervisor's code. It never touches a process that is not its descendant, and never
outlives what it keeps: if the keeper is killed, the supervisor sees it (a pidfd) and stops
the stack in order itself.

This module imports only the standard library: the keeper must stay small.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

assert sys.platform == "linux"

#: The longest a service may take to act on its stop signal once the supervisor is gone.
SWEEP_GRACE_S = 1.0
#: The longest the keeper waits for the instance's cgroups to empty so that it can remove them.
REMOVE_WAIT_S = 2.0
#: Forwarded to the supervisor: the keeper's PID is what a shell, systemd or ``kill`` sees.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
KEEPER_ENV = "MPSV3_KEEPER_PID"
PR_SET_CHILD_SUBREAPER = 36


def run_kept(engine: list[str], plan: bytes, lease_fd: int, *, state_dir: str, shown: list[str]) -> int:
    """Start ``engine`` (the supervisor's argv) under this process, then become the keeper.

    The plan goes to the supervisor through a pipe (``--plan-fd``), the lease through its
    descriptor (``--lease-fd``): both hold it until each is done. This process then replaces
    itself (same PID, so ``ps``, shells and systemd see no change) with a fresh interpreter
    running only this module: the command line's libraries (click, pydantic, the config
    loader) do not stay in memory for the stack's whole life. ``shown`` is what ``ps`` shows
    of it (the operator's ``up -c FILE``). Returns only if the exec fails.
    """
    read_end, write_end = os.pipe()
    argv = [*engine, "--plan-fd", str(read_end), "--lease-fd", str(lease_fd)]
    try:
        child = start_supervisor(argv, pass_fds=(read_end, lease_fd))
    finally:
        os.close(read_end)
    with os.fdopen(write_end, "wb") as pipe, contextlib.suppress(BrokenPipeError):
        pipe.write(plan)
    sys.stdout.flush()
    sys.stderr.flush()
    os.set_inheritable(lease_fd, True)
    # -S: no site packages; this file imports only the standard library (run by its path).
    keeper = [sys.executable, "-I", "-S", os.path.abspath(__file__), *shown, "--keep", str(child),
              "--state-dir", str(state_dir), "--lease-fd", str(lease_fd)]
    try:
        os.execv(sys.executable, keeper)
    except OSError:  # could not exec a fresh interpreter: keep from here instead
        os.set_inheritable(lease_fd, False)
    return keep(child, state_dir=state_dir)


def _main(argv: list[str]) -> int:
    """``python -I -S keeper.py [shown words] --keep PID --state-dir DIR --lease-fd FD``."""
    options = dict(zip(argv[-6::2], argv[-5::2], strict=True))
    os.set_inheritable(int(options["--lease-fd"]), False)  # held, never passed on
    return keep(int(options["--keep"]), state_dir=options["--state-dir"])


def start_supervisor(argv: list[str], *, pass_fds: tuple[int, ...]) -> int:
    """Become a child subreaper, then start the supervisor's process; its PID.

    ``pass_fds`` (the lease, the plan's pipe) are inherited by it; the keeper's PID is in its
    environment (``MPSV3_KEEPER_PID``), so it can watch us in turn.
    """
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    for fd in pass_fds:
        os.set_inheritable(fd, True)
    try:
        return os.posix_spawn(argv[0], argv, {**os.environ, KEEPER_ENV: str(os.getpid())})
    finally:
        for fd in pass_fds:
            os.set_inheritable(fd, False)


def keep(child: int, *, state_dir: str) -> int:
    """Forward stop signals to ``child`` until it ends, then sweep what is left; its exit code."""
    for signum in FORWARDED:
        signal.signal(signum, lambda received, _frame: _forward(child, received))
    status = _wait_for(child)
    swept = sweep(state_dir, child, status)
    return _exit_code(child, status, swept)


def _forward(child: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signum)


def _wait_for(child: int) -> int:
    """Reap children (adopted orphans included) until ``child`` is reaped; its wait status."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if pid == child:
            return status


def _exit_code(child: int, status: int, swept: list[int]) -> int:
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    name = signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else f"status {status}"
    sys.stderr.write(
        f"mpsv3: the supervisor (PID {child}) was killed by {name}; "
        f"the keeper stopped what its services left ({len(swept)} processes)\n"
    )
    return 1


# ------------------------------------------------------------------------------ the sweep


def sweep(state_dir: str, supervisor: int, status: int) -> list[int]:
    """End every descendant: stop signals first, SIGKILL after ``SWEEP_GRACE_S``; reaped.

    The instance's cgroups go too, even when nothing is left to end (the parent-death signal
    may have ended every service before we got here): an empty cgroup is still ours to remove.
    """
    record = _read_record(os.path.join(state_dir, "run", "state.json"))
    cgroups = [c for c in record.get("cgroups", []) if isinstance(c, str)]
    left = descendants(os.getpid())
    ended: dict[int, int | None] = {}
    if left:
        ended = _end_all(left, record, cgroups)
    for cgroup in cgroups:
        _remove_empty(cgroup)
    if ended:
        _log(state_dir, supervisor, status, ended, record)
    return sorted(ended)


def _end_all(left: list[int], record: dict[str, Any], cgroups: list[str]) -> dict[int, int | None]:
    """Stop, wait, kill until no descendant is left; each pid ended with its process group."""
    groups = {pid: _pgid(pid) for pid in left}
    for service in record.get("services", {}).values():
        _stop_service(service)
    _wait_gone(left, SWEEP_GRACE_S)
    for cgroup in cgroups:
        _cgroup_kill(cgroup)
    ended = set(left)
    while True:
        remaining = descendants(os.getpid())
        if not remaining:
            break
        ended.update(remaining)
        groups.update({pid: _pgid(pid) for pid in remaining if pid not in groups})
        for pid in remaining:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        _reap_all()
    _reap_all()
    return {pid: groups.get(pid) for pid in sorted(ended)}


def _stop_service(service: dict[str, Any]) -> None:
    """The service's own stop signal (and SIGCONT) to its process group, as a stop would."""
    pgid = service.get("pgid")
    try:
        signum = signal.Signals[str(service.get("stop_signal", "SIGTERM"))]
    except KeyError:
        signum = signal.SIGTERM
    if isinstance(pgid, int) and pgid > 1:
        for sig in (signum, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)


def descendants(root: int) -> list[int]:
    """Every live (not zombie) descendant of ``root``, from ``/proc/<pid>/task/*/children``."""
    found: list[int] = []
    stack = [root]
    seen = {root}
    while stack:
        pid = stack.pop()
        for child in _children(pid):
            if child not in seen:
                seen.add(child)
                stack.append(child)
                if not _zombie(child):
                    found.append(child)
    return found


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(part) for part in handle.read().split())
    return found


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return True
    return raw[raw.rfind(b")") + 2 :][:1] in (b"Z", b"X")


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Until every pid has exited or ``timeout``: pidfds and ``poll``, reaping as they go."""
    poller = select.poll()
    fds = []
    for pid in pids:
        with contextlib.suppress(OSError):
            fd = os.pidfd_open(pid)
            fds.append(fd)
            poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    try:
        pending = len(fds)
        while pending and time.monotonic() < deadline:
            ready = poller.poll(max(0, int((deadline - time.monotonic()) * 1000)))
            for fd, _ in ready:
                poller.unregister(fd)
                pending -= 1
            _reap_all()
    finally:
        for fd in fds:
            os.close(fd)


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _cgroup_kill(cgroup: str) -> None:
    with contextlib.suppress(OSError), open(os.path.join(cgroup, "cgroup.kill"), "w") as handle:
        handle.write("1")


def _remove_empty(cgroup: str) -> None:
    """rmdir the instance's cgroups, deepest first.

    A cgroup can still be populated here: a service process killed a moment ago that has
    not finished exiting, or a new one that was joining its cgroup (the child moves itself
    in, ``linux.joining_cgroup``) when the supervisor died and arrived after the sweep. Its
    members are killed and waited for through ``cgroup.events`` (no polling), at most
    ``REMOVE_WAIT_S`` for the whole instance.
    """
    deadline = time.monotonic() + REMOVE_WAIT_S
    with contextlib.suppress(OSError):
        inner = [os.path.join(cgroup, c) for c in sorted(os.listdir(cgroup)) if os.path.isdir(os.path.join(cgroup, c))]
        for folder in [*inner, cgroup]:
            _remove_one(folder, deadline)


def _remove_one(folder: str, deadline: float) -> None:
    while True:
        _reap_all()
        try:
            os.rmdir(folder)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                return
        _cgroup_kill(folder)
        _wait_unpopulated(folder, deadline - time.monotonic())


def _wait_unpopulated(folder: str, timeout: float) -> None:
    """Until ``folder``'s ``cgroup.events`` says ``populated 0`` (the kernel signals every
    change with POLLPRI), at most ``timeout``."""
    end = time.monotonic() + max(timeout, 0.0)
    with contextlib.suppress(OSError), open(os.path.join(folder, "cgroup.events"), "rb", buffering=0) as handle:
        poller = select.poll()
        poller.register(handle.fileno(), select.POLLPRI | select.POLLERR)
        while True:
            handle.seek(0)
            remaining = end - time.monotonic()
            if b"populated 0" in handle.read() or remaining <= 0:
                return
            poller.poll(max(1, int(remaining * 1000)))
            _reap_all()


def _read_record(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _log(state_dir: str, supervisor: int, status: int, pids: dict[int, int | None], record: dict[str, Any]) -> None:
    """One ``orphan_reclaimed`` line per process in ``events.jsonl`` (found by the keeper)."""
    how = f"killed by {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status) else "exited"
    groups = {s.get("pgid"): name for name, s in record.get("services", {}).items()}
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    lines = []
    for pid, pgid in pids.items():
        lines.append(json.dumps({
            "ts": stamp, "service": groups.get(pgid), "event": "orphan_reclaimed", "level": "warning",
            "pid": pid, "found_by": "keeper", "why": f"the supervisor (PID {supervisor}) {how}",
        }))
    with contextlib.suppress(OSError):
        fd = os.open(os.path.join(state_dir, "events.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.write(fd, ("\n".join(lines) + "\n").encode())
        finally:
            os.close(fd)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl failed")


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
