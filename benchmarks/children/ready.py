"""A service that says when it is ready, then idles until it is stopped.

Run by every supervisor in the dependency-gate and hot-reload workloads. At start it records
``time.monotonic()`` (one clock for every process on Linux) in ``<ready_dir>/<pid>`` so that the
benchmark reads the exact moment the new process was up, whatever the supervisor's own notion of
ready; then it prints ``ready`` for log-pattern readiness. SIGTERM and SIGINT end it at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time


def main() -> None:
    started = time.monotonic()
    ready_dir = sys.argv[1]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    temp = os.path.join(ready_dir, f".{os.getpid()}.tmp")
    with open(temp, "w") as handle:
        handle.write(f"{started!r}\n")
    os.replace(temp, os.path.join(ready_dir, str(os.getpid())))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for _ in range(3600):
        time.sleep(1)


if __name__ == "__main__":
    main()
