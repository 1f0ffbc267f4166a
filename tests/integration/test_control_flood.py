"""The control socket under a flood (issue 15): idle connections up to the fd limit, garbage,
50 MB payloads, accept() failing with EMFILE. Real Unix sockets, a real server process with
a lowered fd limit, and a real ``mpsv3 up`` whose services must not notice.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mpsv3.control.client import request
from mpsv3.control.protocol import client_path, socket_path
from mpsv3.control.server import ControlServer
from support import MPSV3, Stack, free_port

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")

FIFTY_MB = 50 * 1024 * 1024


@dataclass(frozen=True)
class Instance:
    name: str
    state_dir: Path
    path: Path


async def pong(message: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": "pong"}


def connect_idle(path: Path, count: int) -> list[socket.socket]:
    """Up to ``count`` connections that send nothing (fewer if the backlog is full)."""
    opened = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        if sock.connect_ex(str(path)) != 0:  # EAGAIN: the backlog is full
            sock.close()
            continue
        opened.append(sock)
    return opened


def send_huge(path: Path, size: int = FIFTY_MB) -> int:
    """Send ``size`` bytes without a newline; how many the server took before it hung up."""
    chunk = b"x" * 65536
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        try:
            while sent < size:
                sent += sock.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    return sent


def send_garbage(path: Path, payload: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        try:
            sock.connect(str(path))
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass


async def timed_status(instance: Instance) -> float:
    started = time.monotonic()
    reply = await request(instance, {"cmd": "status"}, timeout_s=10)
    assert reply["ok"] is True
    return time.monotonic() - started


def test_idle_connections_beyond_the_cap_push_out_the_longest_waiting(tmp_path: Path) -> None:
    instance = Instance("flood", tmp_path / ".mpsv3", tmp_path / "services.yaml")

    async def scenario() -> None:
        server = ControlServer(socket_path(instance), pong, max_connections=8, read_timeout_s=60)
        await server.start()
        idle: list[socket.socket] = []
        try:
            for _ in range(5):  # 200 idle connections, accepted as the backlog drains
                idle += connect_idle(server.path, 40)
                await asyncio.sleep(0.1)
            assert len(idle) >= 150
            assert server.connection_count() <= 9  # the cap, plus a newcomer for a moment
            assert max([await timed_status(instance) for _ in range(5)]) < 1.0
            await asyncio.sleep(0.2)
            dropped = sum(1 for sock in idle if _closed_by_peer(sock))
            assert dropped >= len(idle) - 9
            assert server.digest.counts().get("evicted", 0) >= len(idle) - 9
        finally:
            for sock in idle:
                sock.close()
            await asyncio.sleep(0.2)
            assert server.connection_count() == 0
            await server.close()

    asyncio.run(scenario())


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_fifty_megabyte_payloads_are_refused_without_being_read(tmp_path: Path) -> None:
    instance = Instance("huge", tmp_path / ".mpsv3", tmp_path / "services.yaml")

    async def scenario() -> list[int]:
        server = ControlServer(socket_path(instance), pong)
        await server.start()
        try:
            senders = [asyncio.to_thread(send_huge, server.path) for _ in range(6)]
            results = asyncio.gather(*senders)
            latencies = []
            while not results.done():
                latencies.append(await timed_status(instance))
                await asyncio.sleep(0.05)
            assert max(latencies) < 1.0
            return await results
        finally:
            await server.close()

    sent = asyncio.run(scenario())
    # The server skips at most 1 MiB past the 64 KiB limit, then hangs up; the rest of the
    # 50 MB never leaves the senders (socket buffers hold a few hundred KiB more).
    assert all(amount < 8 * 1024 * 1024 for amount in sent), sent


def test_a_flood_of_garbage_and_idle_connections_leaves_status_fast(tmp_path: Path) -> None:
    instance = Instance("mixed", tmp_path / ".mpsv3", tmp_path / "services.yaml")
    payloads = [b"\x00" * 500 + b"\n", b"{" * 10_000 + b"\n", b'{"cmd": "explode"}\n', b"GET /"]

    async def scenario() -> None:
        server = ControlServer(socket_path(instance), pong, read_timeout_s=1.0)
        await server.start()
        stop = threading.Event()

        def flood() -> None:
            held: list[socket.socket] = []
            index = 0
            while not stop.is_set():
                held += connect_idle(server.path, 20)
                send_garbage(server.path, payloads[index % len(payloads)])
                index += 1
                if len(held) > 400:
                    for sock in held[:200]:
                        sock.close()
                    del held[:200]
            for sock in held:
                sock.close()

        flooder = asyncio.ensure_future(asyncio.to_thread(flood))
        try:
            latencies = []
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                latencies.append(await timed_status(instance))
                await asyncio.sleep(0.05)
            assert max(latencies) < 1.0, latencies
        finally:
            stop.set()
            await flooder
            await asyncio.sleep(1.5)  # idle timeout: whatever is left is cut
            assert server.connection_count() == 0
            await server.close()
        counts = server.digest.counts()
        assert counts.get("bad-request", 0) > 10 and counts.get("evicted", 0) > 10

    asyncio.run(scenario())


# ------------------------------------------------- accept() failing with EMFILE, for real

SERVER = textwrap.dedent(
    """
    import asyncio, json, resource, sys
    from pathlib import Path
    from mpsv3.control.server import ControlServer

    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    async def pong(message):
        return {"ok": True, "result": "pong"}

    async def main():
        server = ControlServer(Path(sys.argv[1]), pong, max_connections=1000, read_timeout_s=2.0)
        await server.start()
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        transport = server._server  # the POSIX LocalServer: its accept-error digest
        await server.close()
        print("CLOSED", json.dumps(transport.digest.counts()), flush=True)

    asyncio.run(main())
    """
)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    path = tmp_path / "run" / "control.sock"
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY", proc.stderr
        yield proc, path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def exchange(path: Path, line: bytes, timeout: float = 10) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(line)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_accept_out_of_descriptors_backs_off_and_recovers(
    server_process: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, path = server_process
    held: list[socket.socket] = []
    try:
        for _ in range(10):  # far more than 40 descriptors' worth, for 2 s
            held += connect_idle(path, 50)
            time.sleep(0.2)
        assert proc.poll() is None
    finally:
        for sock in held:
            sock.close()
    # Once the idle ones are cut (2 s) the backoff (at most 1 s) resumes accepting.
    answered = wait_for(lambda: _pong(path), timeout=15)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.close()
    word, counts = proc.stdout.readline().split(" ", 1)
    assert word == "CLOSED"
    assert proc.wait(timeout=30) == 0
    errors = proc.stderr.read()
    assert answered
    assert json.loads(counts).get("accept-EMFILE", 0) >= 2  # failed again and again ...
    assert "Traceback" not in errors
    assert "accept failed (Too many open files)" in errors
    assert len(errors.splitlines()) <= 6, errors  # ... and said so once


def _pong(path: Path) -> bool:
    try:
        return json.loads(exchange(path, b'{"cmd": "status"}\n', timeout=2)) == {
            "ok": True, "result": "pong",
        }
    except (OSError, ValueError):
        return False



# ----------------------------------------- acceptance: a real `mpsv3 up` under a flood

PROGRAM = Path(__file__).parent / "programs" / "service.py"
SUPERVISOR_FD_LIMIT = 256


def service_cmd(port: int) -> str:
    return json.dumps([sys.executable, str(PROGRAM), "--port", str(port)])


def start_limited(stack: Stack, nofile: int) -> subprocess.Popen[bytes]:
    """``stack.start()``, with the supervisor's fd limit lowered to ``nofile``."""

    import resource  # POSIX only: imported here so the module still collects on Windows

    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(stack.console, "ab") as out:
        stack.process = subprocess.Popen(
            [*MPSV3, "up", "-c", str(stack.config_path)],
            cwd=stack.root, env=stack.env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=lower_limit,
        )
    return stack.process


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def line_count(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


class Flood:
    """Idle connections (4x the supervisor's fd limit), garbage and 50 MB payloads, in
    threads, until :meth:`stop`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held: list[socket.socket] = []
        self.sent_huge: list[int] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._idle),
            threading.Thread(target=self._garbage),
            *(threading.Thread(target=self._huge) for _ in range(3)),
        ]
        for thread in self._threads:
            thread.start()

    def _idle(self) -> None:
        while not self._stop.is_set():
            if len(self.held) < 4 * SUPERVISOR_FD_LIMIT:
                self.held += connect_idle(self.path, 50)
            time.sleep(0.05)

    def _garbage(self) -> None:
        payloads = [
            b"\x00" * 300 + b"\n", b"[" * 50_000 + b"\n", b'{"cmd": 7}\n',
            b"GET / HTTP/1.1\r\n\r\n",
        ]
        index = 0
        while not self._stop.is_set():
            send_garbage(self.path, payloads[index % len(payloads)])
            index += 1

    def _huge(self) -> None:
        while not self._stop.is_set():
            self.sent_huge.append(send_huge(self.path))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        for sock in self.held:
            sock.close()


@pytest.mark.slow
def test_a_flooded_supervisor_keeps_its_services_and_answers_status(make_stack: Any) -> None:
    web, cache = free_port(), free_port()
    stack: Stack = make_stack(f"""
        version: 1
        services:
          - id: web
            cmd: {service_cmd(web)}
            readiness: {{http_get: {{url: "http://127.0.0.1:{web}/ping"}}, timeout_s: 30}}
            liveness:
              http_get: {{url: "http://127.0.0.1:{web}/health"}}
              interval_s: 0.5
              timeout_s: 2
              failure_threshold: 2
          - id: cache
            cmd: {service_cmd(cache)}
            readiness: {{tcp: {{host: 127.0.0.1, port: {cache}}}, timeout_s: 30}}
            liveness:
              tcp: {{host: 127.0.0.1, port: {cache}}}
              interval_s: 0.5
              timeout_s: 2
              failure_threshold: 2
    """)
    proc = start_limited(stack, SUPERVISOR_FD_LIMIT)
    stack.wait_state("web", "ready")
    stack.wait_state("cache", "ready")
    pids = {s["id"]: s["pid"] for s in stack.status()["services"]}
    time.sleep(1.0)  # let the first liveness rounds settle the descriptor count
    baseline = open_fds(proc.pid)
    log_lines = line_count(stack.state_dir / "logs" / "mpsv3.log")
    console_lines = line_count(stack.console)
    events_before = len(stack.events())
    name = stack.status()["supervisor"]["name"]
    path = client_path(Instance(name, stack.state_dir, stack.config_path))

    flood = Flood(path)
    latencies: list[float] = []
    peak = baseline
    try:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            reply = json.loads(exchange(path, b'{"cmd": "status"}\n', timeout=5))
            latencies.append(time.monotonic() - started)
            assert reply["ok"] is True
            assert {s["id"]: s["pid"] for s in reply["result"]["services"]} == pids
            peak = max(peak, open_fds(proc.pid))
            time.sleep(0.2)
    finally:
        flood.stop()

    print(
        f"flood: {len(latencies)} status calls, slowest {max(latencies) * 1000:.0f} ms; "
        f"fds baseline {baseline}, peak {peak}; {len(flood.held)} idle connections opened; "
        f"{len(flood.sent_huge)} x 50 MB payloads, at most {max(flood.sent_huge or [0])} B taken"
    )
    assert max(latencies) < 1.0, latencies
    assert peak < SUPERVISOR_FD_LIMIT - 64, peak  # the cap kept most descriptors free
    assert len(flood.held) > SUPERVISOR_FD_LIMIT  # the flood did exceed the fd limit
    assert flood.sent_huge and max(flood.sent_huge) < 8 * 1024 * 1024
    assert wait_for(lambda: open_fds(proc.pid) <= baseline + 2, timeout=15), (
        baseline, open_fds(proc.pid),
    )
    assert proc.poll() is None
    assert {s["id"]: s["pid"] for s in stack.status()["services"]} == pids
    during = stack.events()[events_before:]
    assert [e for e in during if e["event"] in ("probe_failed", "exited", "spawned")] == []
    assert line_count(stack.state_dir / "logs" / "mpsv3.log") - log_lines < 20
    assert line_count(stack.console) - console_lines < 20, stack.console_text()[-3000:]
    assert "Traceback" not in stack.console_text()
    assert stack.stop() == 0
