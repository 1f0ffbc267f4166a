"""How the HTTP programs (ws_api, dashboard, signals_collector) serve: uvicorn on ``BIND_HOST``.

Why apart from ``mind.runtime``: only these three need uvicorn; the database launcher and the
workers start faster without importing it.
"""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from mind.runtime import STOP_SIGNALS, bind_host, env_str, log


def serve(app: ASGIApp, port: int, name: str) -> int:
    """Serve an ASGI app on ``BIND_HOST`` (loopback by default) with uvicorn until a stop signal; return the exit code.

    uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal against
    the handler that was installed before it; a recording handler is installed first, so the
    process exits 0 instead of dying by the signal it was asked to stop with.

    Args:
        app: the Starlette application (its lifespan starts and stops background work).
        port: the port to bind.
        name: the program's name, for the startup-failure line.

    Returns:
        0 after a clean stop, 1 when the server or the application could not start.
    """
    received: list[int] = []
    host = bind_host()

    def remember(sig: int, _frame: FrameType | None) -> None:
        received.append(sig)

    for sig in STOP_SIGNALS:
        signal.signal(sig, remember)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=env_str("MIND_UVICORN_LOG_LEVEL", "warning"),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 3 when the app or the socket fails to start
        log(f"{name}: failed to start on {host}:{port} (uvicorn exit {exc.code})")
        return 1
    if not server.started:
        log(f"{name}: failed to start on {host}:{port}")
        return 1
    log(f"{name}: stopped")
    return 0
