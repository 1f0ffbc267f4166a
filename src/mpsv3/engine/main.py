"""The supervisor's process: a lean interpreter that runs a compiled plan.

Why a process of its own: ``mpsv3 up`` validates the config (YAML, pydantic, the checks),
takes the lease and then keeps the supervisor as its parent (``platform/keeper.py``). The
supervisor itself starts fresh here, importing only the engine: it lives for months, so it
carries none of the command line's libraries. It reads the plan as JSON from an inherited
pipe and holds the lease through the keeper's inherited descriptor.

Not a command for people: ``mpsv3 up`` builds this argv.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mpsv3.errors import MpsvError
from mpsv3.plan import StackPlan, from_json


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mpsv3.engine")
    parser.add_argument("--plan-fd", type=int, required=True)
    parser.add_argument("--lease-fd", type=int, required=True)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--profile", action="append", default=[])
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def read_plan(fd: int) -> str:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read().decode("utf-8")


def without_tls_unless_needed(plan: StackPlan) -> None:
    """Keep ``ssl`` (OpenSSL, ~5 MiB for the life of the process) out unless a probe is https.

    Called before asyncio is imported: asyncio then runs without TLS support, which nothing
    else here needs. An https probe added later by ``reload`` says to restart the supervisor.
    """
    checks = [s.readiness.check for s in plan.services if s.readiness] + [s.liveness.check for s in plan.services if s.liveness]
    https = any(check.url.startswith("https:") for check in checks)
    if not https and plan.metrics_port is None and "ssl" not in sys.modules:  # prometheus_client imports ssl
        sys.modules["ssl"] = None  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> None:
    if sys.platform == "win32":  # only a keeper (Linux) starts this process
        raise SystemExit("mpsv3: python -m mpsv3.engine is started by mpsv3 up's keeper (Linux only)")
    args = parse(sys.argv[1:] if argv is None else argv)
    plan = from_json(read_plan(args.plan_fd))
    without_tls_unless_needed(plan)
    import asyncio

    from mpsv3.engine.console import Console
    from mpsv3.engine.supervisor import Supervisor
    from mpsv3.platform import SingletonLease

    lease = SingletonLease.inherited(plan.name, args.lease_fd)
    console = None if args.quiet else Console(names=[s.id for s in plan.services])
    try:
        supervisor = Supervisor(
            plan, only=args.only, profiles=args.profile, console=console, verbose=args.verbose, lease=lease
        )
        code = asyncio.run(supervisor.run())
    except MpsvError as exc:
        sys.stderr.write(f"mpsv3: {exc}\n")
        code = exc.exit_code
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        sys.stderr.write(f"mpsv3: {exc.strerror or exc}{where}\n")
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        if console is not None:
            console.close()
        lease.release()
    sys.exit(code)
