"""The fault-injection suite's hostile inputs and its two longer scenarios.

``BAD_INPUTS``: configs ``check`` must refuse (the issue's list), each able to put itself at
a config path beside the healthy services. :func:`run_flood` and :func:`run_shortage`: one
run each of a descriptor fault against a real ``mpsv3 up``, recorded as plain data (the stack
is stopped when they return), so that several tests can each judge one aspect of it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from harness import (
    HEALTHY,
    Healthy,
    StatusPoller,
    answers_again,
    open_fds,
    out_of_descriptors,
    run_cli,
    service_cmd,
    stack_yaml,
    start_healthy,
    trouble,
)

from support import Stack, free_port, py

TEN_MB = 10 * 1024 * 1024
HOG = Path(__file__).parent / "hog.py"


# ------------------------------------------------------- inputs that check must refuse


@dataclass(frozen=True)
class BadInput:
    """A config ``check`` refuses; ``install`` writes it at a config path, beside ``healthy``."""

    id: str
    fragment: str  # what the refusal says
    service: str = ""  # a ``services:`` item added to the healthy ones
    env_file: bytes | None = None  # written as .env beside the config
    padding: int = 0  # the file is made this large with valid YAML
    device: str | None = None  # the config is this device (a symlink to it)

    @property
    def has_line(self) -> bool:
        """The refusal names the line (a size refusal names only the file)."""
        return self.device is None and not self.padding

    def install(self, config_path: Path, name: str, healthy: str) -> None:
        config_path.unlink(missing_ok=True)
        if self.device is not None:
            config_path.symlink_to(self.device)
            return
        if self.env_file is not None:
            (config_path.parent / ".env").write_bytes(self.env_file)
        text = stack_yaml(name, healthy + self.service)
        if self.padding:
            text += _padding(name, self.padding - len(text))
        config_path.write_text(text)


def _padding(name: str, size: int) -> str:
    """``size`` bytes of a service with a long ``env:``: valid YAML all the way."""
    lines = ['  - id: bad\n    cmd: ["true"]\n    env:\n']
    total, index = len(lines[0]), 0
    while total < size:
        line = f'      K{index:07d}: "{name}-{index:07d}-{"v" * 40}"\n'
        lines.append(line)
        total += len(line)
        index += 1
    return "".join(lines)


def _bad(sid: str, body: str) -> str:
    return f'  - id: {sid}\n    cmd: ["sleep", "3600"]\n{body}'


DEEP = "${A:-" * 1000 + "x" + "}" * 1000

BAD_INPUTS = [
    BadInput("nul-in-env", 'service "bad": env.A: contains a NUL', _bad("bad", '    env: {A: "x\\0y"}\n')),
    BadInput("equals-in-env-key", 'env["B=C"]: a variable name cannot contain "="',
             _bad("bad", '    env: {"B=C": "x"}\n')),
    BadInput("id-of-300-characters", "service id is 300 characters long", _bad("a" * 300, "")),
    BadInput("interpolation-1000-deep", "nested more than 32 deep", _bad("bad", f'    env: {{B: "{DEEP}"}}\n')),
    BadInput("nul-in-env-file", '"A": contains a NUL', _bad("bad", "    env_file: [.env]\n"),
             env_file=b"A=x\0y\nB=fine\n"),
    BadInput("backreference-pattern", "backreferences need backtracking",
             _bad("bad", '    readiness: {log: {pattern: "(a)\\\\1"}}\n')),
    BadInput("dev-zero", "larger than 1 MiB", device="/dev/zero"),
    BadInput("ten-megabytes", "larger than 1 MiB", padding=TEN_MB),
]
BAD_IDS = [b.id for b in BAD_INPUTS]



# ---------------------------------------------------- services that check lets through

CATASTROPHIC = f"""\
  - id: greedy
    cmd: {py('''
        import time
        while True:
            print("a" * 40 + "b", flush=True)
            time.sleep(0.01)
    ''')}
    readiness: {{log: {{pattern: "^(a+)+$"}}, timeout_s: 3}}
    restart: {{backoff: {{base_ms: 500, max_ms: 1000}}}}
"""


STORM = """\
  - id: storm
    cmd: ["sh", "-c", "exit 99"]
    restart: {backoff: {base_ms: 1000, factor: 2, max_ms: 4000}, max_retries: 100}
