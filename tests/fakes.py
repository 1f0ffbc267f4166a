"""Scripted stand-ins for the OS and the probes, for driving ``ServiceRunner`` without processes.

Why: the runner reaches the outside only through ``RunnerContext`` (``spawn`` among its fields),
the ``ProcessTree`` protocol and a ``ProbeRunner``, and ``platform.terminate`` only calls the
tree's methods. So a tree whose life is a script (exit with this code once ready, ignore
SIGTERM, print this line) lets a test replay a whole service history in milliseconds, with
real asyncio timers for the backoff and no process to clean up.

Ownership: a ``FakeSpawner`` belongs to one test's event loop; it creates one
``FakeProcessTree`` per spawn, in order, from its list of ``Plan``s. Nothing here is
thread-safe, and nothing needs to be: everything runs on the test's loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mpsv3.engine.events import Event, EventBus
from mpsv3.engine.probes import ProbeResult, ProbeRunner
from mpsv3.plan import CheckPlan
from mpsv3.platform import ExitStatus, ProcessTree, SpawnError

#: Signals a scripted process handles without dying (a reload signal, for example).
HANDLED_BY_DEFAULT = frozenset({"SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT"})

#: When a scripted process ends by itself: right after it is spawned, or once the runner
#: reports it ready (the ``ready`` event), in both cases after ``Plan.after_s``.
ExitMoment = Literal["spawn", "ready"]


@dataclass(frozen=True)
class Plan:
    """What one spawn does, from the runner's point of view.

    Attributes:
        exit: how the process ends by itself; None for a process that runs until signalled.
        at: when it ends by itself (see ``ExitMoment``).
        after_s: extra delay after ``at`` before it ends.
        handles: signals it survives; SIGKILL and ``kill()`` always end it.
        output: lines it prints once spawned (after ``output_after_s``).
        output_after_s: delay before ``output`` is printed.
        spawn_error: when set, the spawn itself fails with this ``SpawnError`` message.
    """

    exit: ExitStatus | None = None
    at: ExitMoment = "ready"
    after_s: float = 0.0
    handles: frozenset[str] = HANDLED_BY_DEFAULT
    output: tuple[str, ...] = ()
    output_after_s: float = 0.0
    spawn_error: str | None = None


def runs(*output: str, output_after_s: float = 0.0) -> Plan:
    """A process that runs until it is signalled, printing ``output`` first."""
    return Plan(output=output, output_after_s=output_after_s)


def exits(
    code: int, *, at: ExitMoment = "ready", after_s: float = 0.0, output: tuple[str, ...] = ()
) -> Plan:
    """A process that exits with ``code`` by itself (by default as soon as it is ready)."""
    return Plan(exit=ExitStatus(code=code, signal=None), at=at, after_s=after_s, output=output)


def killed_by(signame: str, *, at: ExitMoment = "ready") -> Plan:
    """A process that dies of ``signame`` sent by someone else (the OOM killer, a user)."""
    return Plan(exit=ExitStatus(code=None, signal=signame), at=at)


def stubborn(*output: str) -> Plan:
    """A process that ignores SIGTERM: only the kill at the end of the grace period ends it."""
    return Plan(handles=HANDLED_BY_DEFAULT | {"SIGTERM"}, output=output)


def cannot_spawn(message: str) -> Plan:
    """A spawn that fails (missing program, bad cwd) with ``message``."""
    return Plan(spawn_error=message)


class FakeProcessTree:
    """A ``ProcessTree`` whose leader lives and dies as its ``Plan`` says.

    ``received`` lists the signals the process got while it was alive (``kill()`` counts as
    ``SIGKILL``); signals sent to an ended tree are ignored, as the protocol requires.
    """

    def __init__(self, pid: int, plan: Plan) -> None:
        self.pid = pid
        self.pgid: int | None = pid
        self.create_time = time.time()
        self.output = asyncio.StreamReader()
        self.plan = plan
        self.received: list[str] = []
        self._loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[ExitStatus] = self._loop.create_future()
        self._exit_scheduled = False
        if plan.output:
            self._later(plan.output_after_s, self._print_output)
        if plan.exit is not None and plan.at == "spawn":
            self._schedule_exit()

    # ----------------------------------------------------------------- the script's side

    @property
    def alive(self) -> bool:
        return not self._ended.done()

    @property
    def status(self) -> ExitStatus | None:
        """How it ended, or None while it runs."""
        return self._ended.result() if self._ended.done() else None

    def end(self, status: ExitStatus) -> None:
        """The leader (and with it the whole tree) is gone; its output reaches end of file."""
        if self._ended.done():
            return
        self._ended.set_result(status)
        self.output.feed_eof()

    def notice_ready(self) -> None:
        """The runner declared this process ready: a plan that exits ``at="ready"`` starts now."""
        if self.plan.exit is not None and self.plan.at == "ready":
            self._schedule_exit()

    def _schedule_exit(self) -> None:
        if self._exit_scheduled:
            return
        self._exit_scheduled = True
        status = self.plan.exit
        assert status is not None
        self._later(self.plan.after_s, lambda: self.end(status))

    def _print_output(self) -> None:
        if self.alive:
            self.output.feed_data("".join(f"{line}\n" for line in self.plan.output).encode())

    def _later(self, delay: float, callback: Callable[[], object]) -> None:
        # call_soon keeps the order of same-instant callbacks; a timer only when asked to wait.
        if delay > 0:
            self._loop.call_later(delay, callback)
        else:
            self._loop.call_soon(callback)

    # ---------------------------------------------------------------- the ProcessTree protocol

    async def wait(self) -> ExitStatus:
        # Shielded: the runner cancels its waiter task, which must not cancel the exit itself.
        return await asyncio.shield(self._ended)

    def send_signal(self, signame: str) -> None:
        if not self.alive:
            return
        self.received.append(signame)
        if signame == "SIGKILL" or signame not in self.plan.handles:
            self.end(ExitStatus(code=None, signal=signame))

    def kill(self) -> None:
        if not self.alive:
            return
        self.received.append("SIGKILL")
        self.end(ExitStatus(code=None, signal="SIGKILL"))

    def signal_leader(self, signame: str) -> None:
        self.send_signal(signame)

    def resume(self) -> None:
        """SIGCONT after every stop signal: recorded, never fatal to a scripted process."""
        if self.alive:
            self.received.append("SIGCONT")

    def alive_members(self) -> list[int]:
        return [self.pid] if self.alive else []

    async def wait_gone(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self._ended), timeout)
        except asyncio.TimeoutError:
            return False
        return True


@dataclass(frozen=True)
class SpawnCall:
    """One call of the spawn seam, as the runner made it."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]


