"""autonomy_orchestrator: decide from the latest signal (``python -m mind.autonomy_orchestrator``).

Once it has read the graph (how many signals and decisions exist), it tells the supervisor
it is ready with ``READY=1`` on ``$NOTIFY_SOCKET`` (readiness ``notify`` in services.yaml).
Then every ``ORCHESTRATOR_INTERVAL_S`` (5 s) it takes the newest signal from signals_collector
(``SIGNALS_PORT``), reads from the graph how the stimuli of the last
``ORCHESTRATOR_WINDOW_S`` (30 s) spread over the engines, and records a
``(:Decision)-[:BASED_ON]->(:Signal)``: ``stimulate`` the most neglected engine (through
ws_api on ``WS_PORT``) when the spread is uneven, or ``hold``.
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx

from mind.graph_store import GraphStore, GraphUnavailable
from mind.runtime import (
    env_float,
    env_port,
    http_url,
    log,
    notify_ready,
    peer_host,
    run_async,
    sleep_or_stop,
    unless_stopped,
)

SOURCE = "autonomy_orchestrator"
#: An engine this many stimuli behind the most stimulated one gets a stimulus.
SPREAD_THRESHOLD = 2


def decide(stimuli: dict[str, int]) -> tuple[str, str, str]:
    """Pure policy: (action, engine, reason) from every engine's recent stimulus count."""
    if not stimuli:
        return "hold", "", "no engines in the graph yet"
    neglected = min(stimuli, key=lambda name: (stimuli[name], name))
    spread = max(stimuli.values()) - stimuli[neglected]
    if spread >= SPREAD_THRESHOLD:
        return "stimulate", neglected, f"{neglected} got {spread} fewer stimuli than the busiest"
    return "hold", neglected, f"stimuli spread evenly (within {spread})"


class Orchestrator:
    """One decision per round; owned by the program's one task.

    Args:
        store: the graph.
        client: HTTP client for signals_collector and ws_api.
        signals_url: signals_collector's base URL.
        api_url: ws_api's ``/api`` base URL.
        window_s: how far back the stimuli count.
    """

    def __init__(
        self,
        store: GraphStore,
        client: httpx.AsyncClient,
        signals_url: str,
        api_url: str,
        window_s: float,
    ) -> None:
        self.store = store
        self.client = client
        self.signals_url = signals_url
        self.api_url = api_url
        self.window_s = window_s

    async def round(self) -> str | None:
        """Decide once; return the decision's id (None when there is no signal yet)."""
        response = await self.client.get(f"{self.signals_url}/signals/latest")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        signal = response.json()
        stimuli = await self.store.stimuli_per_engine(time.time() - self.window_s)
        action, engine, reason = decide(stimuli)
        decision_id = await self.store.record_decision(str(signal["id"]), action, engine, reason)
        log(f"decision {decision_id[:8]}: {action} {engine} ({reason}; signal {signal['id'][:8]})")
        if action == "stimulate":
            stimulus = await self.client.post(
                f"{self.api_url}/stimulus",
                json={"engine": engine, "intensity": 0.5, "source": SOURCE},
            )
            stimulus.raise_for_status()
        return decision_id


async def orchestrate(stop: asyncio.Event) -> int:
    """Read the graph, notify readiness, then decide every interval until ``stop``."""
    signals_url = http_url(peer_host("signals_collector"), env_port("SIGNALS_PORT", 8010))
    api_url = http_url(peer_host("ws_api"), env_port("WS_PORT", 8000)) + "/api"
    interval_s = env_float("ORCHESTRATOR_INTERVAL_S", 5.0)
    window_s = env_float("ORCHESTRATOR_WINDOW_S", 30.0)
    store = GraphStore.from_env()
    try:
        try:
            counts = await unless_stopped(
                stop, _read_graph(store, env_float("GRAPH_CONNECT_TIMEOUT_S", 30.0))
            )
        except GraphUnavailable as exc:
            log(f"autonomy_orchestrator: {exc}")
            return 1
        if counts is None:
            return 0
        status = f"graph has {counts[0]} signals and {counts[1]} decisions"
        log(f"autonomy_orchestrator: {status}; deciding every {interval_s:g}s")
        if not notify_ready(status) and "NOTIFY_SOCKET" not in os.environ:
            log("autonomy_orchestrator: readiness not sent (no NOTIFY_SOCKET)")
        async with httpx.AsyncClient(timeout=5.0) as client:
            orchestrator = Orchestrator(store, client, signals_url, api_url, window_s)
            await _decide_forever(orchestrator, stop, interval_s)
    finally:
        await store.close()
    log("autonomy_orchestrator: stopped")
    return 0


async def _read_graph(store: GraphStore, timeout_s: float) -> tuple[int, int]:
    await store.connect(timeout_s)
    return await store.count("Signal"), await store.count("Decision")


async def _decide_forever(
    orchestrator: Orchestrator, stop: asyncio.Event, interval_s: float
) -> None:
    failing = False
    while not await sleep_or_stop(stop, interval_s):
        try:
            await unless_stopped(stop, orchestrator.round())
        except (httpx.HTTPError, GraphUnavailable, KeyError, ValueError) as exc:
            if not failing:
                log(f"autonomy_orchestrator: no decision this round ({exc}); retrying")
            failing = True
            continue
        if failing:
            log("autonomy_orchestrator: deciding again")
        failing = False


def main() -> int:
    return run_async(orchestrate)


if __name__ == "__main__":
    raise SystemExit(main())