"""


ROTATION_BYTES = 4096
FAST_STORM = """\
  - id: storm
    cmd: ["sh", "-c", "exit 99"]
    restart: {backoff: {base_ms: 20, factor: 1, max_ms: 20}, max_retries: 1000000}
"""
CHATTY = f"""\
  - id: chatty
    cmd: {service_cmd("--chatter", 0.001)}
"""


BLOCKED = """\
  - id: blocked
    cmd: ["sleep", "3600"]
"""


# ------------------------------------- descriptors: ulimit -n 256 and a hostile neighbour


FD_LIMIT = 256


def lower_fd_limit() -> None:
    """``ulimit -n 256`` for ``up`` (the keeper), and so for the supervisor it starts."""
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@dataclass
class Flood:
    """What one run of :func:`run_flood` saw; the stack is stopped by then."""

    poller: StatusPoller  # the asyncio client (the UI's, attach's, up -d's)
    blocking: StatusPoller  # the client commands' blocking client
    cli: list[tuple[int, float, str]]  # `mpsv3 status` meanwhile: exit code, seconds, output
    trouble: list[dict[str, Any]]  # of the healthy services during the flood
    baseline: int  # the supervisor's descriptors before the flood
    peak: int
    settled: int  # ... once the neighbour was stopped
    opened: int  # connections the neighbour opened
    exit_code: int | None
    console: str


def _sample_cli(healthy: Healthy, until: float, out: list[tuple[int, float, str]]) -> None:
    stack = healthy.stack
    while time.monotonic() < until:
        result, took = run_cli("status", "-c", str(stack.config_path), cwd=stack.root, env=stack.env)
        out.append((result.returncode, took, result.stdout[-300:] + result.stderr[-1500:]))


def run_flood(root: Path) -> Flood:
    """Under ``ulimit -n 256``, a supervised neighbour holds idle control connections (4x the
    limit, each one the server drops replaced at once) for 8 s, while a service with
    ``ports:`` restarts and ``mpsv3 status`` is run again and again."""
    porter = free_port()
    extra = f"""\
  - id: porter
    cmd: {service_cmd("--port", porter)}
    ports: [{porter}]
    readiness: {{tcp: {{host: 127.0.0.1, port: {porter}}}, timeout_s: 30}}
"""
    healthy = start_healthy(lambda config, name: Stack(root / "stack", config, name=name), extra,
                            preexec_fn=lower_fd_limit)
    stack = healthy.stack
    try:
        engine = healthy.engine()
        assert engine.rlimit(psutil.RLIMIT_NOFILE)[0] == FD_LIMIT
        time.sleep(1.0)  # the first liveness rounds settle the descriptor count
        baseline, pids, after = open_fds(engine.pid), healthy.pids(), len(stack.events())
        argv = [sys.executable, str(HOG), "--name", healthy.name, "--state-dir", str(stack.state_dir),
                "--count", str(4 * FD_LIMIT)]
        stack.write_config(healthy.yaml(extra + f"  - id: hog\n    cmd: {json.dumps(argv)}\n"))
        assert healthy.ask({"cmd": "reload"})["ok"] is True
        healthy.wait_service("hog", lambda s: s["state"] == "ready")
        poller, blocking, cli, peak = _flooded(healthy, engine, pids)
        opened, settled = _neighbour_stopped(healthy, engine, baseline)
        trouble_seen = trouble(stack, after)
    finally:
        code = healthy.shut()
    print(f"fds: baseline {baseline}, peak {peak}, settled {settled}; the neighbour opened {opened} "
          f"connections; `mpsv3 status` ran {len(cli)} times: exit codes {sorted({c for c, _, _ in cli})}")
    return Flood(poller, blocking, cli, trouble_seen, baseline, peak, settled, opened, code, stack.console_text())


def _flooded(
    healthy: Healthy, engine: psutil.Process, pids: dict[str, int],
) -> tuple[StatusPoller, StatusPoller, list[tuple[int, float, str]], int]:
    """8 s of flood, watched by both clients and the CLI; ``porter`` restarts halfway."""
    poller = StatusPoller(healthy, {sid: pids[sid] for sid in HEALTHY})
    blocking = StatusPoller(healthy, {sid: pids[sid] for sid in HEALTHY}, blocking=True)
    cli: list[tuple[int, float, str]] = []
    sampler = threading.Thread(target=_sample_cli, args=(healthy, time.monotonic() + 8.0, cli))
    sampler.start()
    peak = 0
    try:
        for phase in ("before", "after"):
            if phase == "after":  # a port scan needs descriptors too
                assert healthy.ask({"cmd": "restart", "id": "porter"})["ok"] is True
                healthy.wait_service("porter", lambda s: s["state"] == "ready" and s["pid"] != pids["porter"])
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                peak = max(peak, open_fds(engine.pid))
                time.sleep(0.1)
    finally:
        poller.stop()
        blocking.stop()
        sampler.join(60)
    return poller, blocking, cli, peak


def _neighbour_stopped(healthy: Healthy, engine: psutil.Process, baseline: int) -> tuple[int, int]:
    """Stop ``hog``: how many connections it opened, and the supervisor's descriptors after."""
    log = healthy.stack.state_dir / "logs" / "hog.log"
    counts = [line.split() for line in log.read_text().splitlines() if "holding" in line]
    assert healthy.ask({"cmd": "stop", "id": "hog"})["ok"] is True
    healthy.wait_service("hog", lambda s: s["state"] == "stopped")
    deadline = time.monotonic() + 15
    while open_fds(engine.pid) > baseline + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    return max(int(words[-1]) for words in counts), open_fds(engine.pid)


