"""mpsv3 itself: a ``services.yaml`` (version 1) and ``mpsv3 up -c FILE`` in the foreground.

Settings: ``backoff.base_ms: 0`` (its smallest restart delay), a ``max_retries`` large enough that
fifty kills never quarantine a service, ``debounce_ms: 0`` for the watched file, and a log
``max_bytes`` above the flood's size so that the log check reads one file. The instance name is
unique per launch so that launches never share a lease. Events are read back from
``<state_dir>/events.jsonl`` (the contract's file) for the dependency-gate workload.

``up`` keeps a compiled plan per config file (``mpsv3.plan_cache``); ``plan_entry_stamp`` says
whether a launch reused it or validated and stored the config again, so that the report never
calls a start "warm" that was not. Every service log line starts with a 25-byte stamp
(``2026-12-01T15:04:05.123Z ``), which the flood check strips before it checks the line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from pathlib import Path
from typing import Any, ClassVar

import psutil
import yaml

from benchmarks.adapters.base import Adapter, Service

STATE_DIR = "state"


#: ``plan_entry_stamp`` when the cache entry cannot be found at all.
UNKNOWN = -1
#: The stamp before every line of a service's log (``tests/support.py: unstamped()``).
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


class Mpsv3Adapter(Adapter):
    name: ClassVar[str] = "mpsv3"
    unsupported: ClassVar[dict[str, str]] = {}
    plan_cache: ClassVar[bool] = True
    log_prefix: ClassVar[re.Pattern[str] | None] = STAMP

    def __init__(
        self,
        workdir: Path,
        launch: str,
        run: str,
        launcher: list[str],
        profiler: list[str] | None = None,
    ) -> None:
        super().__init__(workdir, launch, run)
        self.launcher = launcher
        self.profiler = profiler

    def write_config(self, services: list[Service]) -> None:
        specs: list[dict[str, Any]] = []
        for service in services:
            spec: dict[str, Any] = {
                "id": service.name,
                "cmd": list(service.argv),
                "env": {**service.env, **self.marker_env(service.name)},
                "restart": {
                    "policy": "always" if service.restart else "never",
                    "backoff": {"base_ms": 0},
                    "max_retries": 100000,
                },
            }
            if service.requires:
                spec["requires"] = list(service.requires)
            if service.ready_pattern is not None:
                spec["readiness"] = {"log": {"pattern": service.ready_pattern}}
            if service.watch:
                spec["watch"] = {
                    "paths": [str(path.relative_to(self.workdir)) for path in service.watch],
                    "debounce_ms": 0,
                }
            specs.append(spec)
        stack = {
            "version": 1,
            "name": f"bench-{self.launch}",
            "state_dir": STATE_DIR,
            "logs": {"max_bytes": 1 << 28},
            "services": specs,
        }
        (self.workdir / "services.yaml").write_text(yaml.safe_dump(stack, sort_keys=False))

    def command(self) -> list[str]:
        argv = [*self.launcher, "up", "-c", str(self.workdir / "services.yaml")]
        if not self.profiler:
            return argv
        wrapper = [arg.replace("{launch}", self.launch) for arg in self.profiler]
        return [*wrapper, "--", *argv]

    def root_pid(self) -> int | None:
        """``mpsv3 up`` itself: the launched process, or the profiler's child when profiled."""
        if self.proc is None or not self.profiler:
            return super().root_pid()
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.Error:
            return None
        return children[0].pid if children else None

    def request_stop(self) -> None:
        pid = self.root_pid()
        if pid is not None and not self.stopped():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def log_path(self, service: str) -> Path:
        return self.workdir / STATE_DIR / "logs" / f"{service}.log"

    @property
    def config(self) -> Path:
        return self.workdir / "services.yaml"

    def client_command(self, command: str, service: str) -> list[str] | None:
        config = ["-c", str(self.config)]
        argv = {
            "status": ["status", *config],
            "logs": ["logs", service, "-n", "5", *config],
            "restart": ["restart", service, *config],
        }
        return [*self.launcher, *argv[command]] if command in argv else None

    def change_config(self, revision: int) -> None:
        """Change the config file's bytes (a comment), so that ``up`` must validate it again."""
        with self.config.open("a") as handle:
            handle.write(f"# revision {revision}\n")

    def plan_entry_stamp(self) -> int | None:
        """The mtime (ns) of this config's entry in mpsv3's plan cache; None when it has none.

        Compared before and after a launch: unchanged means the launch reused the cached plan,
        changed means it validated the config and stored it, None after it means ``up`` does
        not use the cache at all. ``UNKNOWN`` when this mpsv3 has no plan cache module that
        names its entries (the report then says it cannot tell).
        """
        try:
            from mpsv3 import plan_cache
        except ImportError:
            return UNKNOWN
        entry_path = getattr(plan_cache, "_entry_path", None)
        if entry_path is None:
            return UNKNOWN
        try:
            return int(entry_path(Path(os.path.abspath(self.config)), {}).stat().st_mtime_ns)
        except OSError:
            return None

    def events(self) -> list[dict[str, Any]]:
        """Every event of this launch, in file order (unparsable lines are skipped)."""
        path = self.workdir / STATE_DIR / "events.jsonl"
        found: list[dict[str, Any]] = []
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return found
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                found.append(record)
        return found
