"""Readiness and liveness checks: one attempt of a probe, bounded in time, as a value.

Who owns what: a service's runner decides *when* to probe (poll period, interval, thresholds);
this module only answers "does the probe pass right now?" with a ``ProbeResult``. A failure of
any kind (refused, timed out, wrong status, bad exit code) is a result, never an exception, so
that the runner's state machine has one path for "not yet". The polled kinds are ``tcp``,
``http_get``, ``exec`` and ``redis_ping``; ``log`` readiness is event-driven through
``LogMatcher`` (the runner feeds it output lines) and ``notify`` through ``NotifySocket``.

``ProbeRunner`` is created once per supervisor and used from its event loop only. Each attempt
runs in its own ``timeout`` scope, so a hung probe never blocks any other task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mpsv3._compat import TaskGroup, timeout
from mpsv3.engine.http_probe import HttpProbeError, HttpProber
from mpsv3.engine.notify import NotifySocket
from mpsv3.plan import CheckPlan
from mpsv3.platform.pressure import is_exhaustion

__all__ = [
    "POLLED_KINDS",
    "LogMatcher",
    "NotifySocket",
    "ProbeResult",
    "ProbeRunner",
    "run_check",
]

#: The kinds that ``ProbeRunner.check`` can run; ``log`` and ``notify`` are event-driven.
POLLED_KINDS = ("tcp", "http_get", "exec", "redis_ping")

REDIS_PING = b"*1\r\n$4\r\nPING\r\n"
REDIS_PONG = b"+PONG\r\n"

@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe attempt.

    Attributes:
        ok: True when the probe passed.
        reason: ``""`` when ok; otherwise one line saying why, e.g. ``"connection refused"``,
            ``"HTTP 503"``, ``"timed out after 2.0s"``, ``"exit 3"``.
        elapsed_ms: Wall time the attempt took.
        inconclusive: the attempt could not be made for the supervisor's own reasons (out of
            file descriptors or memory): it says nothing about the service.
    """

    ok: bool
    reason: str
    elapsed_ms: float
    inconclusive: bool = False


class _CheckFailed(Exception):
    """Internal: a probe attempt failed for the one-line reason in ``args[0]``."""