# ------------------------------------------- descriptors: a real shortage in the supervisor


SHORTAGE_S = 5.0
WAITS_FOR = "while [ ! -e {0} ]; do sleep 0.05; done; rm {0}"


def shortage_services(port: int) -> str:
    """``brief`` exits when told; ``late`` and ``ported`` (which has ``ports:``) crash when
    told and wait 1.5 s to start again."""
    return f"""\
  - id: brief
    cmd: ["sh", "-c", "{WAITS_FOR.format('exit-now')}; exit 3"]
    restart: {{backoff: {{base_ms: 200, max_ms: 200}}}}
  - id: late
    cmd: ["sh", "-c", "{WAITS_FOR.format('crash-late')}; exit 3"]
    restart: {{backoff: {{base_ms: 1500, max_ms: 1500}}}}
  - id: ported
    cmd: ["sh", "-c", "{WAITS_FOR.format('crash-ported')}; exit 3"]
    ports: [{port}]
    restart: {{backoff: {{base_ms: 1500, max_ms: 1500}}}}
"""


@dataclass
class Shortage:
    """What one run of :func:`run_shortage` saw; the stack is stopped by then."""

    pids: dict[str, int]  # before
    statuses: dict[str, dict[str, Any]]  # 5 s after the shortage
    events: list[dict[str, Any]]  # from the start of the shortage to the statuses
    answered_after_s: float  # first status answer after the shortage
    poller: StatusPoller  # 3 s of status after that
    exit_code: int | None  # of `up` on SIGTERM (None: killed after 30 s)
    console: str


def run_shortage(root: Path) -> Shortage:
    """One run: the healthy stack and :func:`shortage_services`, then 5 s without a
    descriptor: ``late`` and ``ported`` crashed just before, so their restarts fall inside
    (``ported``'s port check first), and ``brief`` exits inside it. A stop beforehand
    (``worker``) loads what a first stop loads (see the lazy-import test)."""

    def make(config: str, name: str) -> Stack:
        return Stack(root / "stack", config, name=name)

    healthy = start_healthy(make, shortage_services(free_port()))
    stack = healthy.stack
    try:
        old_worker = healthy.pids()["worker"]
        assert healthy.ask({"cmd": "restart", "id": "worker"})["ok"] is True
        healthy.wait_service("worker", lambda s: s["state"] == "ready" and s["pid"] != old_worker)
        for sid in ("late", "ported"):
            healthy.wait_service(sid, lambda s: s["state"] == "ready")
        pids = healthy.pids()
        for sid in ("late", "ported"):
            (stack.root / f"crash-{sid}").touch()
        for sid in ("late", "ported"):
            healthy.wait_service(sid, lambda s: s["state"] == "backoff")
        after = len(stack.events())
        with out_of_descriptors(healthy.engine()):
            (stack.root / "exit-now").touch()
            time.sleep(SHORTAGE_S)
        answered = answers_again(healthy)
        poller = StatusPoller(healthy, {sid: pids[sid] for sid in ("web", "cache")})
        time.sleep(3.0)
        poller.stop()
        time.sleep(2.0)
        statuses = healthy.statuses()
        events = stack.events()[after:]
    finally:
        code = healthy.shut()
    return Shortage(pids, statuses, events, answered, poller, code, stack.console_text())
