"""dashboard: serve the live engine page (``python -m mind.dashboard.server``).

Why so small: the page does the work. It connects straight to ws_api's WebSocket feed from the
browser, so this server only hands out the static files, the feed's address
(``/config.json``, built from ``WS_PORT``, so a second copy of the stack points at its own
API) and ``/healthz`` for the supervisor's probes. Files are read on every request; mpsv3
restarts the dashboard when they change anyway (it watches this folder).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mind.runtime import LOOPBACK, env_port, log
from mind.serving import serve

STATIC = Path(__file__).resolve().parent / "static"


def create_app(ws_port: int) -> Starlette:
    """The dashboard app; the page's feed is ``ws://127.0.0.1:<ws_port>/ws``."""

    async def index(_request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def config(_request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "ws_url": f"ws://{LOOPBACK}:{ws_port}/ws",
                "api_url": f"http://{LOOPBACK}:{ws_port}/api",
            }
        )

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/config.json", config),
            Route("/healthz", healthz),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ]
    )


def main() -> int:
    """Serve on ``DASHBOARD_PORT`` (3000) a page reading ws_api on ``WS_PORT`` (8000)."""
    port = env_port("DASHBOARD_PORT", 3000)
    ws_port = env_port("WS_PORT", 8000)
    log(f"dashboard: serving http://{LOOPBACK}:{port} (feed ws://{LOOPBACK}:{ws_port}/ws)")
    return serve(create_app(ws_port), port, "dashboard")


if __name__ == "__main__":
    raise SystemExit(main())
