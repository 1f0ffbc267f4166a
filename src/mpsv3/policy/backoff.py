"""Restart policy as pure functions: what to do after a service's process ends.

Why pure: the contract's exit-code table and the backoff formula are the part of a supervisor
that users reason about most, so they are decided here, from values only (exit status, counts,
times passed in), and unit-tested with a fake clock. The runner does the I/O the verdict asks for.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol

EXIT_HOT_RELOAD = 99
EXIT_SELF_QUARANTINE = 78

#: The exit-99 storm guard: more than this many immediate restarts ...
STORM_RESTARTS = 5
#: ... within this many seconds fall back to the backoff policy.
STORM_WINDOW_S = 10.0


class _Backoff(Protocol):
    @property
    def base_ms(self) -> int: ...
    @property
    def factor(self) -> float: ...
    @property
    def max_ms(self) -> int: ...
    @property
    def jitter(self) -> float: ...


class RestartRules(Protocol):
    """A service's ``restart`` settings (the schema's ``RestartSpec`` or the plan's ``RestartPlan``)."""

    @property
    def policy(self) -> str: ...
    @property
    def backoff(self) -> _Backoff: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def reset_after_s(self) -> float: ...


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before restart attempt ``n`` (1-based): ``base * factor**(n-1)``, capped at ``max``.

    Jitter ``j`` spreads each delay uniformly over ``[d*(1-j), d*(1+j)]`` (then capped at
    ``max``), so that services that failed together do not all come back in the same instant.
    """

    base_s: float
    factor: float
    max_s: float
    jitter: float = 0.0

    @classmethod
    def from_spec(cls, spec: RestartRules) -> BackoffPolicy:
        b = spec.backoff
        return cls(base_s=b.base_ms / 1000, factor=b.factor, max_s=b.max_ms / 1000, jitter=b.jitter)

    def nominal_delay(self, attempt: int) -> float:
        """The delay without jitter; ``attempt`` counts consecutive failures, from 1."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        # The exponent is capped so that a large attempt count cannot overflow the float.
        exponent = min(attempt - 1, 1000)
        try:
            raw = self.base_s * self.factor**exponent
        except OverflowError:
            raw = self.max_s
        return min(raw, self.max_s)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The delay to wait before restart attempt ``attempt``, jitter included."""
        nominal = self.nominal_delay(attempt)
        if not self.jitter:
            return nominal
        spread = nominal * self.jitter * (2 * rand() - 1)
        return max(0.0, min(nominal + spread, self.max_s))


class Ending(Enum):
    """Why a run of the service's process ended, as the runner observed it."""

    EXIT = "exit"  # the process ended by itself (code or signal in ExitStatus)
    READINESS_TIMEOUT = "readiness"  # the gate did not pass in time; we stopped it
    LIVENESS = "liveness"  # liveness failed failure_threshold times; we stopped it
    MEMORY = "memory"  # the tree used more memory than limits.memory_mb; we stopped it
    SPAWN_FAILED = "spawn"  # could not even start (exec error, bad user, bad cwd)
    PORT_HELD = "port"  # a declared port is held by a process that is not ours


class Verdict(Enum):
    """What the runner does next."""

    RESTART_NOW = "restart_now"  # exit 99: no backoff, failures reset
    BACKOFF = "backoff"  # wait ``delay_s`` then start again
    WAIT_FOR_CHANGE = "wait_for_change"  # a reload broke it: wait for the next save
    QUARANTINE = "quarantine"  # exit 78, or max_retries consecutive failures
    EXITED = "exited"  # clean exit (or a crash under policy never): not restarted
    COMPLETED = "completed"  # a task exited 0: done, and its dependents may start


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    failures: int  # the consecutive failure count after this ending
    delay_s: float = 0.0
    reason: str = ""
    counts_as_failure: bool = False
    ending: Ending = Ending.EXIT

    @property
    def restart_reason(self) -> str:
        """The ``restarting`` event's reason (a metrics label): crash, liveness, memory or port."""
        return _RESTART_REASONS.get(self.ending, "crash")


_RESTART_REASONS = {Ending.LIVENESS: "liveness", Ending.MEMORY: "memory", Ending.PORT_HELD: "port"}


