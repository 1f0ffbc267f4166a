"""The fault-injection suite's harness: a healthy stack beside the fault, watched from outside.

``test_fault_injection.py`` puts each hostile input beside three healthy services (an HTTP
server with HTTP liveness, a TCP server with a port check and TCP liveness, a worker with
``exec`` liveness) and watches them through the control socket the way an operator's tools
would: :class:`StatusPoller` asks for ``status`` every 0.1 s from a thread of its own and
records how long each answer took and which PIDs it named. Everything here drives real
processes; nothing reaches into the supervisor's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from mpsv3.control.client import request
from mpsv3.control.protocol import InstanceRef
from mpsv3.control.sync_client import request_sync
from mpsv3.errors import MpsvError
from support import MPSV3, Stack, free_port

PROGRAM = Path(__file__).resolve().parents[1] / "service.py"
HEALTHY = ("web", "cache", "worker")
#: A command of ours start to finish (interpreter start-up included) on a loaded 2-core box.
CLI_BUDGET_S = 5.0


def service_cmd(*args: object) -> str:
    """A YAML flow list running ``programs/service.py`` with ``args``."""
    return json.dumps([sys.executable, str(PROGRAM), *map(str, args)])


def healthy_services(web: int, cache: int) -> str:
    """The healthy neighbours, as ``services:`` items."""
    return f"""\
  - id: web
    cmd: {service_cmd("--port", web)}
    readiness: {{http_get: {{url: "http://127.0.0.1:{web}/ping"}}, timeout_s: 30}}
    liveness:
      http_get: {{url: "http://127.0.0.1:{web}/health"}}
      interval_s: 0.5
      timeout_s: 2
      failure_threshold: 2
  - id: cache
    cmd: {service_cmd("--port", cache)}
    ports: [{cache}]
    readiness: {{tcp: {{host: 127.0.0.1, port: {cache}}}, timeout_s: 30}}
    liveness:
      tcp: {{host: 127.0.0.1, port: {cache}}}
      interval_s: 0.5
      timeout_s: 2
      failure_threshold: 2
  - id: worker
    cmd: {service_cmd()}
    requires: [cache]
    liveness:
      exec: {{cmd: ["true"]}}
      interval_s: 0.5
      timeout_s: 2
      failure_threshold: 2
"""


def stack_yaml(name: str, services: str, top: str = "") -> str:
    return f"version: 1\nname: {name}\n{top}services:\n{services}"


@dataclass
class Healthy:
    """A running stack of the healthy services (and whatever a test put beside them)."""

    stack: Stack
    name: str
    services: str  # the healthy ``services:`` items

    @property
    def instance(self) -> InstanceRef:
        return InstanceRef(self.name, self.stack.state_dir, self.stack.config_path)

    def yaml(self, extra: str = "", top: str = "") -> str:
        return stack_yaml(self.name, self.services + extra, top)

    def ask(self, message: dict[str, Any], timeout_s: float = 30) -> dict[str, Any]:
        """One control request on the socket (the CLI would read the file, maybe hostile)."""
        return asyncio.run(request(self.instance, message, timeout_s))

    def statuses(self) -> dict[str, dict[str, Any]]:
        reply = self.ask({"cmd": "status"}, timeout_s=10)
        assert reply["ok"] is True, reply
        return {s["id"]: s for s in reply["result"]["services"]}

    def pids(self) -> dict[str, int]:
        return {sid: s["pid"] for sid, s in self.statuses().items()}

    def engine(self) -> psutil.Process:
        """The supervising process (``up`` itself is the keeper)."""
        reply = self.ask({"cmd": "status"})
        return psutil.Process(reply["result"]["supervisor"]["engine_pid"])

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every healthy service is ready, asked on the socket (events may rotate away)."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            process = self.stack.process
            assert process is not None and process.poll() is None, self.stack.console_text()[-3000:]
            try:
                reply = self.ask({"cmd": "status"}, timeout_s=10)
            except MpsvError:  # not listening yet
                reply = {"ok": False}
            # A refused status (the race of test_status_is_answered_while_psutil_first_loads)
            # is asked again: this only waits for the stack; pollers judge the answers.
            if reply["ok"]:
                states = {s["id"]: s["state"] for s in reply["result"]["services"]}
            if all(states.get(sid) == "ready" for sid in HEALTHY):
                return
            time.sleep(0.1)
        raise AssertionError(f"the healthy services are not ready: {states}")

    def wait_service(self, sid: str, predicate: Callable[[dict[str, Any]], bool],
                     timeout: float = 30) -> dict[str, Any]:
        """``sid``'s status entry, once ``predicate`` holds of it."""
        deadline = time.monotonic() + timeout
        entry: dict[str, Any] = {}
        while time.monotonic() < deadline:
            entry = self.statuses().get(sid, {})
            if entry and predicate(entry):
                return entry
            time.sleep(0.1)
        raise AssertionError(f"{sid} never got there; last status: {entry}")

    def shut(self, timeout: float = 30) -> int | None:
        """SIGTERM ``up`` and wait; a supervisor that does not stop in time is killed whole
        (keeper and supervisor; the services follow by their parent-death signal) and the
        answer is None."""
        process = self.stack.process
        if process is None:
            return None
        self.stack.process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None


