"""signals_collector: gather signals into the graph (``python -m mind.signals_collector``).

Two sources of ``(:Signal)`` nodes:

* every ``SIGNALS_INTERVAL_S`` (5 s) it snapshots ws_api's ``/api/telemetry/counters`` into a
  ``telemetry`` signal linked ``-[:OBSERVED {ticks}]->`` to every engine;
* anyone may ``POST /signals`` ``{"name", "value", "source"?}`` on ``SIGNALS_PORT`` (8010),
  stored as an ``external`` signal.

``GET /signals/latest`` returns the newest signal (autonomy_orchestrator reads it), and
``GET /healthz`` answers 200. The supervisor gates on its TCP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import TypeGuard

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mind.graph_store import GraphStore, GraphUnavailable, wait_for_graph
from mind.runtime import bind_host, env_float, env_port, http_url, log, peer_host, run_async
from mind.serving import serve


class Collector:
    """The endpoints and the snapshot task, around one store (created per app).

    Args:
        store: the graph.
        counters_url: ws_api's ``/api/telemetry/counters``.
        interval_s: time between two telemetry snapshots.
    """

    def __init__(self, store: GraphStore, counters_url: str, interval_s: float) -> None:
        self.store = store
        self.counters_url = counters_url
        self.interval_s = interval_s

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.store.connect(env_float("GRAPH_CONNECT_TIMEOUT_S", 30.0))
        task = asyncio.get_running_loop().create_task(self._snapshot_forever())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.store.close()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/signals", self.post_signal, methods=["POST"]),
                Route("/signals/latest", self.latest),
                Route("/healthz", self.healthz),
            ],
            lifespan=self.lifespan,
        )

    async def post_signal(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        name, value, source = body.get("name"), body.get("value"), body.get("source", "http")
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            return _error(400, "name must be a string of 1 to 64 characters")
        if not _is_number(value):
            return _error(400, "value must be a finite number")
        if not isinstance(source, str) or not 0 < len(source) <= 64:
            return _error(400, "source must be a string of 1 to 64 characters")
        try:
            signal_id = await self.store.record_signal("external", name, float(value), source)
        except GraphUnavailable as exc:
            return _error(503, str(exc))
        log(f"signal {signal_id[:8]}: {name}={value} from {source}")
        return JSONResponse({"id": signal_id}, status_code=201)

    async def latest(self, _request: Request) -> JSONResponse:
        try:
            signal = await self.store.latest_signal()
        except GraphUnavailable as exc:
            return _error(503, str(exc))
        if signal is None:
            return _error(404, "no signal yet")
        return JSONResponse(signal)

    async def healthz(self, _request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def snapshot(self, client: httpx.AsyncClient) -> str:
        """Record one telemetry signal from ws_api's counters; return its id."""
        response = await client.get(self.counters_url)
        response.raise_for_status()
        counters = response.json()
        engines = {str(k): int(v) for k, v in counters["engines"].items()}
        total = sum(engines.values())
        signal_id = await self.store.record_signal(
            "telemetry", "engine_ticks_total", float(total), "ws_api", observed=engines
        )
        log(f"signal {signal_id[:8]}: engine_ticks_total={total}")
        return signal_id

    async def _snapshot_forever(self) -> None:
        failing = False
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                try:
                    await self.snapshot(client)
                except (httpx.HTTPError, GraphUnavailable, KeyError, ValueError) as exc:
                    if not failing:
                        log(f"signals_collector: no telemetry snapshot ({exc}); retrying")
                    failing = True
                else:
                    if failing:
                        log("signals_collector: telemetry snapshots again")
                    failing = False
                await asyncio.sleep(self.interval_s)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def main() -> int:
    """Serve on ``SIGNALS_PORT`` once the graph answers; snapshot ws_api on ``WS_PORT``."""
    port = env_port("SIGNALS_PORT", 8010)
    counters_url = http_url(peer_host("ws_api"), env_port("WS_PORT", 8000))
    counters_url += "/api/telemetry/counters"
    interval_s = env_float("SIGNALS_INTERVAL_S", 5.0)
    waited = run_async(lambda stop: wait_for_graph(stop, "signals_collector"))
    if waited is not None:
        return waited
    where = http_url(bind_host(), port)
    log(f"signals_collector: serving {where}, snapshots every {interval_s:g}s")
    collector = Collector(GraphStore.from_env(), counters_url, interval_s)
    return serve(collector.app(), port, "signals_collector")


if __name__ == "__main__":
    raise SystemExit(main())
