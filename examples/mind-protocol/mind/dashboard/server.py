"""dashboard: serve the live engine page (``python -m mind.dashboard.server``).

Why so small: the page does the work. It opens a WebSocket to this server's ``/ws``, which
relays ws_api's feed (``WS_API_HOST``:``WS_PORT``), so the browser needs to reach the dashboard
only: the same page works locally, behind a published container port and behind a Kubernetes
Service. This server hands out the static files, the feed's path (``/config.json``), the relay
and ``/healthz`` for the supervisor's probes. Files are read on every request; mpsv3 restarts
the dashboard when they change anyway (it watches this folder).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from mind.runtime import bind_host, env_port, http_url, log, peer_host
from mind.serving import serve

STATIC = Path(__file__).resolve().parent / "static"
#: How long the relay waits for ws_api to accept its connection.
UPSTREAM_OPEN_TIMEOUT_S = 5.0
#: Close code when ws_api cannot be reached ("try again later"): the page reconnects.
CLOSE_UPSTREAM_DOWN = 1013


def create_app(feed_url: str) -> Starlette:
    """The dashboard app; ``/ws`` relays the feed at ``feed_url`` (ws_api's ``/ws``)."""

    async def index(_request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def config(_request: Request) -> JSONResponse:
        return JSONResponse({"ws_path": "/ws", "feed": feed_url})

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def relay(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            async with websockets.connect(feed_url, open_timeout=UPSTREAM_OPEN_TIMEOUT_S) as feed:
                await _pump(websocket, feed)
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await websocket.close(code=CLOSE_UPSTREAM_DOWN)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/config.json", config),
            Route("/healthz", healthz),
            WebSocketRoute("/ws", relay),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ]
    )


async def _pump(websocket: WebSocket, feed: websockets.ClientConnection) -> None:
    """Forward the feed's messages to the browser until either side closes."""

    async def downstream() -> None:
        async for message in feed:
            text = message if isinstance(message, str) else message.decode()
            await websocket.send_text(text)
        await websocket.close(code=1001)  # ws_api went away (a restart): the page reconnects

    async def upstream_closed() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = {asyncio.ensure_future(downstream()), asyncio.ensure_future(upstream_closed())}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        error = task.exception()
        if error is not None and not isinstance(
            error, (WebSocketDisconnect, RuntimeError, websockets.WebSocketException)
        ):
            raise error


def main() -> int:
    """Serve on ``DASHBOARD_PORT`` (3000) a page relaying ws_api's feed (``WS_PORT``, 8000)."""
    port = env_port("DASHBOARD_PORT", 3000)
    feed = http_url(peer_host("ws_api"), env_port("WS_PORT", 8000)).replace("http", "ws", 1)
    feed += "/ws"
    log(f"dashboard: serving {http_url(bind_host(), port)} (relaying the feed {feed})")
    return serve(create_app(feed), port, "dashboard")


if __name__ == "__main__":
    raise SystemExit(main())
