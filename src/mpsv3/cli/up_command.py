"""``mpsv3 up``: the lease, the keeper, and the supervisor's process (``up -d``: ``detach.py``).

Why apart from the CLI's argument parsing: what runs where matters here. This process (the
one the operator started, and what ``ps`` and systemd see) takes the lease; on Linux it then
becomes the keeper: it starts the supervisor as a fresh process (``python -m mpsv3.engine``,
handed the compiled plan through a pipe and the lease's descriptor), holds the lease until
everything of the stack is gone, and exits with the supervisor's code
(``platform/keeper.py``). Elsewhere the supervisor runs in this process.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mpsv3 import platform
from mpsv3.errors import EXIT_TEMPFAIL, ConfigError, ConfigInvalid, MpsvError
from mpsv3.plan import StackPlan, to_json

#: How long a new ``up`` waits for a supervisor that is stopping its stack (keeper lost).
STOPPING_WAIT_S = 120.0

#: Set to run without a keeper (the supervisor is then the process ``up`` started).
NO_KEEPER_ENV = "MPSV3_NO_KEEPER"


def run_up(plan: StackPlan, *, only: Sequence[str], profiles: Sequence[str], quiet: bool, verbose: bool) -> int:
    """Supervise ``plan`` in the foreground; the exit code of ``up``."""
    check_up(plan, only, profiles)
    lease = platform.SingletonLease(plan.name)
    acquire_lease(lease, plan.name)
    try:
        if platform.keeper_supported() and not os.environ.get(NO_KEEPER_ENV):
            return _kept(plan, lease, only=only, profiles=profiles, quiet=quiet, verbose=verbose)
        return _in_process(plan, lease, only=only, profiles=profiles, quiet=quiet, verbose=verbose)
    finally:
        lease.release()


def check_up(plan: StackPlan, only: Sequence[str], profiles: Sequence[str]) -> None:
    """What ``up`` refuses before anything starts (and before ``up -d`` detaches): accounts
    it cannot switch to (78), an unknown ``--only`` id or ``--profile`` name (2)."""
    from mpsv3.policy.reload_plan import check_profiles, expand_only

    check_accounts(plan)
    expand_only(plan, only)
    check_profiles(plan, profiles)


def _kept(plan: StackPlan, lease: platform.SingletonLease, *, only: Sequence[str], profiles: Sequence[str],
          quiet: bool, verbose: bool) -> int:
    """Linux: this process becomes the keeper of a fresh supervisor process (``mpsv3.engine``)."""
    options = [f"--only={sid}" for sid in only] + [f"--profile={name}" for name in profiles]
    options += ["--quiet"] * quiet + ["--verbose"] * verbose
    engine = [sys.executable, "-m", "mpsv3.engine", *options]
    shown = ["up", "-c", plan.config_path]
    return platform.run_kept(engine, to_json(plan).encode("utf-8"), lease, state_dir=Path(plan.state_dir), shown=shown)


def _in_process(plan: StackPlan, lease: platform.SingletonLease, *, only: Sequence[str], profiles: Sequence[str],
                quiet: bool, verbose: bool) -> int:
    """Elsewhere: the supervisor runs in this process."""
    import asyncio  # only here: on Linux this process becomes the keeper and needs no loop

    from mpsv3.engine.console import Console
    from mpsv3.engine.supervisor import Supervisor

    console = None if quiet else Console(names=[s.id for s in plan.services])
    try:
        supervisor = Supervisor(plan, only=only, profiles=profiles, console=console, verbose=verbose, lease=lease)
        return asyncio.run(supervisor.run())
    finally:
        if console is not None:
            console.close()


def acquire_lease(lease: platform.SingletonLease, name: str, wait_s: float = STOPPING_WAIT_S) -> None:
    """Take the instance's lease, or raise the contract's exit-75 error naming the holder.

    A holder that is stopping its stack (its keeper was killed) is waited for, up to
    ``wait_s``: it will be gone in its services' grace time, and starting beside it would
    only fight it for the same processes and ports.
    """
    deadline = time.monotonic() + wait_s
    said = False
    while not lease.acquire():
        holder = lease.holder_pid()
        if (lease.holder_stopping() or _gone(holder)) and time.monotonic() < deadline:
            if not said:
                sys.stderr.write(f"mpsv3: waiting for the previous supervisor (PID {holder}) to stop its services\n")
                said = True
            time.sleep(0.1)  # a command waiting for a lock, not the supervisor's loop
            continue
        who = f"PID {holder}" if holder else "another process"
        raise MpsvError(f"instance '{name}' is already supervised by {who}", EXIT_TEMPFAIL)


def _gone(holder: int | None) -> bool:
    """The lease names a process that no longer exists: its keeper was killed a moment ago and
    the supervisor that still holds the lease is about to say it is stopping (a race the
    holder's own ``mark_stopping`` loses when the new ``up`` comes first)."""
    if holder is None:
        return False
    import psutil  # only on a conflict: `up` starts without it

    return not psutil.pid_exists(holder)


def check_accounts(plan: StackPlan) -> None:
    """``user:``/``group:`` that this supervisor cannot switch to: one error per service (exit 78)."""
    accounts = [spec for spec in plan.services if spec.user is not None or spec.group is not None]
    if not accounts:
        return
    from mpsv3.platform.base import SpawnError
    from mpsv3.platform.users import credentials

    problems = []
    for spec in accounts:
        try:
            credentials(spec.user, spec.group)
        except SpawnError as exc:
            problems.append(ConfigError(plan.config_path, 0, f'service "{spec.id}": {exc}'))
    if problems:
        raise ConfigInvalid(problems)
