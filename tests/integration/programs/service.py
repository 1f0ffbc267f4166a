"""A configurable service for the gating, health and hot-reload tests of ``mpsv3 up``.

Each option turns on one behaviour the supervisor must observe from outside, so that a test
reads as a config plus assertions on events. Run as a script: ``python service.py --port N``.

- ``--delay S``: wait S seconds before becoming ready in any way (listen, print, notify, touch).
- ``--port N``: serve HTTP on 127.0.0.1:N (also a TCP probe target): ``/ping`` answers 200;
  ``/health`` answers 200 unless ``--sick-file`` says otherwise.
- ``--sick-file PATH``: when PATH appears it holds a number K; the server deletes it and
  answers the next K ``/health`` requests with 500, then 200 again (recovery is decided by
  the server, so a test needs no timing to stop the failures).
- ``--mode-file PATH``: at start, exit 1 if PATH contains the word ``broken``.
- ``--hup-file PATH``: append a line ``HUP <pid>`` to PATH on each SIGHUP (no exit).
- ``--touch PATH``: create PATH once ready (an ``exec`` readiness probe looks for it).
- ``--say TEXT``: print TEXT once ready (a ``log`` readiness probe matches it).
- ``--notify``: send ``READY=1`` on ``$NOTIFY_SOCKET`` once ready.
- ``--chatter S``: print a line every S seconds (it writes the service's own log).
- ``--fork-child``: fork one child that only sleeps (same process group, same SIGHUP
  handler), so a test can tell a signal to the group from a signal to the leader.
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--sick-file")
    parser.add_argument("--mode-file")
    parser.add_argument("--hup-file")
    parser.add_argument("--touch")
    parser.add_argument("--say")
    parser.add_argument("--notify", action="store_true")
    parser.add_argument("--chatter", type=float)
    parser.add_argument("--fork-child", action="store_true")
    return parser.parse_args()


class Health:
    """The ``/health`` answer, shared by the server threads."""

    def __init__(self, sick_file: str | None) -> None:
        self.sick_file = Path(sick_file) if sick_file else None
        self.remaining_failures = 0
        self.lock = threading.Lock()

    def status(self) -> int:
        with self.lock:
            if self.sick_file is not None and self.sick_file.exists():
                self.remaining_failures = int(self.sick_file.read_text().strip() or "0")
                self.sick_file.unlink()
            if self.remaining_failures > 0:
                self.remaining_failures -= 1
                return 500
            return 200


def serve(port: int, health: Health) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/ping":
                status = 200
            elif self.path == "/health":
                status = health.status()
            else:
                status = 404
            body = str(status).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # quiet: the tests read the service log for other lines

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def notify_ready() -> None:
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.send(b"STATUS=up\nREADY=1\n")


def main() -> int:
    args = parse_args()
    if args.hup_file:
        hup_file = Path(args.hup_file)

        def on_hup(signum: int, frame: FrameType | None) -> None:
            with open(hup_file, "a") as out:
                out.write(f"HUP {os.getpid()}\n")

        signal.signal(signal.SIGHUP, on_hup)
    if args.fork_child and os.fork() == 0:
        while True:
            time.sleep(3600)
    if args.mode_file and "broken" in Path(args.mode_file).read_text():
        print(f"broken mode in {args.mode_file}", file=sys.stderr, flush=True)
        return 1
    time.sleep(args.delay)
    if args.port is not None:
        serve(args.port, Health(args.sick_file))
    if args.touch:
        Path(args.touch).write_text(str(os.getpid()))
    if args.say:
        print(args.say, flush=True)
    if args.notify:
        notify_ready()
    while True:
        if args.chatter:
            print(f"chatter {time.time():.3f}", flush=True)
            time.sleep(args.chatter)
        else:
            time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
