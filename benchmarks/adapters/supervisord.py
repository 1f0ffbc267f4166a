"""supervisord (the ``supervisor`` package): one ``[program:x]`` section per service.

Settings chosen for its fastest restart: ``startsecs=0`` (a child counts as started at once, so
a kill is an exit from RUNNING that ``autorestart`` answers without a BACKOFF delay); nothing
else is tuned. Its main loop polls with a 1 s timeout: a child's death wakes it (the pipe
closes) but the respawn happens on the next pass, a full second later unless something else
wakes the loop, which is why its respawn samples are killed one at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from benchmarks.adapters.base import Adapter, Service


def _quote_env(env: dict[str, str]) -> str:
    return ",".join(f'{key}="{value}"' for key, value in env.items())


class SupervisordAdapter(Adapter):
    name: ClassVar[str] = "supervisord"
    unsupported = {
        "gate": "no readiness-gated dependencies (priority only orders the spawns)",
        "reload": "no file watching",
    }

    def __init__(self, workdir: Path, launch: str, run: str, executable: Path) -> None:
        super().__init__(workdir, launch, run)
        self.executable = executable

    def write_config(self, services: list[Service]) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        lines = [
            "[supervisord]",
            "nodaemon=true",
            f"logfile={self.workdir / 'supervisord.log'}",
            f"pidfile={self.workdir / 'supervisord.pid'}",
            f"childlogdir={logs}",
            "",
            "[unix_http_server]",
            f"file={self.workdir / 'supervisor.sock'}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.workdir / 'supervisor.sock'}",
            "",
        ]
        for service in services:
            env = {**service.env, **self.marker_env(service.name)}
            lines += [
                f"[program:{service.name}]",
                "command=" + " ".join(service.argv),
                "autostart=true",
                f"autorestart={'true' if service.restart else 'false'}",
                "startsecs=0",
                "startretries=1000",
                "stopsignal=TERM",
                "stopwaitsecs=10",
                "redirect_stderr=true",
                f"stdout_logfile={self.log_path(service.name)}",
                "stdout_logfile_maxbytes=0",
                f"environment={_quote_env(env)}",
                "",
            ]
        (self.workdir / "supervisord.conf").write_text("\n".join(lines))

    def command(self) -> list[str]:
        return [str(self.executable), "-n", "-c", str(self.workdir / "supervisord.conf")]

    def client_command(self, command: str, service: str) -> list[str] | None:
        """``supervisorctl`` over the unix socket; ``tail`` prints the last 1600 bytes."""
        verb = {"status": ["status"], "logs": ["tail", service], "restart": ["restart", service]}
        ctl = self.executable.with_name("supervisorctl")
        conf = str(self.workdir / "supervisord.conf")
        return [str(ctl), "-c", conf, *verb[command]] if command in verb else None

    def log_path(self, service: str) -> Path:
        return self.workdir / "logs" / f"{service}.log"
