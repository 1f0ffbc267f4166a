"""circus: one ``[watcher:x]`` section per service, control over IPC sockets (no TCP port).

circus has no restart delay to lower: a dead child is noticed by the arbiter's periodic
``manage_watchers`` call, every ``check_delay`` seconds (5 s by default in circus.ini). The
benchmark keeps that default, since lowering it buys respawn latency with idle CPU; the report
says so. ``copy_env`` makes children inherit the environment the way every other peer does.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from benchmarks.adapters.base import Adapter, Service

#: circus.ini's own default, stated so the report can name the tick it measured.
CHECK_DELAY_S = 5.0


class CircusAdapter(Adapter):
    name: ClassVar[str] = "circus"
    unsupported = {
        "gate": "no readiness-gated dependencies (priority only orders the watchers)",
        "reload": "no file watching",
    }
    tick_s = CHECK_DELAY_S
    client_unsupported = {"logs": "no log command (`circusctl` has none; logs are files)"}

    def __init__(self, workdir: Path, launch: str, run: str, executable: Path) -> None:
        super().__init__(workdir, launch, run)
        self.executable = executable

    def write_config(self, services: list[Service]) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        lines = [
            "[circus]",
            f"check_delay = {CHECK_DELAY_S}",
            f"endpoint = ipc://{self.workdir / 'control.sock'}",
            f"pubsub_endpoint = ipc://{self.workdir / 'pubsub.sock'}",
            "statsd = False",
            f"logoutput = {self.workdir / 'circusd.log'}",
            "",
        ]
        for service in services:
            lines += [
                f"[watcher:{service.name}]",
                f"cmd = {service.argv[0]}",
                "args = " + " ".join(service.argv[1:]),
                "numprocesses = 1",
                "copy_env = True",
                "warmup_delay = 0",
                f"respawn = {service.restart}",
                "graceful_timeout = 10",
                "stdout_stream.class = FileStream",
                f"stdout_stream.filename = {self.log_path(service.name)}",
                "stderr_stream.class = FileStream",
                f"stderr_stream.filename = {logs / service.name}.err",
                "",
                f"[env:{service.name}]",
            ]
            env = {**service.env, **self.marker_env(service.name)}
            lines += [f"{key} = {value}" for key, value in env.items()]
            lines.append("")
        (self.workdir / "circus.ini").write_text("\n".join(lines))

    def command(self) -> list[str]:
        return [str(self.executable), str(self.workdir / "circus.ini")]

    def client_command(self, command: str, service: str) -> list[str] | None:
        """``circusctl`` over the arbiter's ZeroMQ endpoint."""
        verb = {"status": ["status"], "restart": ["restart", service]}
        ctl = self.executable.with_name("circusctl")
        endpoint = f"ipc://{self.workdir / 'control.sock'}"
        return [str(ctl), "--endpoint", endpoint, *verb[command]] if command in verb else None

    def log_path(self, service: str) -> Path:
        return self.workdir / "logs" / f"{service}.log"
