"""honcho: a Procfile, one line per service; its console output is the log.

honcho is a foreman clone, not a supervisor: when one process exits it stops all of them, so
it cannot restart, gate or reload. Each service runs as ``/bin/sh -c`` under one Python helper
process per service (``multiprocessing``) that forwards every line to the main process through
a queue; that helper tree is what its memory column counts.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import ClassVar

from benchmarks.adapters.base import Adapter, Service


class HonchoAdapter(Adapter):
    name: ClassVar[str] = "honcho"
    unsupported = {
        "respawn": "no restart: one exited process stops the whole stack",
        "gate": "no dependencies between processes",
        "reload": "no file watching",
        "client": "no control client: honcho runs in the foreground only",
    }
    #: ``HH:MM:SS name.1 | `` before every line of its console.
    log_prefix = re.compile(r"\d\d:\d\d:\d\d \S+\s*\| ")

    def __init__(self, workdir: Path, launch: str, run: str, executable: Path) -> None:
        super().__init__(workdir, launch, run)
        self.executable = executable

    def write_config(self, services: list[Service]) -> None:
        lines = []
        for service in services:
            env = {**service.env, **self.marker_env(service.name)}
            assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
            argv = " ".join(shlex.quote(arg) for arg in service.argv)
            lines.append(f"{service.name}: exec env {assignments} {argv}")
        (self.workdir / "Procfile").write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return [
            str(self.executable),
            "start",
            "--no-colour",
            "-e",
            str(self.workdir / "no.env"),
            "-f",
            str(self.workdir / "Procfile"),
            "-d",
            str(self.workdir),
        ]

    def log_path(self, service: str) -> Path:
        return self.workdir / "console.out"