def decide(
    spec: RestartRules,
    ending: Ending,
    exit_code: int | None,
    failures: int,
    *,
    after_reload: bool = False,
    detail: str | None = None,
    task: bool = False,
    immediate_restarts: int = 0,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Apply the contract's exit-code table and the restart policy.

    Args:
        spec: the service's ``restart`` settings.
        ending: how the run ended.
        exit_code: the exit code when the process exited by itself with one, else None
            (killed by a signal, or stopped by us).
        failures: consecutive failures before this ending (already reset by the caller when
            the service had been healthy for ``reset_after_s``).
        after_reload: the run was started by a watched-file change and never became ready;
            a broken save then waits for the next save instead of burning the retry budget.
        detail: the failure in the words of whoever saw it (a probe's last answer, a
            spawn error, a port conflict); replaces the generic description.
        task: the service is a one-shot task: exit 0 completes it.
        immediate_restarts: exit-99 restarts within the last ``STORM_WINDOW_S`` seconds,
            this one not counted; past ``STORM_RESTARTS`` an exit 99 is treated as a crash.
        rand: randomness for jitter (tests pass a fixed function).
    """
    decision = _decide(spec, ending, exit_code, failures, after_reload, detail, task, immediate_restarts, rand)
    return replace(decision, ending=ending)


def _decide(
    spec: RestartRules,
    ending: Ending,
    exit_code: int | None,
    failures: int,
    after_reload: bool,
    detail: str | None,
    task: bool,
    immediate_restarts: int,
    rand: Callable[[], float],
) -> Decision:
    policy = BackoffPolicy.from_spec(spec)
    if ending is Ending.EXIT and exit_code == EXIT_HOT_RELOAD:
        if immediate_restarts < STORM_RESTARTS:
            return Decision(Verdict.RESTART_NOW, 0, reason="exit 99: hot-reload request")
        detail = (
            f"exit 99 {immediate_restarts + 1} times within {STORM_WINDOW_S:g}s: "
            "a restart storm, so the backoff policy applies"
        )
        ending = Ending.EXIT
        exit_code = None
    if ending is Ending.EXIT and exit_code == EXIT_SELF_QUARANTINE:
        return Decision(Verdict.QUARANTINE, failures, reason="exit 78: the service quarantined itself")
    if ending is Ending.EXIT and exit_code == 0 and task:
        return Decision(Verdict.COMPLETED, 0, reason="exit 0")
    if ending is Ending.EXIT and exit_code == 0:
        if spec.policy == "always":
            return Decision(Verdict.BACKOFF, 0, delay_s=policy.base_s, reason="exit 0; policy always")
        return Decision(Verdict.EXITED, 0, reason="exit 0")

    # Everything else is a failure: a crash, a signal, a failed gate, a failed liveness probe.
    count = failures + 1
    why = detail or _failure_reason(ending, exit_code)
    if spec.policy == "never":
        # Under `never` nothing restarts, a failed readiness gate included; the reason stays
        # in status so that the stop is never silent.
        return Decision(Verdict.EXITED, count, reason=f"{why}; restart policy is never", counts_as_failure=True)
    if after_reload:
        return Decision(
            Verdict.WAIT_FOR_CHANGE, failures, reason="waiting for a change after a failed reload",
            counts_as_failure=False,
        )
    if count >= spec.max_retries:
        return Decision(
            Verdict.QUARANTINE, count,
            reason=f"{count} consecutive failures (max_retries {spec.max_retries}); last: {why}",
            counts_as_failure=True,
        )
    return Decision(Verdict.BACKOFF, count, delay_s=policy.delay(count, rand), reason=why, counts_as_failure=True)


def _failure_reason(ending: Ending, exit_code: int | None) -> str:
    if ending is Ending.READINESS_TIMEOUT:
        return "readiness gate timed out"
    if ending is Ending.LIVENESS:
        return "liveness probe failed"
    if ending is Ending.SPAWN_FAILED:
        return "could not start"
    if ending is Ending.PORT_HELD:
        return "a declared port is held"
    if ending is Ending.MEMORY:
        return "over its memory limit"
    return f"exit {exit_code}" if exit_code is not None else "killed by a signal"


def effective_failures(failures: int, ready_since: float | None, now: float, reset_after_s: float) -> int:
    """The failure count as of ``now``: 0 once the service has been ready for ``reset_after_s``.

    The one reset rule: the lifecycle applies it when a run ends, status shows it meanwhile.
    """
    if ready_since is not None and now - ready_since >= reset_after_s:
        return 0
    return failures


def recent_immediate_restarts(times: tuple[float, ...], now: float) -> tuple[float, ...]:
    """The exit-99 restart times that still count for the storm guard at ``now``."""
    return tuple(t for t in times if now - t < STORM_WINDOW_S)
