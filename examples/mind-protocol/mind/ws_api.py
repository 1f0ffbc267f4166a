"""ws_api: the HTTP + WebSocket API that runs the eight engines (``python -m mind.ws_api``).

Why it exists: it is the heart of the demo stack and the service the supervisor's hardest
rules are about. It needs the graph (``requires: [falkordb]``), answers ``/api/ping`` as soon
as it serves (the readiness gate), reports ``/api/health`` 503 when engines stop ticking or
the graph stops taking their counters (the liveness probe), and is restarted by mpsv3 when
its code or the engines' code changes. ``WS_API_FAIL_ON_START=1`` makes it exit 1 at once,
which the crash-recovery acceptance test uses.

Endpoints (all on ``BIND_HOST``:``WS_PORT``, 127.0.0.1 by default):

* ``GET /api/ping``: ``{"pong": true, "pid", "engine_version", "started_at"}``
* ``GET /api/health``: 200 or 503, ``{"status", "engines_ticking", "graph", ...}``
* ``GET /api/telemetry/counters``: every engine's tick count
* ``POST /api/stimulus``: ``{"engine"?, "intensity"?, "source"?}`` -> 202 ``{"id", "engine"}``
* ``GET /api/stimulus/stats?source=S&within_s=N``: count and recency of a source's stimuli
* ``WS /ws``: a ``snapshot`` message, then one ``tick`` message per engine tick
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator
from typing import TypeGuard

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from mind.engines.consciousness_engine_v2 import ENGINE_NAMES, ENGINE_VERSION, EngineSet, Tick
from mind.graph_store import GraphStore, GraphUnavailable, wait_for_graph
from mind.runtime import bind_host, env_float, env_port, http_url, log, run_async
from mind.serving import serve

#: Ticks a slow WebSocket client may fall behind before the oldest are dropped.
FEED_BACKLOG = 256


class TickHub:
    """Fans engine ticks out to WebSocket subscribers; owned by the app, used on its loop only.

    A slow subscriber loses its oldest ticks rather than slowing the engines down.
    """

    def __init__(self, backlog: int = FEED_BACKLOG) -> None:
        self.backlog = backlog
        self._queues: set[asyncio.Queue[Tick | None]] = set()

    def subscribe(self) -> asyncio.Queue[Tick | None]:
        queue: asyncio.Queue[Tick | None] = asyncio.Queue(self.backlog)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Tick | None]) -> None:
        self._queues.discard(queue)

    def publish(self, tick: Tick | None) -> None:
        """Queue ``tick`` for every subscriber; ``None`` tells them the feed is closing."""
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(tick)

    @property
    def subscribers(self) -> int:
        return len(self._queues)


class MindApi:
    """The endpoints, bound to one store, one hub and one engine set (created per app)."""

    def __init__(self, store: GraphStore, period_s: float, persist_every_s: float) -> None:
        self.store = store
        self.hub = TickHub()
        self.engines = EngineSet(store, self.hub.publish, period_s, persist_every_s)
        self.started_at = time.time()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.store.connect(env_float("GRAPH_CONNECT_TIMEOUT_S", 30.0))
        await self.engines.start()
        try:
            yield
        finally:
            self.hub.publish(None)
            await self.engines.stop()
            await self.store.close()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/ping", self.ping),
                Route("/api/health", self.health),
                Route("/api/telemetry/counters", self.counters),
                Route("/api/stimulus", self.stimulus, methods=["POST"]),
                Route("/api/stimulus/stats", self.stimulus_stats),
                WebSocketRoute("/ws", self.feed),
            ],
            lifespan=self.lifespan,
        )

    async def ping(self, _request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "pong": True,
                "pid": os.getpid(),
                "engine_version": ENGINE_VERSION,
                "started_at": self.started_at,
            }
        )

    async def health(self, _request: Request) -> JSONResponse:
        now = time.monotonic()
        ticking = self.engines.ticking(now)
        graph_ok = self.engines.graph_fresh(now)
        healthy = ticking == len(ENGINE_NAMES) and graph_ok
        body = {
            "status": "ok" if healthy else "unhealthy",
            "engines": len(ENGINE_NAMES),
            "engines_ticking": ticking,
            "graph": "ok" if graph_ok else "stale",
            "graph_module": self.store.graph_module,
            "engine_version": ENGINE_VERSION,
            "subscribers": self.hub.subscribers,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def counters(self, _request: Request) -> JSONResponse:
        counters = self.engines.counters()
        return JSONResponse(
            {
                "engines": counters,
                "total": sum(counters.values()),
                "stimuli": self.engines.stimuli,
                "engine_version": ENGINE_VERSION,
                "at": time.time(),
            }
        )

    async def stimulus(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        engine = body.get("engine") or self._calmest_engine()
        intensity = body.get("intensity", 0.3)
        source = body.get("source", "api")
        if engine not in self.engines.engines:
            return _error(404, f"no engine {engine!r}; engines: {', '.join(ENGINE_NAMES)}")
        if not _is_fraction(intensity):
            return _error(400, "intensity must be a number from 0 to 1")
        if not isinstance(source, str) or not 0 < len(source) <= 64:
            return _error(400, "source must be a string of 1 to 64 characters")
        try:
            stimulus_id = await self.engines.stimulate(engine, float(intensity), source)
        except GraphUnavailable as exc:
            return _error(503, str(exc))
        log(f"stimulus {stimulus_id[:8]} from {source} -> {engine} ({float(intensity):.2f})")
        return JSONResponse({"id": stimulus_id, "engine": engine}, status_code=202)

    async def stimulus_stats(self, request: Request) -> JSONResponse:
        source = request.query_params.get("source", "api")
        try:
            within_s = float(request.query_params.get("within_s", "10"))
        except ValueError:
            return _error(400, "within_s must be a number")
        try:
            count, last_at = await self.store.stimulus_stats(source)
        except GraphUnavailable as exc:
            return _error(503, str(exc))
        recent = last_at is not None and time.time() - last_at <= within_s
        return JSONResponse(
            {"source": source, "count": count, "last_at": last_at, "recent": recent}
        )

    async def feed(self, websocket: WebSocket) -> None:
        await websocket.accept()
        queue = self.hub.subscribe()
        try:
            await websocket.send_json(self._snapshot())
            sender = asyncio.ensure_future(_send_ticks(websocket, queue))
            receiver = asyncio.ensure_future(_receive_until_closed(websocket))
            _, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            self.hub.unsubscribe(queue)

    def _snapshot(self) -> dict[str, object]:
        return {
            "type": "snapshot",
            "engine_version": ENGINE_VERSION,
            "engines": {
                e.name: {"ticks": e.ticks, "energy": round(e.energy, 4)}
                for e in self.engines.engines.values()
            },
        }

    def _calmest_engine(self) -> str:
        return min(self.engines.engines.values(), key=lambda e: e.energy).name


async def _send_ticks(websocket: WebSocket, queue: asyncio.Queue[Tick | None]) -> None:
    """Forward ticks until the feed closes (then close the socket as "going away")."""
    try:
        while True:
            tick = await queue.get()
            if tick is None:
                await websocket.close(code=1001)
                return
            await websocket.send_json(tick.as_json())
    except (WebSocketDisconnect, RuntimeError, OSError):
        return


async def _receive_until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until the client disconnects."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        return


def _is_fraction(value: object) -> TypeGuard[float]:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(store: GraphStore, period_s: float = 0.5, persist_every_s: float = 1.0) -> Starlette:
    """The ws_api application over ``store``; engines start with the app's lifespan."""
    return MindApi(store, period_s, persist_every_s).app()


def main() -> int:
    """Serve on ``WS_PORT`` once the graph answers; ``ENGINE_TICK_S`` sets the tick period."""
    if os.environ.get("WS_API_FAIL_ON_START") == "1":
        log("ws_api: WS_API_FAIL_ON_START=1: failing on purpose, exit 1")
        return 1
    port = env_port("WS_PORT", 8000)
    period_s = env_float("ENGINE_TICK_S", 0.5)
    persist_s = env_float("ENGINE_PERSIST_S", 1.0)
    waited = run_async(lambda stop: wait_for_graph(stop, "ws_api"))
    if waited is not None:
        return waited
    log(f"ws_api: serving {http_url(bind_host(), port)} (engines tick every {period_s:g}s)")
    return serve(create_app(GraphStore.from_env(), period_s, persist_s), port, "ws_api")


if __name__ == "__main__":
    raise SystemExit(main())