#: Events a healthy service never has while a fault is elsewhere.
TROUBLE = ("probe_failed", "exited", "spawned", "backoff", "spawn_failed")


def trouble(stack: Stack, after: int, services: tuple[str, ...] = HEALTHY) -> list[dict[str, Any]]:
    """What happened to ``services`` since event number ``after`` that a healthy one never sees."""
    return [e for e in stack.events()[after:] if e["service"] in services and e["event"] in TROUBLE]


def start_healthy(
    make_stack: Callable[..., Stack], extra: str = "", top: str = "",
    preexec_fn: Callable[[], None] | None = None, before_up: Callable[[Stack], object] | None = None,
) -> Healthy:
    """``up`` (in a session of its own) the healthy services plus ``extra``; returns once the
    healthy ones are ready. ``before_up`` may prepare the stack's folder first."""
    name = f"fi{os.urandom(4).hex()}"
    services = healthy_services(free_port(), free_port())
    stack = make_stack(stack_yaml(name, services + extra, top), name=name)
    if before_up is not None:
        before_up(stack)
    with open(stack.console, "ab") as out:
        stack.process = subprocess.Popen(
            [*MPSV3, "up", "-c", str(stack.config_path)],
            cwd=stack.root, env=stack.env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=preexec_fn, start_new_session=True,
        )
    healthy = Healthy(stack, name, services)
    healthy.wait_ready()
    return healthy


