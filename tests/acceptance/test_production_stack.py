"""Issue 17's acceptance: ``examples/production-stack`` under mpsv3, with the real servers.

One copy of the stack goes through everything an operator does to it, in order (one test, so
that the stack starts three times, not once per check; 30 to 50 s here, within CI's two minutes):
all ready in dependency order; a request through nginx reaches the app, the database and a
worker; ``kill -9`` of gunicorn's master and of PostgreSQL's postmaster: back, nothing of the
old tree left, the migration not run again; a save of nginx.conf reloads nginx under a load
loop with no failed request; ``signal``; ``start`` of a disabled task; ``scale worker 3``;
``down`` keeps the data: the rows are there after ``up`` again (with ``--profile``); after
``kill -9`` of keeper and supervisor at once, the next ``up`` reclaims what was left first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import yaml

from support import Event
from support import wait_for as support_wait_for

if TYPE_CHECKING:  # the plugin below is imported by pytest, which rewrites its asserts
    from conftest_production import ProductionStack

pytest_plugins = ("conftest_production",)

READY_TIMEOUT_S = 120.0  # a cold start: initdb, then everything, on a busy 2-core machine
ALWAYS = {"pgdata": "completed", "initdb": "completed", "postgres": "ready", "migrate": "completed",
          "redis": "ready", "web": "ready", "worker-1": "ready", "worker-2": "ready", "nginx": "ready"}


def of(events: list[Event], sid: str, name: str) -> list[Event]:
    return [e for e in events if e["service"] == sid and e["event"] == name]


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``support.wait_for`` with this stack's longer default (a database restarts)."""
    return support_wait_for(what, condition, timeout)


def ok(result: Any) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return str(result.stdout)


def up(stack: ProductionStack, *args: str, new_session: bool = False) -> int:
    """Start the stack; once every service is up, the index of this run's first event."""
    mark = len(stack.events())
    stack.start(*args, new_session=new_session)
    stack.wait_event(lambda e: e["event"] == "stack_ready", READY_TIMEOUT_S, after=mark)
    states = {s["id"]: s["state"] for s in stack.status()["services"]}
    assert {sid: states.get(sid) for sid in ALWAYS} == ALWAYS, states
    return mark


def get(stack: ProductionStack, path: str) -> dict[str, Any]:
    response = httpx.get(stack.url(path), timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def order(stack: ProductionStack, item: str) -> int:
    response = httpx.post(stack.url("/orders"), json={"item": item}, timeout=10)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def fulfilled(stack: ProductionStack, order_id: int) -> dict[str, Any]:
    return dict(wait_for(f"order {order_id} fulfilled",
                         lambda: (o := get(stack, f"/orders/{order_id}"))["status"] == "fulfilled" and o))


def tree(pid: int) -> list[psutil.Process]:
    main = psutil.Process(pid)
    return [main, *main.children(recursive=True)]


def gone(procs: list[psutil.Process]) -> bool:
    """None of these processes is alive any more (pids are compared with their start time)."""
    for proc in procs:
        with_same_start = proc.is_running()  # False once the pid is gone or reused
        if with_same_start and proc.status() != psutil.STATUS_ZOMBIE:
            return False
    return True


def check_dependency_order(stack: ProductionStack, events: list[Event]) -> None:
    """Each service spawned only after every service it requires was ready or completed."""
    config = yaml.safe_load(stack.config_path.read_text())
    done: dict[str, int] = {}
    first_spawn: dict[str, int] = {}
    for i, event in enumerate(events):
        sid = str(event["service"])
        if event["event"] == "state" and event["to"] in ("ready", "completed"):
            done.setdefault(sid, i)
        elif event["event"] == "spawned":
            first_spawn.setdefault(sid, i)
    checked = 0
    for service in config["services"]:
        members = [sid for sid in first_spawn if sid == service["id"] or sid.startswith(service["id"] + "-")]
        for member in members:
            for dep in service.get("requires", []):
                assert done[dep] < first_spawn[member], f"{member} spawned before {dep} was ready"
                checked += 1
    assert checked >= 8


def kill_and_recover(stack: ProductionStack, sid: str) -> None:
    """``kill -9`` of a service's main process: back, and nothing of its old tree left."""
    mark = len(stack.events())
    old = tree(stack.service(sid)["pid"])
    assert len(old) >= 3, [p.cmdline() for p in old]  # the master and its workers/backends
    old[0].kill()
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == sid, timeout=60, after=mark)
    wait_for(f"the old {sid} tree gone", lambda: gone(old), timeout=15)
    assert stack.service(sid)["restarts"] >= 1


