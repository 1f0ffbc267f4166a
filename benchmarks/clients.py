"""The client-command workload: how long ``status``, ``logs`` and ``restart`` take to answer.

What an operator, a ``status --watch`` loop or a script pays per command: from starting the
client process to its exit, against a running stack of ``Settings.client_services`` services
that each printed a hundred lines. Every peer is asked the same three things through its own
client (``mpsv3 status`` / ``logs ID -n 5`` / ``restart ID``; ``supervisorctl status`` /
``tail`` / ``restart``; ``circusctl status`` / ``restart``; ``pm2 jlist`` / ``logs --nostream``
/ ``restart``); after a restart the benchmark waits for the replacement before the next
command, so each command meets a steady stack. The floors are the bare interpreters the
clients run on (``python -c pass``, ``node -e 0``): what any client in that language pays
before its first line of code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from benchmarks.adapters.base import CLIENT_COMMANDS
from benchmarks.context import Context
from benchmarks.procs import ProcessScanner

#: A client that takes longer than this is recorded as failed (and the run goes on).
CLIENT_TIMEOUT_S = 60.0


def _timed(argv: list[str], env: dict[str, str] | None) -> tuple[float, subprocess.CompletedProcess[str]]:
    began = time.monotonic()
    done = subprocess.run(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    return time.monotonic() - began, done


def client_floors(ctx: Context) -> None:
    """The bare interpreters' start and exit, timed like the commands."""
    floors = {"python": [sys.executable, "-c", "pass"]}
    node = shutil.which("node")
    if node is not None and "pm2" in ctx.peers:
        floors["node"] = [node, "-e", "0"]
    for name, argv in floors.items():
        ctx.progress(f"client floor {name} x{ctx.settings.client_reps}")
        for rep in range(ctx.settings.client_reps):
            wall, done = _timed(argv, None)
            ctx.record("client", "floor", command=name, rep=rep, wall_s=wall)
            if done.returncode != 0:
                ctx.samples[-1]["error"] = f"exit {done.returncode}"


def client_commands(ctx: Context, peer: str) -> None:
    """Each of ``CLIENT_COMMANDS`` ``client_reps`` times against a running stack of ``peer``."""
    if not ctx.supports(peer, "client"):
        return
    count = ctx.settings.client_services
    reps = ctx.settings.client_reps
    ctx.progress(f"client commands {peer} x{reps}")
    with ctx.launched(peer, ctx.talkers(count)) as (adapter, scanner):
        if scanner.wait_count(count, 60.0, give_up=adapter.stopped) is None:
            ctx.record("client", peer, error=f"not all started: {adapter.console_tail()}")
            return
        time.sleep(2 * ctx.settings.settle_s)
        env = adapter.client_env()
        for command in CLIENT_COMMANDS:
            reason = adapter.client_unsupported.get(command)
            if reason is not None:
                ctx.na.append({"workload": f"client_{command}", "peer": peer, "reason": reason})
                continue
            failures = 0
            for rep in range(reps):
                service = f"s{rep % count}"
                argv = adapter.client_command(command, service)
                if argv is None:
                    break
                before = scanner.by_service().get(service, [])
                wall, done = _timed(argv, env)
                sample = ctx.record("client", peer, command=command, rep=rep, wall_s=wall)
                if done.returncode != 0:
                    sample["error"] = f"exit {done.returncode}: {done.stderr.strip()[-300:]}"
                    failures += 1
                    if failures >= 3:
                        break
                if command == "restart" and len(before) == 1:
                    _wait_replaced(scanner, service, before[0])


def _wait_replaced(scanner: ProcessScanner, service: str, old_pid: int) -> None:
    """Wait (bounded) until ``service`` runs one process again, not ``old_pid``."""
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        pids = scanner.by_service().get(service, [])
        if len(pids) == 1 and pids[0] != old_pid:
            time.sleep(0.1)  # let the supervisor finish its bookkeeping
            return
        time.sleep(0.005)
