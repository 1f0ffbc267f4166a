"""stimulus_injection: inject stimuli into the engines through ws_api, every few seconds.

Run as ``python -m mind.stimulus_injection``. Every ``STIMULUS_INTERVAL_S`` (3 s) it POSTs
``/api/stimulus`` to ws_api on ``WS_PORT``, visiting the engines in turn with a varying
intensity; ws_api records each one in the graph as ``(:Stimulus)-[:TRIGGERED]->(:Engine)``.
When ws_api is away (restarting after a code change, say) it says so once and keeps trying.

Its readiness gate in services.yaml is an ``exec`` probe asking ws_api whether a stimulus from
this source arrived in the last seconds: ``GET /api/stimulus/stats?source=stimulus_injection``.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import httpx

from mind.engines.consciousness_engine_v2 import ENGINE_NAMES
from mind.runtime import (
    env_float,
    env_port,
    http_url,
    log,
    peer_host,
    run_async,
    sleep_or_stop,
    unless_stopped,
)

SOURCE = "stimulus_injection"


async def inject(stop: asyncio.Event) -> int:
    """POST stimuli until ``stop`` is set."""
    url = http_url(peer_host("ws_api"), env_port("WS_PORT", 8000)) + "/api/stimulus"
    interval_s = env_float("STIMULUS_INTERVAL_S", 3.0)
    rng = random.Random()
    engines = itertools.cycle(ENGINE_NAMES)
    log(f"stimulus_injection: injecting into {url} every {interval_s:g}s")
    reachable = True
    async with httpx.AsyncClient(timeout=5.0) as client:
        while not stop.is_set():
            body = {
                "engine": next(engines),
                "intensity": round(rng.uniform(0.1, 0.9), 2),
                "source": SOURCE,
            }
            try:
                answer = await unless_stopped(stop, _post(client, url, body))
            except (httpx.HTTPError, ValueError) as exc:
                if reachable:
                    log(f"stimulus_injection: ws_api did not take a stimulus ({exc}); retrying")
                reachable = False
            else:
                if answer is None:  # stopped while posting
                    break
                if not reachable:
                    log("stimulus_injection: ws_api takes stimuli again")
                reachable = True
                log(f"stimulus {answer['id'][:8]} -> {answer['engine']} ({body['intensity']})")
            await sleep_or_stop(stop, interval_s)
    log("stimulus_injection: stopped")
    return 0


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> dict[str, str]:
    response = await client.post(url, json=body)
    response.raise_for_status()
    answer: dict[str, str] = response.json()
    return answer


def main() -> int:
    return run_async(inject)


if __name__ == "__main__":
    raise SystemExit(main())
