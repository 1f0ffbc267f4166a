"""The small interface every supervisor adapter implements, and the launch life cycle.

Why one interface: the workloads must do exactly the same thing to every supervisor (write a
config for N services, launch, let ``/proc`` say when the children exist, kill one, stop all),
so each peer only translates a neutral ``Service`` list into its own config file and command.
An adapter instance is one launch: it owns the supervisor process it started and must leave
nothing behind (``close`` kills whatever is left, the PM2 daemon included).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar

from benchmarks.procs import RUN_VAR, SVC_VAR, kill_marked

#: Workload names, used by ``unsupported`` to say which ones a peer cannot run and why.
#: ``anatomy`` is mpsv3's own breakdown of its numbers (phases, imports, memory maps).
WORKLOADS = ("cold_start", "respawn", "gate", "reload", "idle", "logs", "client", "anatomy")
#: The client commands the ``client`` workload times, in report order.
CLIENT_COMMANDS = ("status", "logs", "restart")


@dataclass(frozen=True)
class Service:
    """One supervised service, neutral to every peer.

    Attributes:
        name: service name (``[a-z0-9_-]+``), unique in the launch.
        argv: the command; argv[0] is an absolute path.
        restart: restart whenever it exits (False: run once, for the log flood).
        ready_pattern: a regular expression its output prints when ready (gate workload).
        requires: services that must be ready before this one starts (gate workload).
        watch: files whose change restarts it (reload workload).
        env: extra environment for this service only.
    """

    name: str
    argv: tuple[str, ...]
    restart: bool = True
    ready_pattern: str | None = None
    requires: tuple[str, ...] = ()
    watch: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


class Adapter(ABC):
    """One launch of one supervisor over a list of services.

    Args:
        workdir: an empty directory for this launch's config, logs and state.
        launch: the launch id that marks this launch's children (``MPSV3_BENCH_SVC``).
        run: the run id that marks every process of the benchmark run (``MPSV3_BENCH_RUN``).
    """

    name: ClassVar[str]
    #: workload -> why this peer cannot run it (reported as "n/a" with the reason).
    unsupported: ClassVar[Mapping[str, str]] = {}
    #: The period of a peer that finds dead children only by polling on a fixed tick (0: it
    #: is woken by the exit). The respawn workload spreads several kills over one tick so that
    #: the samples cover every phase of the tick instead of locking onto one. Only a purely
    #: periodic reaper may set it: there, kills in the same round do not change each other's
    #: timing, whereas an event-driven loop (supervisord's) would be woken early by them.
    tick_s: ClassVar[float] = 0.0
    #: True for a peer that caches its compiled config between starts (mpsv3's plan cache):
    #: its cold start is measured both warm (config unchanged) and right after a change.
    plan_cache: ClassVar[bool] = False
    #: client command -> why this peer has no such command (reported as "n/a").
    client_unsupported: ClassVar[Mapping[str, str]] = {}
    #: What this peer writes before each line of a service's output in its log (None: the
    #: line as printed). The log check strips it and then requires the whole line.
    log_prefix: ClassVar[re.Pattern[str] | None] = None

    def __init__(self, workdir: Path, launch: str, run: str) -> None:
        self.workdir = workdir
        self.launch = launch
        self.run = run
        self.proc: subprocess.Popen[bytes] | None = None
        self._console: BinaryIO | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- peer-specific part

    @abstractmethod
    def write_config(self, services: list[Service]) -> None:
        """Translate ``services`` into this peer's config file(s) under ``workdir``."""

    @abstractmethod
    def command(self) -> list[str]:
        """The argv that launches the supervisor with the written config."""

    @abstractmethod
    def log_path(self, service: str) -> Path:
        """Where this peer writes ``service``'s output."""

    def request_stop(self) -> None:
        """Ask the supervisor to stop every service and exit (default: SIGTERM to it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def root_pid(self) -> int | None:
        """The process whose tree is "the supervisor" for CPU and memory (default: launched)."""
        return self.proc.pid if self.proc is not None else None

    def stopped(self) -> bool:
        """True once the supervisor itself is gone."""
        return self.proc is None or self.proc.poll() is not None

    def client_command(self, command: str, service: str) -> list[str] | None:
        """The argv of this peer's client ``command`` (``CLIENT_COMMANDS``) for ``service``."""
        return None

    def change_config(self, revision: int) -> None:
        """Change the config file's bytes, not its meaning (a peer with ``plan_cache``)."""
        raise NotImplementedError(f"{self.name} has no plan cache")

    def plan_entry_stamp(self) -> int | None:
        """A stamp of this config's cached plan that changes when it is stored again (or None)."""
        return None

    def client_env(self) -> dict[str, str]:
        """The environment a client command runs in (the supervisor's, by default)."""
        return self.base_env()

    # --------------------------------------------------------------------- shared part

    def marker_env(self, service: str) -> dict[str, str]:
        """The environment entry that marks ``service``'s process as this launch's child."""
        return {SVC_VAR: f"{self.launch}/{service}"}

    def base_env(self) -> dict[str, str]:
        """The supervisor's environment: ours plus the run marker."""
        env = dict(os.environ)
        env[RUN_VAR] = self.run
        env.pop(SVC_VAR, None)
        return env

    def start(self, extra_env: Mapping[str, str] | None = None) -> None:
        """Launch the supervisor in a session of its own, console output to a file.

        A launch may be started again once it has stopped and been closed (the plan-cache
        measurements start the same config twice); the console file is appended to.
        """
        self._console = (self.workdir / "console.out").open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            env={**self.base_env(), **(extra_env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_stopped(self, timeout_s: float) -> float | None:
        """Wait for the supervisor to exit; the monotonic time it was seen gone, or None."""
        deadline = time.monotonic() + timeout_s
        while not self.stopped():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)
        return time.monotonic()

    def console_tail(self, lines: int = 5) -> str:
        """The last lines the supervisor printed (for error reports)."""
        try:
            text = (self.workdir / "console.out").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def close(self) -> None:
        """Kill whatever this launch left: the supervisor's group, then any marked process."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        kill_marked(SVC_VAR, f"{self.launch}/", grace_s=0.5)
        if self._console is not None:
            self._console.close()
            self._console = None
