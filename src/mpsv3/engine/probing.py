"""The readiness gate and the liveness loop of one run: probes over time, answered as events.

Why apart from ``probes.py``: that module answers "does the probe pass right now?"; this one
owns *when* to ask (every ``period_ms`` until ``timeout_s``, every ``interval_s`` once ready)
and turns the answers into the lifecycle's events (``GatePassed``, ``GateTimedOut``,
``LivenessResult``). The runner starts each as a task of its own and cancels it with the run.
A ``log`` gate waits for a matching output line, a ``notify`` gate for ``READY=1``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from mpsv3._compat import timeout
from mpsv3.engine.notify import NotifySocket
from mpsv3.engine.probes import LogMatcher, ProbeRunner
from mpsv3.engine.pump import OutputPump
from mpsv3.plan import LivenessPlan, ReadinessPlan
from mpsv3.policy.messages import Event, GatePassed, GateTimedOut, LivenessResult


async def readiness_gate(
    spec: ReadinessPlan,
    probes: ProbeRunner,
    *,
    cwd: Path,
    env: Mapping[str, str],
    notify: NotifySocket | None,
    log_matched: asyncio.Event | None,
    started: float,
    clock: Callable[[], float],
) -> GatePassed | GateTimedOut:
    """Wait until the gate passes or ``timeout_s`` runs out (a failed start).

    Args:
        spec: the service's readiness settings.
        probes: runs one attempt of a polled probe.
        cwd, env: for an ``exec`` probe.
        notify: the service's notify socket, for a ``notify`` gate.
        log_matched: set by the output pump on a matching line, for a ``log`` gate.
        started: ``clock()`` at spawn, for ``after_ms``.
        clock: the runner's monotonic clock.
    """
    check = spec.check
    last = "no matching line yet" if log_matched is not None else "no answer yet"
    try:
        async with timeout(spec.timeout_s):
            if log_matched is not None:
                await log_matched.wait()
            elif notify is not None:
                await notify.wait_ready()
            else:
                while True:
                    result = await probes.check(check, spec.attempt_timeout_s, cwd=cwd, env=env)
                    if result.ok:
                        break
                    last = result.reason
                    await asyncio.sleep(spec.period_ms / 1000)
    except (asyncio.TimeoutError, TimeoutError):
        reason = f"not ready after {spec.timeout_s:g}s ({check.describe()}); last: {last}"
        return GateTimedOut(check.kind, reason)
    return GatePassed(round((clock() - started) * 1000, 1))


async def liveness_loop(
    spec: LivenessPlan,
    probes: ProbeRunner,
    *,
    cwd: Path,
    env: Mapping[str, str],
    post: Callable[[Event], None],
) -> None:
    """Probe every ``interval_s`` and post each answer, until cancelled."""
    check = spec.check
    while True:
        await asyncio.sleep(spec.interval_s)
        result = await probes.check(check, spec.timeout_s, cwd=cwd, env=env)
        if not result.inconclusive:  # our own shortage never counts against the service
            post(LivenessResult(result.ok, check.kind, result.reason))


def attach_log_gate(pump: OutputPump, pattern: str) -> asyncio.Event:
    """For a ``log`` gate: watch output from the very first line (attach before the pump runs)."""
    matcher = LogMatcher(pattern)
    matched = asyncio.Event()

    def listen(line: str) -> None:
        if matcher.feed(line):
            matched.set()
            pump.line_listener = None

    pump.line_listener = listen
    return matched
