"""The Prometheus endpoint, fed by a real EventBus and scraped over real HTTP."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mpsv3.engine.events import EventBus
from mpsv3.engine.metrics import RESTART_REASONS, MetricsExporter
from mpsv3.errors import MpsvError

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample as ``(name, sorted labels) -> value``, via prometheus_client's parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(port: int) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[EventBus]:
    events = EventBus(tmp_path / "events.jsonl")
    yield events
    events.close()


def test_metrics_follow_the_events(bus: EventBus, port: int) -> None:
    exporter = MetricsExporter(bus, ["db", "api"])
    exporter.start("127.0.0.1", port)
    try:
        assert exporter.port == port
        before = scrape(port)
        for service in ("db", "api"):
            assert value(before, "mpsv3_service_up", service=service) == 0
            assert value(before, "mpsv3_service_ready", service=service) == 0
            assert value(before, "mpsv3_service_quarantined", service=service) == 0
            for reason in RESTART_REASONS:
                assert (
                    value(before, "mpsv3_service_restarts_total", service=service, reason=reason)
                    == 0
                )
        assert value(before, "mpsv3_service_time_to_ready_seconds_count", service="db") == 0

        bus.emit("state", "db", **{"from": "pending", "to": "starting", "reason": None})
        starting = scrape(port)
        assert value(starting, "mpsv3_service_up", service="db") == 1
        assert value(starting, "mpsv3_service_ready", service="db") == 0

        bus.emit("ready", "db", after_ms=750)
        bus.emit("state", "db", **{"from": "starting", "to": "ready", "reason": None})
        bus.emit("restarting", "api", reason="crash")
        bus.emit("restarting", "api", reason="crash")
        bus.emit("restarting", "api", reason="liveness")
        bus.emit("restarting", "db", reason="manual")
        bus.emit(
            "state", "api", **{"from": "backoff", "to": "quarantined", "reason": "10 failures"}
        )
        after = scrape(port)
    finally:
        exporter.stop()

    assert value(after, "mpsv3_service_up", service="db") == 1
    assert value(after, "mpsv3_service_ready", service="db") == 1
    assert value(after, "mpsv3_service_up", service="api") == 0
    assert value(after, "mpsv3_service_quarantined", service="api") == 1
    assert value(after, "mpsv3_service_restarts_total", service="api", reason="crash") == 2
    assert value(after, "mpsv3_service_restarts_total", service="api", reason="liveness") == 1
    assert value(after, "mpsv3_service_restarts_total", service="api", reason="reload") == 0
    assert value(after, "mpsv3_service_restarts_total", service="db", reason="manual") == 1
    assert value(after, "mpsv3_service_time_to_ready_seconds_count", service="db") == 1
    assert value(after, "mpsv3_service_time_to_ready_seconds_sum", service="db") == pytest.approx(
        0.75
    )
    assert value(after, "mpsv3_service_time_to_ready_seconds_bucket", service="db", le="0.5") == 0
    assert value(after, "mpsv3_service_time_to_ready_seconds_bucket", service="db", le="1.0") == 1


def test_reload_changes_the_series(bus: EventBus, port: int) -> None:
    exporter = MetricsExporter(bus, ["db", "api"])
    exporter.start("127.0.0.1", port)
    try:
        bus.emit("restarting", "api", reason="reload")
        bus.emit("restarting", "api", reason="odd")
        exporter.set_services(["db", "worker"])
        samples = scrape(port)
    finally:
        exporter.stop()
    services = {dict(labels).get("service") for (_name, labels) in samples}
    assert "api" not in services
    assert {"db", "worker"} <= services
    assert value(samples, "mpsv3_service_restarts_total", service="worker", reason="crash") == 0


def test_stop_releases_the_port_and_the_bus(bus: EventBus, port: int) -> None:
    exporter = MetricsExporter(bus, ["db"])
    exporter.start("127.0.0.1", port)
    exporter.stop()
    exporter.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    bus.emit("restarting", "db", reason="crash")  # no longer counted, no error
    again = MetricsExporter(bus, ["db"])
    again.start("127.0.0.1", port)  # the port is free again
    try:
        assert (
            value(scrape(port), "mpsv3_service_restarts_total", service="db", reason="crash") == 0
        )
    finally:
        again.stop()


def test_port_in_use_is_an_error(bus: EventBus) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        exporter = MetricsExporter(bus, ["db"])
        with pytest.raises(MpsvError, match=f"metrics: cannot listen on 127.0.0.1:{taken}"):
            exporter.start("127.0.0.1", taken)
        exporter.stop()


def test_curl_output_parses(bus: EventBus, port: int) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    exporter = MetricsExporter(bus, ["db"])
    exporter.start("127.0.0.1", port)

    def scrape() -> str:
        return subprocess.run(
            [curl, "-sf", f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True, timeout=30, check=True
        ).stdout

    try:
        first = scrape()
        bus.emit("restarting", "db", reason="crash")
        second = scrape()
    finally:
        exporter.stop()
    assert value(parse(first), "mpsv3_service_restarts_total", service="db", reason="crash") == 0
    assert value(parse(second), "mpsv3_service_restarts_total", service="db", reason="crash") == 1
