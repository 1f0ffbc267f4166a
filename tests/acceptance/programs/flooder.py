"""A service that floods its output with numbered lines: the compressed soak's log witness.

Run as ``python flooder.py``. The main process starts one child (``python flooder.py --child``)
and starts a new one whenever it dies, as a master restarts a worker. Each of the two prints
``flood <role>-<pid> <seq> <padding>`` (``role`` is ``main`` or ``child``), ``FLOOD_RATE``
lines a second, ``seq`` counting from 0 without a gap; so a reader of the service's log can
tell a lost line (a gap within one run) from a process that was killed (its run just ends).

- SIGUSR1: the receiver prints ``FLOOD_BURST`` lines at once (a log flood); ``mpsv3 signal
  flood USR1 --group`` floods from both processes together.
- SIGTERM: the main process stops its child; each prints ``flood <role>-<pid> end <count>``
  (lines printed before it) and exits 0, so a lost tail of an orderly stop shows too.

Every write is whole lines and at most ``PIPE_BUF`` bytes: the two processes share one pipe,
and such a write is atomic, so their lines never interleave inside a line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

PIPE_BUF = 4096
PADDING = "x" * 48


class Flooder:
    """One process's numbered lines; signal handlers only set flags, the loop acts on them."""

    def __init__(self, role: str, rate: float, burst: int) -> None:
        self.run = f"{role}-{os.getpid()}"
        self.seq = 0
        self.period = 1.0 / rate
        self.burst = burst
        self.bursts = 0
        self.stopping = False
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_usr1(self, _signum: int, _frame: FrameType | None) -> None:
        self.bursts += 1

    def _on_term(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True

    def print_lines(self, count: int) -> None:
        chunk: list[bytes] = []
        size = 0
        for _ in range(count):
            line = f"flood {self.run} {self.seq} {PADDING}\n".encode()
            if size + len(line) > PIPE_BUF:
                write_all(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
            self.seq += 1
        if chunk:
            write_all(b"".join(chunk))

    def tick(self) -> None:
        """One line, a pending burst, then the pause until the next line."""
        if self.bursts:
            self.bursts -= 1
            self.print_lines(self.burst)
        self.print_lines(1)
        time.sleep(self.period)

    def end(self) -> None:
        write_all(f"flood {self.run} end {self.seq}\n".encode())


def write_all(data: bytes) -> None:
    written = os.write(1, data)
    if written != len(data):  # a pipe write of at most PIPE_BUF bytes is whole or nothing
        raise OSError(f"short write: {written} of {len(data)} bytes")


def start_child() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child"])


def main() -> int:
    rate = float(os.environ.get("FLOOD_RATE", "20"))
    burst = int(os.environ.get("FLOOD_BURST", "10000"))
    is_child = sys.argv[1:] == ["--child"]
    flooder = Flooder("child" if is_child else "main", rate, burst)
    child = None if is_child else start_child()
    try:
        while not flooder.stopping:
            flooder.tick()
            if child is not None and child.poll() is not None:
                child = start_child()
    except BrokenPipeError:  # nobody reads our output any more: the supervisor is gone
        return 1
    if child is not None:
        child.terminate()
        child.wait()
    flooder.end()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