class FakeSpawner:
    """The ``RunnerContext.spawn`` seam: spawn ``n`` follows ``plans[n]``.

    Spawns beyond the script get a process that runs until signalled, so that a runner
    that restarts too often shows up as an extra ``spawned`` in the history, not as a crash.

    Args:
        plans: one ``Plan`` per expected spawn, in order.
        bus: the runner's bus; its ``ready`` events tell the current tree it is ready.
        first_pid: the pid of the first tree (then +1 per spawn).
    """

    def __init__(
        self, plans: Sequence[Plan], bus: EventBus | None = None, first_pid: int = 4000
    ) -> None:
        self.plans = list(plans)
        self.calls: list[SpawnCall] = []
        self.trees: list[FakeProcessTree] = []
        self._next_pid = first_pid
        if bus is not None:
            bus.subscribe(self._on_event)

    async def __call__(
        self, argv: list[str], cwd: Path, env: dict[str, str], **_options: object
    ) -> ProcessTree:
        index = len(self.calls)
        self.calls.append(SpawnCall(list(argv), cwd, dict(env)))
        plan = self.plans[index] if index < len(self.plans) else Plan()
        if plan.spawn_error is not None:
            raise SpawnError(plan.spawn_error)
        tree = FakeProcessTree(self._next_pid, plan)
        self._next_pid += 1
        self.trees.append(tree)
        return tree

    @property
    def current(self) -> FakeProcessTree | None:
        """The most recently spawned tree."""
        return self.trees[-1] if self.trees else None

    def _on_event(self, event: Event) -> None:
        if event["event"] == "ready" and self.current is not None:
            self.current.notice_ready()


#: The liveness timeout the driver tests configure: how the fake tells the two probes apart.
LIVENESS_TIMEOUT_S = 0.123


class FakeProbeRunner(ProbeRunner):
    """A ``ProbeRunner`` that answers from scripts instead of probing anything.

    Each answer is ``True`` (pass) or a failure reason. Readiness and liveness checks have a
    script each; once a script runs out, every later check of that kind passes.
    """

    def __init__(
        self, readiness: Iterable[bool | str] = (), liveness: Iterable[bool | str] = ()
    ) -> None:
        super().__init__()  # nothing here talks to the network
        self._readiness: deque[bool | str] = deque(readiness)
        self._liveness: deque[bool | str] = deque(liveness)
        self.checks: list[str] = []

    async def aclose(self) -> None:
        return None

    async def check(
        self,
        spec: CheckPlan,
        timeout_s: float,
        *,
        cwd: Path,
        env: Mapping[str, str],
    ) -> ProbeResult:
        probe = "liveness" if timeout_s == LIVENESS_TIMEOUT_S else "readiness"
        self.checks.append(probe)
        script = self._liveness if probe == "liveness" else self._readiness
        answer = script.popleft() if script else True
        await asyncio.sleep(0)  # a real attempt always yields to the loop
        if answer is True:
            return ProbeResult(ok=True, reason="", elapsed_ms=0.0)
        return ProbeResult(ok=False, reason=str(answer), elapsed_ms=0.0)