class StatusPoller:
    """Asks for ``status`` on the control socket every 0.1 s from a thread of its own.

    Records each answer's latency and the PIDs of the ``watched`` services in it; ``verify``
    stops it and asserts: every request answered, within ``limit_s``, the PIDs unchanged.
    ``blocking`` picks the client: the asyncio one (``control.client.request``: the UI,
    ``attach``, ``up -d``) or the blocking one of the client commands (``request_sync``).
    """

    def __init__(self, healthy: Healthy, watched: dict[str, int], *, blocking: bool = False) -> None:
        self.blocking = blocking
        self.instance = healthy.instance
        self.watched = watched
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.moved: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._poll()), daemon=True)
        self._thread.start()

    async def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self.blocking:
                    reply = request_sync(self.instance, {"cmd": "status"}, timeout_s=10)
                else:
                    reply = await request(self.instance, {"cmd": "status"}, timeout_s=10)
            except Exception as exc:  # recorded, asserted on in verify()
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            took = time.monotonic() - started
            if reply["ok"]:
                self.latencies.append(took)
                services = {s["id"]: s for s in reply["result"]["services"]}
                self.last = services
                now = {sid: services.get(sid, {}).get("pid") for sid in self.watched}
                if now != self.watched:
                    self.moved.append(now)
            else:
                self.failures.append(f"after {took:.3f} s: {reply.get('error')}")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        slowest = sorted(self.latencies)[-3:]
        print(f"status ({'blocking' if self.blocking else 'asyncio'} client): {len(self.latencies)} "
              f"answers, slowest {', '.join(f'{t * 1000:.0f}' for t in slowest)} ms; "
              f"{len(self.failures)} failed")

    def percentile(self, share: float) -> float:
        """The latency that ``share`` (0..1) of the answers did not exceed."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def verify(self, limit_s: float = 1.0, *, all_answered: bool = True) -> None:
        """Stop; every answer within ``limit_s``, PIDs unchanged, and (``all_answered``)
        no request failed."""
        self.stop()
        assert self.latencies, f"no status answer at all: {self.failures[:3]}"
        if all_answered:
            assert self.failures == [], f"{len(self.failures)} failed: {self.failures[:3]}"
        assert max(self.latencies) < limit_s, sorted(self.latencies)[-5:]
        assert self.moved == [], f"healthy services changed PIDs: {self.moved[:3]} (were {self.watched})"


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``mpsv3 ARGS``, and how long it took."""
    started = time.monotonic()
    result = subprocess.run(
        [*MPSV3, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, preexec_fn=preexec_fn,
    )
    return result, time.monotonic() - started


def limit_memory() -> None:
    """For a client that reads a hostile file: 2 GiB of address space, not the machine's."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


# ------------------------------------------------------------------ descriptor shortage


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def out_of_descriptors(engine: psutil.Process) -> Iterator[None]:
    """No new descriptor for ``engine`` inside the block: its soft ``RLIMIT_NOFILE`` is 3,
    below every descriptor it can still get (0-2 are taken), so each ``open``, ``socket``,
    ``pipe`` and ``accept`` fails with EMFILE; the old limit is back when the block ends."""
    held = {int(fd) for fd in os.listdir(f"/proc/{engine.pid}/fd")}
    assert {0, 1, 2} <= held, held
    soft, hard = engine.rlimit(psutil.RLIMIT_NOFILE)
    engine.rlimit(psutil.RLIMIT_NOFILE, (3, hard))
    try:
        yield
    finally:
        engine.rlimit(psutil.RLIMIT_NOFILE, (soft, hard))


def answers_again(healthy: Healthy, timeout: float = 10) -> float:
    """Seconds until the supervisor answers ``status`` again (after a shortage)."""
    started = time.monotonic()
    while True:
        try:
            healthy.statuses()
            return time.monotonic() - started
        except MpsvError:
            if time.monotonic() - started > timeout:
                raise
            time.sleep(0.05)


# ------------------------------------------------------------------------- rotated files


def rotated(path: Path) -> list[Path]:
    """``x``, ``x.1``, ``x.2`` ... as far as they exist (newest first)."""
    found = [path] if path.exists() else []
    index = 1
    while path.with_name(f"{path.name}.{index}").exists():
        found.append(path.with_name(f"{path.name}.{index}"))
        index += 1
    return found


def wait_rotated(path: Path, backups: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(rotated(path)) < backups + 1:
        assert time.monotonic() < deadline, f"{path.name} did not rotate: {rotated(path)}"
        time.sleep(0.1)


def assert_bounded(path: Path, max_bytes: int, backups: int, whole: Callable[[str], object]) -> None:
    """``path`` rotated: ``backups`` older files and no more, each about ``max_bytes``, whole
    lines (each passed to ``whole``, which raises on a broken one)."""
    files = rotated(path)
    assert len(files) == backups + 1, files
    for file in files:
        data = file.read_text()
        assert len(data) <= max_bytes + 2048, (file, len(data))  # one line over at most
        assert data.endswith("\n"), file
        for line in data.splitlines():
            whole(line)
