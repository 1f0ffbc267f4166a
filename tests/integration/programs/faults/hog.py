"""A hostile neighbour: a supervised service that holds idle connections to its supervisor.

Any process of the supervisor's uid can connect to the control socket (issue 15: 341 idle
connections and ``ulimit -n 256`` ended the supervisor). This one keeps up to ``--count``
connections open that never send a byte, and replaces each one the server hangs up on, until
it is stopped. It raises its own descriptor limit first (it may have inherited the
supervisor's lowered one). Prints ``holding N opened M`` every second: connections open now
(accepted or waiting in the backlog), and opened since it started.

Usage: ``python hog.py --name INSTANCE --state-dir DIR --count N [--pause S]``
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import select
import socket
import time
from pathlib import Path

from mpsv3.control.protocol import InstanceRef, client_path


def raise_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):  # not root: as far as the hard limit goes
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    if sock.connect_ex(str(path)) != 0:  # the backlog is full, or nobody listens yet
        sock.close()
        return None
    return sock


def dropped(held: list[socket.socket]) -> list[socket.socket]:
    """The connections the server closed (readable: EOF or a reset)."""
    poller = select.poll()
    by_fd = {}
    for sock in held:
        poller.register(sock, select.POLLIN)
        by_fd[sock.fileno()] = sock
    return [by_fd[fd] for fd, _ in poller.poll(0)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--count", type=int, default=1024)
    parser.add_argument("--pause", type=float, default=0.005, help="seconds between refills")
    args = parser.parse_args()
    raise_limit(args.count + 64)
    path = client_path(InstanceRef(args.name, Path(args.state_dir), Path("services.yaml")))
    held: list[socket.socket] = []
    opened = 0
    last = 0.0
    while True:
        for sock in dropped(held):
            held.remove(sock)
            sock.close()
        while len(held) < args.count:
            fresh = connect(path)
            if fresh is None:
                break
            held.append(fresh)
            opened += 1
        if time.monotonic() - last >= 1.0:
            print(f"holding {len(held)} opened {opened}", flush=True)
            last = time.monotonic()
        time.sleep(args.pause)  # the backlog is refilled as soon as the server takes one


if __name__ == "__main__":
    main()