class LogMatcher:
    """Readiness by output: the runner feeds every output line; one match means ready.

    Owned by one service runner for one spawn (make a new one per spawn). ``matched`` stays
    True after the first match; later lines are still answered so the runner may log them.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        from mpsv3.config.patterns import compile_pattern  # re2, only for a log gate

        self._regex = compile_pattern(pattern)
        self.matched = False

    def feed(self, line: str) -> bool:
        """Return True when ``line`` matches the pattern (RE2, linear time) and remember it."""
        if self._regex.search(line) is None:
            return False
        self.matched = True
        return True


class ProbeRunner:
    """Runs single probe attempts (a seam: tests pass a scripted one).

    Created once per supervisor and closed with ``aclose()`` at shutdown. Use it from the
    supervisor's event loop only; concurrent ``check`` calls are fine (each attempt has its
    own timeout scope and its own connection).
    """

    def __init__(self) -> None:
        self._http = HttpProber()

    async def aclose(self) -> None:
        """Close the connections kept for the next ``http_get`` attempt."""
        self._http.close()

    def idle_connections(self) -> int:
        """How many HTTP connections are kept open for the next attempt."""
        return self._http.idle

    async def check(
        self, spec: CheckPlan, timeout_s: float, *, cwd: Path, env: Mapping[str, str]
    ) -> ProbeResult:
        """Run one attempt of a polled probe, bounded by ``timeout_s``.

        Args:
            spec: A probe whose kind is in ``POLLED_KINDS``.
            timeout_s: Upper bound for the whole attempt (connect, request, answer, exit).
            cwd: Working directory of an ``exec`` probe's command.
            env: Full environment of an ``exec`` probe's command.

        Returns:
            The result; every failure, including the timeout, is a result with a reason.

        Raises:
            ValueError: ``spec`` is a ``log`` or ``notify`` probe, which are not polled.
        """
        kind = spec.kind
        if kind not in POLLED_KINDS:
            raise ValueError(f"{kind} probes are event-driven, not polled")
        started = time.monotonic()
        try:
            async with timeout(timeout_s):
                await self._attempt(spec, timeout_s, cwd=cwd, env=env)
        except (TimeoutError, asyncio.TimeoutError):
            return _result(started, f"timed out after {timeout_s}s")
        except (_CheckFailed, HttpProbeError) as exc:
            return _result(started, str(exc.args[0]))
        except OSError as exc:
            if is_exhaustion(exc):
                return ProbeResult(False, f"not probed: {_os_error_reason(exc)}", 0.0, inconclusive=True)
            return _result(started, _os_error_reason(exc))
        return _result(started, "")

    async def _attempt(
        self, check: CheckPlan, timeout_s: float, *, cwd: Path, env: Mapping[str, str]
    ) -> None:
        if check.kind == "tcp":
            await _check_tcp(check)
        elif check.kind == "http_get":
            await _check_http(self._http, check)
        elif check.kind == "exec":
            await _check_exec(check, cwd=cwd, env=env)
        else:
            await _check_redis(check)



async def run_check(
    spec: CheckPlan, timeout_s: float, *, cwd: Path, env: Mapping[str, str]
) -> ProbeResult:
    """One attempt of a polled probe with a throwaway HTTP client (see ``ProbeRunner.check``)."""
    runner = ProbeRunner()
    try:
        return await runner.check(spec, timeout_s, cwd=cwd, env=env)
    finally:
        await runner.aclose()


def _result(started: float, reason: str) -> ProbeResult:
    elapsed_ms = (time.monotonic() - started) * 1000.0
    return ProbeResult(ok=not reason, reason=reason, elapsed_ms=elapsed_ms)


# ------------------------------------------------------------------------------ the kinds


async def _check_http(http: HttpProber, check: CheckPlan) -> None:
    code = await http.status(check.url)
    if code != check.expect_status:
        if check.expect_status == 200:
            raise _CheckFailed(f"HTTP {code}")
        raise _CheckFailed(f"HTTP {code}, expected {check.expect_status}")


async def _check_tcp(check: CheckPlan) -> None:
    _, writer = await asyncio.open_connection(check.host, check.port)
    await _close_writer(writer)


async def _check_redis(check: CheckPlan) -> None:
    reader, writer = await asyncio.open_connection(check.host, check.port)
    try:
        writer.write(REDIS_PING)
        await writer.drain()
        try:
            line = await reader.readline()
        except ValueError:  # a line longer than the reader's limit
            raise _CheckFailed("reply line too long instead of PONG") from None
    finally:
        await _close_writer(writer)
    if line == REDIS_PONG:
        return
    if not line:
        raise _CheckFailed("connection closed before a reply to PING")
    reply = line.rstrip(b"\r\n")
    raise _CheckFailed(f"got {reply!r} instead of PONG")


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:  # reset by the peer while closing: the check has its answer already
        return


async def _check_exec(check: CheckPlan, *, cwd: Path, env: Mapping[str, str]) -> None:
    """Run the command like a service (its own group, its output read and dropped); exit 0 passes.

    Whatever happens (exit, timeout, cancellation), the one stop routine ends what is left of
    it, children included: nothing of a probe outlives its attempt.
    """
    from mpsv3 import platform

    try:
        tree = await platform.spawn(list(check.cmd), cwd, dict(env))
    except platform.SpawnError as exc:
        raise _CheckFailed(str(exc).replace("cannot start", "cannot run", 1)) from None
    try:
        async with TaskGroup() as group:
            drain = group.create_task(_discard(tree.output))
            status = await tree.wait()
            drain.cancel()
    finally:
        await platform.terminate(tree, "SIGKILL", 0)
    if status.code != 0:
        raise _CheckFailed(status.describe())


async def _discard(output: asyncio.StreamReader) -> None:
    while await output.read(65536):
        continue


# ------------------------------------------------------------------------------ reasons


def _os_error_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if "Connection refused" in str(exc):  # "Multiple exceptions: ..." from several addresses
        return "connection refused"
    if exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
