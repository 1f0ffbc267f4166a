"""``mpsv3 up -d``: start the stack in the background, wait until it is ready, say so, return.

Why two halves: the process the operator started belongs to a terminal, so it cannot be the
supervisor. It starts ``mpsv3 up`` again (same config, ``--set``, ``--only``, ``--profile``)
as a detached process: a new session on POSIX (no controlling terminal, not in the
terminal's process group, so closing the terminal or killing its session leaves it running),
a detached process in a new process group on Windows; standard input from the null device,
standard output and error to ``state_dir/logs/console.log`` (the console; the supervisor
rotates it by size like every other log). Then it follows the new supervisor's ``events``
stream over the control socket and returns:

- 0 once every service ``up`` started is ready (tasks: completed), with one line naming the
  ``http_get`` readiness URLs (where to look). A service without a readiness probe is ready
  once spawned, which proves little: it must also stay up :data:`SETTLE_S`;
- 1 naming the first of them that failed (backoff, quarantined, exited), or when the stack
  was not ready within ``--wait-timeout``: the supervisor keeps running in both cases, and
  the message says so and how to look or stop it;
- 75 (and the holder's PID) when the instance is already supervised; the detached ``up``'s
  own exit code and last console lines if it ended before its control socket answered.

Nothing of the engine is imported here: this is a client of the control socket.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from mpsv3 import platform
from mpsv3.control.protocol import InstanceRef, NotRunning
from mpsv3.engine.reporter import event_seconds, origins
from mpsv3.errors import EXIT_FAILURE, EXIT_OK, EXIT_TEMPFAIL, MpsvError
from mpsv3.plan import StackPlan

#: Added to the largest readiness timeout for the default ``--wait-timeout``.
WAIT_MARGIN_S = 30.0
#: States of a service ``up`` started that make ``up -d`` give up on it.
FAILED_STATES = frozenset({"backoff", "quarantined", "exited"})
READY_STATES = frozenset({"ready", "unhealthy", "completed"})
#: How long a service without a readiness probe must stay up before ``up -d`` counts it.
SETTLE_S = 1.0
#: Variables of a service manager that must not reach a detached supervisor.
MANAGER_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")
CONSOLE_LOG = "console.log"


@dataclass(frozen=True)
class UpOptions:
    """What the detached ``up`` is given, as on the command line."""

    assignments: Sequence[str] = ()
    only: Sequence[str] = ()
    profiles: Sequence[str] = ()
    quiet: bool = False
    verbose: bool = False

    def argv(self, config_path: str) -> list[str]:
        args = [sys.executable, "-m", "mpsv3", "up", "-c", config_path]
        args += [f"--set={item}" for item in self.assignments]
        args += [f"--only={sid}" for sid in self.only] + [f"--profile={name}" for name in self.profiles]
        return args + ["--quiet"] * self.quiet + ["--verbose"] * self.verbose


def default_wait_timeout(plan: StackPlan) -> float:
    """The largest readiness timeout of the stack plus :data:`WAIT_MARGIN_S`."""
    timeouts = [s.readiness.timeout_s for s in plan.services if s.readiness is not None]
    return max(timeouts, default=0.0) + WAIT_MARGIN_S


def run_detached(plan: StackPlan, options: UpOptions, wait_timeout_s: float | None) -> int:
    """Start ``plan``'s supervisor detached and wait for its stack; the exit code of ``up -d``."""
    refuse_if_supervised(plan.name)
    console_log = Path(plan.state_dir) / "logs" / CONSOLE_LOG
    started = time.monotonic()
    child, offset = spawn_detached(options.argv(plan.config_path), console_log)
    wait_s = default_wait_timeout(plan) if wait_timeout_s is None else wait_timeout_s
    if wait_s <= 0:
        click.echo(f"mpsv3: instance '{plan.name}' started in the background (PID {child.pid}); console: {console_log}")
        return EXIT_OK
    waiter = StackWaiter(plan, child, console_log, offset)
    try:
        return asyncio.run(waiter.wait(started + wait_s, wait_s))
    except KeyboardInterrupt:
        click.echo(f"\nmpsv3: stopped waiting; {waiter.still_running()}", err=True)
        return 130


def refuse_if_supervised(name: str) -> None:
    """Exit 75 now when a supervisor holds the instance (one that is stopping is waited for
    by the detached ``up``, like a foreground one does)."""
    lease = platform.SingletonLease(name)
    if lease.acquire():
        lease.release()
        return
    if lease.holder_stopping():
        return
    holder = lease.holder_pid()
    who = f"PID {holder}" if holder else "another process"
    raise MpsvError(f"instance '{name}' is already supervised by {who}", EXIT_TEMPFAIL)


