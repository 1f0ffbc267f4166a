"""Prometheus metrics of the services, derived from the event bus.

Why from events: the bus already carries every state transition, restart decision and
readiness time, so the exporter is one more subscriber and the supervisor needs no metric
calls of its own. Each exporter has its own ``CollectorRegistry`` (never the process-global
one), so two supervisors in one process (the tests) do not share counters.

Threads: ``on_event`` runs on the supervisor's event-loop thread (the bus calls subscribers
synchronously); the HTTP endpoint is prometheus_client's server thread. prometheus_client's
metric objects lock internally, so the two need no lock of ours.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from mpsv3.engine.events import Event, EventBus
from mpsv3.errors import MpsvError

__all__ = ["LIVE_STATES", "RESTART_REASONS", "MetricsExporter"]

#: States in which the service has a live process (``mpsv3_service_up`` = 1).
LIVE_STATES = frozenset({"starting", "ready", "unhealthy"})
#: The ``reason`` label values of ``mpsv3_service_restarts_total`` (each starts at 0).
RESTART_REASONS = ("crash", "reload", "liveness", "manual")
#: Time-to-ready buckets: from a local process that is up at once to a slow database.
READY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class MetricsExporter:
    """Keeps the service metrics up to date from the bus and serves them over HTTP.

    Args:
        bus: the supervisor's event bus; the exporter subscribes at once.
        service_ids: the configured services (their series exist from the start, at 0).
    """

    def __init__(self, bus: EventBus, service_ids: Sequence[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._up = Gauge(
            "mpsv3_service_up",
            "1 while the service has a live process (starting, ready or unhealthy).",
            ["service"],
            registry=self.registry,
        )
        self._ready = Gauge(
            "mpsv3_service_ready",
            "1 while the service is ready.",
            ["service"],
            registry=self.registry,
        )
        self._quarantined = Gauge(
            "mpsv3_service_quarantined",
            "1 while the service is quarantined (down until released).",
            ["service"],
            registry=self.registry,
        )
        self._restarts = Counter(
            "mpsv3_service_restarts",
            "Restarts of the service by reason: crash, reload, liveness, manual.",
            ["service", "reason"],
            registry=self.registry,
        )
        self._time_to_ready = Histogram(
            "mpsv3_service_time_to_ready_seconds",
            "Seconds from spawn to a passed readiness gate.",
            ["service"],
            buckets=READY_BUCKETS,
            registry=self.registry,
        )
        self._services: list[str] = []
        self._reasons: dict[str, set[str]] = {}  # reasons seen per service, to remove them all
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.set_services(service_ids)
        self._unsubscribe = bus.subscribe(self.on_event)

    @property
    def port(self) -> int | None:
        """The port actually bound (useful with port 0), or None when not serving."""
        return None if self._server is None else int(self._server.server_address[1])

    def set_services(self, ids: Sequence[str]) -> None:
        """Follow a reload: series of removed services go, new ones appear at 0."""
        for service in self._services:
            if service not in ids:
                self._remove(service)
        for service in ids:
            if service not in self._services:
                self._up.labels(service).set(0)
                self._ready.labels(service).set(0)
                self._quarantined.labels(service).set(0)
                for reason in RESTART_REASONS:
                    self._restarts.labels(service, reason)
                self._time_to_ready.labels(service)
        self._services = list(ids)

    def on_event(self, event: Event) -> None:
        """The bus subscriber: one event in, the matching metric updated."""
        service = event.get("service")
        if not isinstance(service, str):
            return
        kind = event.get("event")
        if kind == "state":
            self._on_state(service, event.get("to"))
        elif kind == "restarting":
            reason = str(event.get("reason") or "manual")
            self._reasons.setdefault(service, set(RESTART_REASONS)).add(reason)
            self._restarts.labels(service, reason).inc()
        elif kind == "ready":
            after_ms = _number(event.get("after_ms"))
            if after_ms is not None:
                self._time_to_ready.labels(service).observe(after_ms / 1000.0)

    def start(self, host: str, port: int) -> None:
        """Serve ``/metrics`` (any path, in fact) on host:port from a daemon thread.

        Raises:
            MpsvError: the address cannot be bound.
        """
        if self._server is not None:
            raise MpsvError("metrics: the exporter is already serving")
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MpsvError(
                f"metrics: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None

    def stop(self) -> None:
        """Stop serving and stop listening to the bus; idempotent.

        Blocks up to the HTTP server's poll interval (0.5 s): from the event loop, call it
        with ``asyncio.to_thread``.
        """
        self._unsubscribe()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _on_state(self, service: str, state: Any) -> None:
        self._up.labels(service).set(1 if state in LIVE_STATES else 0)
        self._ready.labels(service).set(1 if state == "ready" else 0)
        self._quarantined.labels(service).set(1 if state == "quarantined" else 0)

    def _remove(self, service: str) -> None:
        for gauge in (self._up, self._ready, self._quarantined):
            gauge.remove(service)
        for reason in self._reasons.pop(service, set(RESTART_REASONS)):
            self._restarts.remove(service, reason)
        self._time_to_ready.remove(service)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
