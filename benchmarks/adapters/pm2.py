"""PM2: an ecosystem JSON file, a private ``PM2_HOME`` per launch, the daemon as the supervisor.

``pm2 start`` is a CLI that spawns the daemon (``God``) and hands it the apps, then exits; the
daemon is what supervises, so it is what CPU and memory are measured on, and stopping is
SIGTERM to the daemon (its documented graceful exit, which deletes the apps one at a time), the
same signal every other peer gets. ``restart_delay: 0`` and ``watch_delay: 0`` are its smallest
delays; ``interpreter: none`` makes it spawn the command itself, not a Node wrapper.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any, ClassVar

import psutil

from benchmarks.adapters.base import Adapter, Service


class Pm2Adapter(Adapter):
    name: ClassVar[str] = "pm2"
    unsupported = {"gate": "no dependencies between apps"}

    def __init__(self, workdir: Path, launch: str, run: str, executable: Path) -> None:
        super().__init__(workdir, launch, run)
        self.executable = executable
        self.home = workdir / "pm2home"
        self._daemon: psutil.Process | None = None

    def write_config(self, services: list[Service]) -> None:
        self.home.mkdir(exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        apps: list[dict[str, Any]] = []
        for service in services:
            app: dict[str, Any] = {
                "name": service.name,
                "script": service.argv[0],
                "args": list(service.argv[1:]),
                "interpreter": "none",
                "cwd": str(self.workdir),
                "autorestart": service.restart,
                "restart_delay": 0,
                "max_restarts": 1000,
                "merge_logs": True,
                "out_file": str(self.log_path(service.name)),
                "error_file": str(self.workdir / "logs" / f"{service.name}.err"),
                "env": {**service.env, **self.marker_env(service.name)},
            }
            if service.watch:
                app["watch"] = [str(path) for path in service.watch]
                app["watch_delay"] = 0
            apps.append(app)
        (self.workdir / "ecosystem.json").write_text(json.dumps({"apps": apps}, indent=1))

    def base_env(self) -> dict[str, str]:
        env = super().base_env()
        env["PM2_HOME"] = str(self.home)
        return env

    def command(self) -> list[str]:
        return [str(self.executable), "start", str(self.workdir / "ecosystem.json")]

    def client_command(self, command: str, service: str) -> list[str] | None:
        """The ``pm2`` CLI, which talks to the daemon over its RPC socket in ``PM2_HOME``."""
        verb = {
            "status": ["jlist"],
            "logs": ["logs", service, "--lines", "5", "--nostream"],
            "restart": ["restart", service],
        }
        return [str(self.executable), *verb[command]] if command in verb else None

    def log_path(self, service: str) -> Path:
        return self.workdir / "logs" / f"{service}.log"

    def daemon_pid(self) -> int | None:
        """The God daemon's PID from ``PM2_HOME/pm2.pid`` while it runs (remembered once seen).

        The daemon deletes its pid file a moment before it exits, so the process handle, not
        the file, says when it is gone.
        """
        if self._daemon is None:
            try:
                pid = int((self.home / "pm2.pid").read_text().strip())
                self._daemon = psutil.Process(pid)
            except (OSError, ValueError, psutil.Error):
                return None
        return self._daemon.pid if _running(self._daemon) else None

    def root_pid(self) -> int | None:
        return self.daemon_pid()

    def request_stop(self) -> None:
        pid = self.daemon_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)

    def stopped(self) -> bool:
        cli_done = self.proc is None or self.proc.poll() is not None
        return cli_done and self.daemon_pid() is None

    def close(self) -> None:
        pid = self.daemon_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        super().close()


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