def spawn_detached(argv: list[str], console_log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` detached, its output appended to ``console_log``; it and the log's size."""
    from mpsv3.engine.logfile import open_log_file
    from mpsv3.platform.host import detached_popen_options

    platform.ensure_private_dir(console_log.parent.parent)
    platform.ensure_private_dir(console_log.parent)
    env = {k: v for k, v in os.environ.items() if k not in MANAGER_VARIABLES}
    with open_log_file(console_log) as out:
        offset = out.tell()
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, **detached_popen_options()
        )
    return child, offset


@dataclass
class StackWaiter:
    """Follows the new supervisor until its stack is ready, a service fails, or time is up."""

    plan: StackPlan
    child: subprocess.Popen[bytes]
    console_log: Path
    offset: int
    states: dict[str, str] = field(default_factory=dict)
    ready_at: dict[str, float] = field(default_factory=dict)
    pid: int | None = None

    async def wait(self, deadline: float, wait_s: float) -> int:
        from mpsv3._compat import timeout

        try:
            async with timeout(max(0.0, deadline - time.monotonic())):
                return await self._follow()
        except TimeoutError:
            waiting = [f"{sid} ({state})" for sid, state in self.states.items() if state not in READY_STATES]
            raise MpsvError(
                f"not ready within {wait_s:g} s: waiting for {', '.join(waiting) or 'the supervisor'}; "
                + self.still_running()
            ) from None

    async def _follow(self) -> int:
        from mpsv3.control.client import follow

        where = InstanceRef(self.plan.name, Path(self.plan.state_dir), Path(self.plan.config_path))
        while True:
            self._check_child()
            try:
                stream = follow(where, {"cmd": "events"})
                header = await stream.__anext__()
            except NotRunning:
                await asyncio.sleep(0.1)  # its control socket comes up after the first spawns
                continue
            try:
                if header.get("pid") == self.child.pid:
                    return await self._watch(header, stream)
            finally:
                await stream.aclose()
            await asyncio.sleep(0.1)  # a previous supervisor, still stopping: not ours

    async def _watch(self, header: dict[str, Any], stream: Any) -> int:
        self.pid = header.get("pid")
        selected = list(header.get("selected") or [])
        status = {s["id"]: s for s in header.get("status", {}).get("services", [])}
        self.states = {sid: str(status.get(sid, {}).get("state", "pending")) for sid in selected}
        for sid in selected:
            self._failed(sid, self.states[sid], status.get(sid, {}).get("reason"))
            if self.states[sid] == "ready" and status[sid].get("ready_since"):
                self.ready_at[sid] = event_seconds(status[sid]["ready_since"]) or 0.0
        after_ms: Any = None
        ready = bool(self.states) and all(state in READY_STATES for state in self.states.values())
        while not ready or time.time() < self._settled_at():
            message = await self._next(stream, None if not ready else self._settled_at() - time.time())
            event = message.get("event") if message is not None else None
            if not isinstance(event, dict):
                continue
            sid = event.get("service")
            if event.get("event") == "stack_ready":
                ready, after_ms = True, event.get("after_ms")
            elif event.get("event") == "state" and sid in self.states:
                self.states[sid] = str(event.get("to"))
                self._failed(sid, self.states[sid], event.get("reason"))
                if self.states[sid] == "ready":
                    self.ready_at[sid] = event_seconds(str(event.get("ts"))) or 0.0
        return self._ready(selected, after_ms)

    async def _next(self, stream: Any, within_s: float | None) -> dict[str, Any] | None:
        """The stream's next message (None when ``within_s`` passed); the supervisor ending is
        an error: its exit code and its last console lines."""
        try:
            if within_s is None:
                return await stream.__anext__()  # type: ignore[no-any-return]
            return await asyncio.wait_for(stream.__anext__(), max(within_s, 0.0))
        except asyncio.TimeoutError:
            return None
        except StopAsyncIteration:
            code = await asyncio.to_thread(self.child.wait)
            raise MpsvError(
                f"the supervisor ended (exit {code}) before the stack was ready{self._console_tail()}", code or 1
            ) from None

    def _settled_at(self) -> float:
        """When the services that have no readiness probe have stayed up :data:`SETTLE_S`:
        being spawned proves little, so one that exits at once still fails ``up -d``."""
        unproven = [self.ready_at[s.id] for s in self.plan.services if s.readiness is None and s.id in self.ready_at]
        return max(unproven, default=0.0) + SETTLE_S

    def _failed(self, sid: str, state: str, reason: Any) -> None:
        if state in FAILED_STATES:
            why = f" ({reason})" if reason else ""
            raise MpsvError(f"{sid} failed{why} and is {state}; " + self.still_running(), EXIT_FAILURE)

    def _ready(self, selected: list[str], after_ms: Any) -> int:
        urls = []
        for spec in self.plan.services:
            check = spec.readiness.check if spec.readiness is not None else None
            if spec.id in selected and check is not None and check.kind == "http_get" and check.url:
                urls.append(check.url)
        took = f" in {float(after_ms) / 1000:.1f} s" if isinstance(after_ms, (int, float)) else ""
        noun = "service" if len(selected) == 1 else "services"
        line = f"mpsv3: instance '{self.plan.name}' ready{took}: {len(selected)} {noun}, supervisor PID {self.pid}"
        where = origins(urls)
        click.echo(line + (" — " + " ".join(where) if where else ""))
        return EXIT_OK

    def _check_child(self) -> None:
        code = self.child.poll()
        if code is not None:
            raise MpsvError(f"the detached supervisor exited with code {code}{self._console_tail()}", code or 1)

    def still_running(self) -> str:
        config = self.plan.config_path
        return (
            f"the supervisor (PID {self.pid or self.child.pid}) keeps running: "
            f"mpsv3 status -c {config}, mpsv3 logs -c {config}, mpsv3 down -c {config}"
        )

    def _console_tail(self, lines: int = 10) -> str:
        try:
            with open(self.console_log, "rb") as handle:
                handle.seek(self.offset)
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return (":\n  " + "\n  ".join(tail)) if tail else ""
