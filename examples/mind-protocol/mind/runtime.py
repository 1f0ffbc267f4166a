"""What every demo program shares: its settings from the environment, its log, its stop signal.

Why one module: the seven programs must behave alike under a supervisor. Each reads its
ports, folders and addresses from environment variables (so a second copy of the stack runs on
other ports, and the exported stack runs in containers that reach each other by name), logs one flushed line per notable action to stdout (the supervisor prefixes the
service id), and stops promptly with exit code 0 on SIGTERM, SIGINT or (Windows) SIGBREAK.
Nothing here keeps state between calls; each program owns its own event loop. The HTTP
programs' server lives apart, in ``mind.serving``, so that the launcher stays light.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

#: Signals that ask a program to stop cleanly. SIGBREAK is what a Windows supervisor sends.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT) + (
    (signal.SIGBREAK,) if hasattr(signal, "SIGBREAK") else ()
)

LOOPBACK = "127.0.0.1"

T = TypeVar("T")


def log(message: str) -> None:
    """Print one line to stdout at once (a supervisor reads it through a pipe)."""
    print(message, flush=True)


def env_str(name: str, default: str) -> str:
    """The variable's value, or ``default`` when it is unset or empty."""
    return os.environ.get(name) or default


def env_float(name: str, default: float) -> float:
    """A positive number of seconds (or other quantity) from the environment."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SystemExit(f"{name}={raw!r} must be greater than 0")
    return value


def env_port(name: str, default: int) -> int:
    """A TCP port from the environment; a bad value stops the program with one clear line."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise SystemExit(f"{name}={raw!r} is out of range 1-65535")
    return port


def bind_host() -> str:
    """The address a server binds: ``BIND_HOST``, loopback by default.

    Locally every service shares 127.0.0.1; in a container (``mpsv3 export``) the stack's
    ``export.env`` sets ``0.0.0.0`` so that peers and probes reach the service's own address.
    """
    return env_str("BIND_HOST", LOOPBACK)


def peer_host(service_id: str) -> str:
    """The address of another service: ``<ID>_HOST`` (``WS_API_HOST`` for ws_api), loopback by default.

    ``mpsv3 export`` sets each ``<ID>_HOST`` to the service's name in the target (a Compose
    service, a Kubernetes Service), so the same program finds its peers there.
    """
    return env_str(f"{service_id.upper()}_HOST", LOOPBACK)


def http_url(host: str, port: int) -> str:
    """``http://host:port`` (an IPv6 literal in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def state_dir() -> Path:
    """Where the stack keeps its data: ``MIND_STATE_DIR`` (set by services.yaml), created."""
    path = Path(env_str("MIND_STATE_DIR", env_str("MPSV3_STATE_DIR", ".mind-state")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_async(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)`` on a new event loop; a stop signal sets ``stop``.

    Args:
        main: the program; it must return soon after ``stop`` is set.

    Returns:
        What ``main`` returned.
    """

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
                signal.signal(sig, lambda _sig, _frame: loop.call_soon_threadsafe(stop.set))
        return await main(stop)

    return asyncio.run(runner())


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless ``stop`` is set first; return whether it was set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


async def unless_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """Await ``work``, or cancel it when ``stop`` is set first (then return None)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task.result()


def notify_ready(status: str) -> bool:
    """Send ``READY=1`` on ``$NOTIFY_SOCKET`` (the systemd protocol mpsv3 speaks).

    Args:
        status: a human line sent along as ``STATUS=``.

    Returns:
        Whether a notification was sent (False when none was asked for, or it failed).
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not hasattr(socket, "AF_UNIX"):
        return False
    if address.startswith("@"):  # Linux abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(f"READY=1\nSTATUS={status}".encode())
    except OSError as exc:
        log(f"cannot notify readiness on {os.environ['NOTIFY_SOCKET']}: {exc}")
        return False
    return True
