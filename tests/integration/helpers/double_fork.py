"""A leader that double-forks a daemon out of its process group and session.

Usage: double_fork.py LEADER_SECONDS
Prints ``DAEMON <pid>`` once the daemon runs, then sleeps LEADER_SECONDS and exits 0.
The daemon (fork, setsid, fork) sleeps 1000 s: only the env markers (or the subreaper)
can find it again.
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    read_fd, write_fd = os.pipe()
    if os.fork() == 0:
        os.close(read_fd)
        os.setsid()
        if os.fork() == 0:
            os.write(write_fd, f"{os.getpid()}\n".encode())
            os.close(write_fd)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.execvp("sleep", ["sleep", "1000"])
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        daemon = pipe.readline().strip()
    os.wait()
    print(f"DAEMON {daemon}", flush=True)
    time.sleep(float(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
