"""What one benchmark run shares: settings, the peers to measure, and the launch life cycle.

Why a context: every workload launches supervisors the same way (a fresh work directory, a
launch id that marks its children, a bounded stop, and a kill of anything left), records
samples into one list, and reports a peer that cannot run it as "n/a" with a reason. The
``Context`` is owned by the entry point and used from its one thread.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.adapters import Peer
from benchmarks.adapters.base import Adapter, Service
from benchmarks.procs import RUN_VAR, ProcessScanner, kill_marked

#: How long a launch may take to stop all and exit before it is killed (and an error recorded).
STOP_GRACE_S = 30.0

Services = list[Service] | Callable[[Path], list[Service]]

CHILDREN = Path(__file__).resolve().parent / "children"


@dataclass(frozen=True)
class Settings:
    """Sizes and repetitions; ``quick()`` is the CI-sized run, ``full()`` the documented one."""

    cold_sizes: tuple[int, ...]
    cold_reps: dict[int, int]
    respawn_services: int
    respawn_reps: int
    gate_chain: int
    reload_reps: int
    idle_sizes: tuple[int, ...]
    idle_window_s: float
    flood_lines: int
    flood_reps: int
    stop_cap_s: float
    settle_s: float
    quick: bool
    client_services: int = 10
    client_reps: int = 10
    anatomy_size: int = 10
    anatomy_reps: int = 3
    #: The pause between two scans of ``/proc`` while a cold start is timed: the resolution
    #: of the cold-start and first-spawn numbers (one scan costs ~0.3 ms of CPU at N=10).
    cold_poll_s: float = 0.002

    @classmethod
    def full(cls) -> Settings:
        return cls(
            cold_sizes=(10, 50, 200, 500),
            cold_reps={10: 3, 50: 3, 200: 3, 500: 2},
            respawn_services=10,
            respawn_reps=50,
            gate_chain=50,
            reload_reps=20,
            idle_sizes=(10, 50, 500),
            idle_window_s=60.0,
            flood_lines=200_000,
            flood_reps=5,
            stop_cap_s=20.0,
            settle_s=1.0,
            quick=False,
            client_reps=20,
            anatomy_reps=5,
        )

    @classmethod
    def quick_run(cls) -> Settings:
        return cls(
            cold_sizes=(10, 50),
            cold_reps={10: 1, 50: 1},
            respawn_services=5,
            respawn_reps=5,
            gate_chain=10,
            reload_reps=3,
            idle_sizes=(10, 50),
            idle_window_s=3.0,
            flood_lines=200_000,
            flood_reps=1,
            stop_cap_s=5.0,
            settle_s=0.5,
            quick=True,
            client_reps=3,
            anatomy_reps=1,
        )


@dataclass
class Context:
    """One run: its id, scratch space, peers, settings and everything recorded so far.

    Attributes:
        run: the run id (``MPSV3_BENCH_RUN`` on every process of the run).
        scratch: a directory for launch work directories, removed at the end.
        peers: the peers to measure, by name.
        samples: one dict per measurement, with at least ``workload`` and ``peer``.
        na: one dict per peer and workload it cannot run, with the ``reason``.
    """

    run: str
    scratch: Path
    peers: dict[str, Peer]
    settings: Settings
    progress: Callable[[str], None]
    samples: list[dict[str, Any]] = field(default_factory=list)
    na: list[dict[str, Any]] = field(default_factory=list)
    _launches: int = 0

    @property
    def python(self) -> str:
        """The interpreter for the Python children (the one running the benchmark)."""
        return sys.executable

    @property
    def sleep(self) -> str:
        found = shutil.which("sleep")
        if found is None:
            raise RuntimeError("no `sleep` executable on PATH")
        return found

    def sleepers(self, count: int, prefix: str = "s") -> list[Service]:
        """``count`` idle services, each ``sleep 3600``."""
        return [Service(f"{prefix}{index}", (self.sleep, "3600")) for index in range(count)]

    def talkers(self, count: int, lines: int = 100) -> list[Service]:
        """``count`` services that print ``lines`` lines each, then sleep (``children/talk.sh``)."""
        shell = shutil.which("sh")
        if shell is None:
            raise RuntimeError("no `sh` executable on PATH")
        script = str(CHILDREN / "talk.sh")
        return [Service(f"s{index}", (shell, script, str(lines))) for index in range(count)]

    def child(self, script: str, *args: str) -> tuple[str, ...]:
        """argv running ``children/<script>`` with the benchmark's Python (isolated mode)."""
        return (self.python, "-I", "-S", str(CHILDREN / script), *args)

    def record(self, workload: str, peer: str, **fields: Any) -> dict[str, Any]:
        sample = {"workload": workload, "peer": peer, **fields}
        self.samples.append(sample)
        return sample

    def supports(self, peer: str, workload: str) -> bool:
        """True if ``peer`` can run ``workload``; otherwise records the n/a reason once."""
        reason = self.peers[peer].adapter.unsupported.get(workload)
        if reason is None:
            return True
        if not any(item["peer"] == peer and item["workload"] == workload for item in self.na):
            self.na.append({"workload": workload, "peer": peer, "reason": reason})
        return False

    def new_launch(self, peer: str, services: Services) -> Adapter:
        """A configured (not started) adapter in a fresh work directory.

        Args:
            peer: the peer's name.
            services: the services, or a function of the work directory that prepares files
                there (a watched file, a results folder) and returns them.
        """
        self._launches += 1
        launch = f"{self.run}.{self._launches}"
        workdir = self.scratch / f"{peer}-{self._launches}"
        adapter = self.peers[peer].make(workdir, launch, self.run)
        adapter.write_config(services(workdir) if callable(services) else services)
        return adapter

    @contextmanager
    def launched(
        self, peer: str, services: Services, extra_env: dict[str, str] | None = None
    ) -> Iterator[tuple[Adapter, ProcessScanner]]:
        """Configure, start and finally stop (bounded) and clean up one launch."""
        adapter = self.new_launch(peer, services)
        scanner = ProcessScanner(adapter.launch)
        try:
            adapter.start(extra_env)
            yield adapter, scanner
        finally:
            asked = time.monotonic()
            if shutdown(adapter, timeout_s=STOP_GRACE_S) is None:
                self.record(
                    "shutdown",
                    peer,
                    error=f"still running {time.monotonic() - asked:.0f} s after the stop request",
                )

    def cleanup(self) -> list[int]:
        """Kill every process of the run that is still alive (none, when all went well)."""
        return kill_marked(RUN_VAR, self.run, grace_s=2.0)


def shutdown(adapter: Adapter, timeout_s: float) -> float | None:
    """Ask for a graceful stop, wait for it (bounded), then kill what is left."""
    finished: float | None = None
    try:
        if not adapter.stopped():
            adapter.request_stop()
        finished = adapter.wait_stopped(timeout_s)
    finally:
        adapter.close()
    return finished


def wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    poll_s: float = 0.01,
    give_up: Callable[[], bool] | None = None,
) -> float | None:
    """Poll ``predicate`` until true; the monotonic time it became true, or None.

    ``give_up`` is checked after a false predicate; True ends the wait at once (None), for a
    supervisor that has exited and so will never make the predicate true.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        if give_up is not None and give_up():
            return time.monotonic() if predicate() else None
        time.sleep(poll_s)