def load_during(stack: ProductionStack, action: Callable[[], None], until: Callable[[list[str]], bool]) -> list[str]:
    """Requests through nginx, one connection each, from before ``action`` until ``until``
    (given the outcomes so far) holds, plus half a second: every outcome, as
    ``"<status> <X-Shop-Config>"`` or ``"error ..."``."""
    outcomes: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=5, headers={"Connection": "close"}) as client:
            while not stop.is_set() and len(outcomes) < 5000:
                try:
                    response = client.get(stack.url("/health"))
                    outcomes.append(f"{response.status_code} {response.headers.get('x-shop-config')}")
                except httpx.HTTPError as exc:
                    outcomes.append(f"error {exc!r}")

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        time.sleep(0.5)
        action()
        wait_for("the change to take effect", lambda: until(outcomes), timeout=30)
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join()
    return outcomes


def assert_none_failed(outcomes: list[str]) -> None:
    failed = [o for o in outcomes if not o.startswith("200 ")]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed: {failed[:5]}"
    assert len(outcomes) >= 20, outcomes


def test_the_production_stack_end_to_end(production_stack: Callable[[], ProductionStack]) -> None:
    stack = production_stack()
    t0 = time.monotonic()
    up(stack)
    first_up_s = time.monotonic() - t0
    events = stack.events()
    check_dependency_order(stack, events)
    assert stack.service("backup")["state"] == "stopped" and stack.service("queue-monitor")["state"] == "stopped"
    for sid, user in (("postgres", "postgres"), ("redis", "redis")):
        proc = psutil.Process(stack.service(sid)["pid"])
        assert proc.username() == user, f"{sid} runs as {proc.username()}"
    assert of(events, "redis", "ready")  # by READY=1 on $NOTIFY_SOCKET, sent as `redis`
    assert stack.service("web")["rss_bytes"] > 20 << 20  # gunicorn's whole tree (limits.memory_mb)

    # A request through nginx reaches the app, the database, and (by the queue) a worker.
    index = get(stack, "/")
    assert index["postgres"] and index["migrations"] == 2
    tea = order(stack, "tea")
    assert fulfilled(stack, tea)["fulfilled_by"] in ("worker-1", "worker-2")

    # kill -9 of gunicorn's master, then of the postmaster: back, no orphan, no migration again.
    kill_and_recover(stack, "web")
    kill_and_recover(stack, "postgres")
    wait_for("the app through the restarted database", lambda: httpx.get(stack.url("/"), timeout=10).status_code == 200)
    assert get(stack, "/")["orders"] == 1
    events = stack.events()
    assert len(of(events, "migrate", "spawned")) == 1 and len(of(events, "initdb", "spawned")) == 1
    assert stack.service("migrate")["state"] == "completed"

    # A save of nginx.conf reloads nginx (SIGHUP to its master only) under load: no request fails.
    nginx_pid = stack.service("nginx")["pid"]
    conf = stack.root / "nginx.conf"

    def save() -> None:
        conf.write_text(conf.read_text().replace('X-Shop-Config "1"', 'X-Shop-Config "2"'))

    outcomes = load_during(stack, save, until=lambda seen: "200 2" in seen[-5:])
    assert_none_failed(outcomes)
    assert "200 1" in outcomes and outcomes[-1] == "200 2"
    reload = of(stack.events(), "nginx", "reload")
    assert len(reload) == 1 and reload[0]["action"] == "signal:SIGHUP"
    assert stack.service("nginx")["pid"] == nginx_pid and len(of(stack.events(), "nginx", "spawned")) == 1

    # New code: gunicorn's own graceful reload (SIGHUP to the master only), also under load.
    master, workers = stack.service("web")["pid"], tree(stack.service("web")["pid"])[1:]

    def new_workers() -> bool:
        now = tree(master)[1:]
        return len(now) == len(workers) and not {p.pid for p in now} & {p.pid for p in workers}

    app = stack.root / "shop" / "app.py"
    outcomes = load_during(stack, lambda: app.write_text(app.read_text() + "\n"), until=lambda _: new_workers())
    assert_none_failed(outcomes)
    assert stack.service("web")["pid"] == master and len(of(stack.events(), "web", "spawned")) == 2

    # `signal` with a real program: USR1 makes nginx reopen its logs.
    assert "main process of nginx" in ok(stack.cli("signal", "nginx", "USR1"))
    wait_for("nginx reopening its logs", lambda: "reopening logs" in (stack.state_dir / "logs" / "nginx.log").read_text())

    # `start` of a disabled task: a dump of the database.
    ok(stack.cli("start", "backup"))
    stack.wait_state("backup", "completed", timeout=60)
    assert "CREATE TABLE public.orders" in (stack.root / "data" / "backup" / "shop.sql").read_text()

    # scale worker 3: a third rq worker takes jobs too.
    assert "added: worker-3" in ok(stack.cli("scale", "worker", "3"))
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "worker-3", timeout=60)
    coffee = order(stack, "coffee")
    assert fulfilled(stack, coffee)["fulfilled_by"] in ("worker-1", "worker-2", "worker-3")

    # down keeps PostgreSQL's data: the rows are there after up (with a profile) again.
    assert "stopped" in ok(stack.cli("down", timeout=120))
    assert stack.process is not None and stack.process.wait(timeout=60) == 0
    stack.process = None
    wait_for("nothing of the stack left", lambda: not stack.leftovers(), timeout=15)
    assert (stack.root / "data" / "pg" / "PG_VERSION").is_file()

    mark = up(stack, "--profile", "ops", new_session=True)
    again = stack.events()[mark:]
    assert not of(again, "migrate", "exited")[0]["code"] and not of(again, "initdb", "exited")[0]["code"]
    assert "migrate: applied 0 (none), 2 already current" in (stack.state_dir / "logs" / "migrate.log").read_text()
    assert [get(stack, f"/orders/{n}")["item"] for n in (tea, coffee)] == ["tea", "coffee"]
    stack.wait_state("queue-monitor", "ready", timeout=30)
    assert "worker-3" not in {s["id"] for s in stack.status()["services"]}  # scale lasts one run

    # kill -9 of keeper and supervisor at once: the leaders die with them (parent-death signal,
    # kept across the switch to postgres and redis); what they leave (gunicorn's and nginx's
    # workers hold the ports) is reclaimed by the next `up` before it starts anything.
    stack.kill_group()
    time.sleep(1.0)
    left = stack.leftovers()
    mark = up(stack)
    events = stack.events()[mark:]
    first_spawn = next(i for i, e in enumerate(events) if e["event"] == "spawned")
    reclaimed = {e["pid"] for e in events[:first_spawn] if e["event"] == "orphan_reclaimed"}
    assert {p.pid for p in left} <= reclaimed, (reclaimed, [(p.pid, p.name()) for p in left])
    assert gone(left) and not [e for e in events if e["event"] == "port_conflict"]
    assert [get(stack, f"/orders/{n}")["status"] for n in (tea, coffee)] == ["fulfilled", "fulfilled"]
    assert "stopped" in ok(stack.cli("down", timeout=120))
    assert stack.process is not None and stack.process.wait(timeout=60) == 0
    stack.process = None
    print(f"first up: {first_up_s:.1f} s; whole run: {time.monotonic() - t0:.1f} s; "
          f"reclaimed after kill -9: {len(left)}")
