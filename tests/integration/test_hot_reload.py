"""Issue 6 through the real ``mpsv3 up``: the one file watcher restarts (or signals) only the
services that watch a changed file, ignores excluded files and its own logs, debounces
bursts, waits for a fix after a broken save, and restarts dependents in order.

The stacks run ``programs/service.py``; ``api`` reads ``engine/consciousness_engine_v2.py``
at start (``--mode-file``) and exits 1 when it says ``broken``, the way a real service dies
on a save with a syntax error. Negative checks wait a generous 1.5 s and count events.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil

from support import Event, Stack, config, free_port, index, of, program, service

ENGINE = "engine/consciousness_engine_v2.py"
QUIET_S = 1.5  # how long "nothing happens" is watched for


def wait_ready(stack: Stack, sid: str, nth: int, timeout: float = 30.0) -> Event:
    """The ``nth`` (0-based) ``ready`` event of ``sid``, once it is there."""
    after = 0 if nth == 0 else index(stack.events(), "ready", sid, nth - 1) + 1
    return stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == sid, timeout, after)


def layout(root: Path) -> None:
    (root / "engine" / "excluded").mkdir(parents=True)
    (root / ENGINE).write_text("MODE = 'ok'\n")
    (root / "engine" / "excluded" / "skip.py").write_text("x = 1\n")


def save(root: Path, text: str, path: str = ENGINE) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


BACKOFF = {"backoff": {"base_ms": 100}}


def api_service(port: int, watch: dict[str, Any], restart: dict[str, Any] = BACKOFF) -> dict[str, Any]:
    """The ``api`` service: ready when it serves /ping; watches per ``watch``."""
    return service(
        "api", program("--port", port, "--mode-file", ENGINE), requires=["db"],
        readiness={"http_get": {"url": f"http://127.0.0.1:{port}/ping"}, "timeout_s": 20},
        restart=restart, stop={"grace_s": 2}, watch=watch,
    )


def three_services(
    make_stack: Any, watch: dict[str, Any], *, web_watch: dict[str, Any] | None = None,
    restart: dict[str, Any] = BACKOFF,
) -> Stack:
    web = service("web", program(), requires=["api"], **({"watch": web_watch} if web_watch else {}))
    stack: Stack = make_stack(config(
        service("db", program("--chatter", 0.05)), api_service(free_port(), watch, restart), web
    ))
    layout(stack.root)
    return stack


def start_and_settle(stack: Stack, *sids: str) -> None:
    stack.start()
    for sid in sids:
        stack.wait_state(sid, "ready")
    stack.wait_event(lambda e: e["event"] == "watcher_started")
    time.sleep(0.3)  # the watcher thread arms its OS watch right after watcher_started


def first_pid(events: list[Event], sid: str) -> int:
    return int(of(events, sid, "spawned")[0]["pid"])


# ----------------------------------------------------------------------- only the watcher


def test_a_save_restarts_only_the_service_that_watches_it(make_stack: Any) -> None:
    stack = three_services(make_stack, {"paths": ["engine/**/*.py", "!engine/excluded/**"]})
    start_and_settle(stack, "db", "api", "web")
    before = stack.events()
    pids = {sid: first_pid(before, sid) for sid in ("db", "api", "web")}

    save(stack.root, "MODE = 'ok'  # edited\n")
    wait_ready(stack, "api", 1)
    time.sleep(QUIET_S)
    events = stack.events()

    reloads = of(events, "api", "reload")
    assert len(reloads) == 1
    assert reloads[0]["paths"] == [str(stack.root / ENGINE)]
    assert reloads[0]["action"] == "restart"
    assert [e["reason"] for e in of(events, "api", "restarting")] == ["reload"]
    assert len(of(events, "api", "spawned")) == 2
    for sid in ("db", "web"):
        assert len(of(events, sid, "spawned")) == 1
        assert not of(events, sid, "reload", "stopping", "restarting", "exited")
    status = {s["id"]: s for s in stack.status()["services"]}
    assert status["db"]["pid"] == pids["db"] and status["web"]["pid"] == pids["web"]
    assert status["api"]["pid"] != pids["api"] and status["api"]["state"] == "ready"
    assert status["api"]["restarts"] == 1 and status["api"]["failures"] == 0
    assert (
        not psutil.pid_exists(pids["api"])
        or psutil.Process(pids["api"]).status() == psutil.STATUS_ZOMBIE
    )
    assert stack.stop() == 0


def test_excluded_files_bytecode_and_service_logs_restart_nothing(make_stack: Any) -> None:
    # api watches everything under engine/ but the excluded folder; web watches every *.log,
    # which the supervisor's own log files under .mpsv3/logs would match if not excluded.
    stack = three_services(
        make_stack, {"paths": ["engine/**", "!engine/excluded/**"]}, web_watch={"paths": ["**/*.log"]}
    )
    start_and_settle(stack, "db", "api", "web")
    save(stack.root, "x = 2\n", "engine/excluded/skip.py")
    save(stack.root, "bytecode", "engine/__pycache__/consciousness_engine_v2.cpython-311.pyc")
    save(stack.root, "bytecode", "engine/stray.pyc")
    save(stack.root, "swap", "engine/.consciousness_engine_v2.py.swp")
    db_log = stack.state_dir / "logs" / "db.log"
    with open(db_log, "a") as log:
        log.write("a line written by hand into a service log\n")
    size = db_log.stat().st_size
    time.sleep(QUIET_S)  # db keeps writing its log (--chatter) all along
    events = stack.events()
    assert db_log.stat().st_size > size
    assert not [e for e in events if e["event"] in ("reload", "restarting", "stopping")]
    assert all(len(of(events, sid, "spawned")) == 1 for sid in ("db", "api", "web"))

    # The watches are live: a file they select does trigger them.
    save(stack.root, "notes", "engine/notes.txt")
    save(stack.root, "a log line\n", "logs/app.log")
    stack.wait_event(lambda e: e["event"] == "reload" and e["service"] == "api")
    stack.wait_event(lambda e: e["event"] == "reload" and e["service"] == "web")
    assert stack.stop() == 0


# -------------------------------------------------------------------- broken saves, bursts


def test_a_broken_save_waits_for_the_next_save_and_the_fix_is_ready_at_once(
    make_stack: Any,
) -> None:
    # max_retries 2 and a 10 s backoff: two broken saves neither quarantine nor back off.
    stack = three_services(
        make_stack, {"paths": [ENGINE]}, restart={"backoff": {"base_ms": 10000}, "max_retries": 2}
    )
    start_and_settle(stack, "db", "api", "web")
    waiting = "waiting for a change after a failed reload"

    for attempt, text in enumerate(["MODE = 'broken'\n", "MODE = 'broken'  # still\n"], start=1):
        mark = len(stack.events())
        save(stack.root, text)
        crash = stack.wait_event(
            lambda e: e["event"] == "exited" and e["service"] == "api" and e["code"] is not None,
            after=mark,
        )
        assert crash["code"] == 1
        entry = stack.wait_event(
            lambda e: e["event"] == "state" and e["service"] == "api" and e["to"] == "backoff",
            after=mark,
        )
        assert entry["reason"] == waiting
        time.sleep(QUIET_S if attempt == 1 else 0.3)
        status = stack.service("api")
        assert status["state"] == "backoff", status
        assert status["reason"] == waiting
        assert status["failures"] == 0
        assert stack.count("spawned", "api") == 1 + attempt  # no restart without a save

    fixed_at = time.monotonic()
    save(stack.root, "MODE = 'ok'\n")
    wait_ready(stack, "api", 1)
    assert time.monotonic() - fixed_at < 6.0  # far below the 10 s backoff: no delay applied
    events = stack.events()
    assert not of(events, "api", "quarantined", "backoff")
    assert [e["code"] for e in of(events, "api", "exited")] == [None, 1, 1]
    assert [e["reason"] for e in of(events, "api", "restarting")] == ["reload", "reload", "reload"]
    status = stack.service("api")
    assert status["state"] == "ready" and status["failures"] == 0
    assert stack.stop() == 0


def test_fifty_saves_within_a_second_restart_once(make_stack: Any) -> None:
    stack = three_services(make_stack, {"paths": ["engine/**/*.py"]})
    start_and_settle(stack, "db", "api", "web")
    for i in range(50):
        save(stack.root, f"MODE = 'ok'  # save {i}\n")
        time.sleep(0.02)
    wait_ready(stack, "api", 1)
    time.sleep(QUIET_S)
    events = stack.events()
    restarts = len(of(events, "api", "restarting"))
    assert 1 <= restarts <= 2, [e["event"] for e in of(events, "api")]
    assert len(of(events, "api", "spawned")) == 1 + restarts
    assert 1 <= len(of(events, "api", "reload")) <= 2
    assert sum(e["count"] for e in of(events, "api", "reload")) >= 1
    assert stack.service("api")["state"] == "ready"
    assert stack.stop() == 0


# --------------------------------------------------------------- dependents, signals, none


def test_restart_dependents_restarts_them_in_order_once_the_service_is_ready(
    make_stack: Any,
) -> None:
    def saying(sid: str, requires: str) -> dict[str, Any]:
        return service(sid, program("--delay", 0.3, "--say", f"{sid} up"), requires=[requires],
                       readiness={"log": {"pattern": f"{sid} up"}, "timeout_s": 20})

    stack: Stack = make_stack(config(
        service("db", program()),
        api_service(free_port(), {"paths": [ENGINE], "restart_dependents": True}),
        saying("web", "api"),
        saying("edge", "web"),
    ))
    layout(stack.root)
    start_and_settle(stack, "db", "api", "web", "edge")
    save(stack.root, "MODE = 'ok'  # edited\n")
    wait_ready(stack, "edge", 1)
    time.sleep(0.5)
    events = stack.events()

    order = [
        index(events, "restarting", "api"),
        index(events, "ready", "api", 1),
        index(events, "restarting", "web"),
        index(events, "ready", "web", 1),
        index(events, "restarting", "edge"),
        index(events, "ready", "edge", 1),
    ]
    assert order == sorted(order), order
    for sid in ("api", "web", "edge"):
        assert len(of(events, sid, "spawned")) == 2
        assert [e["reason"] for e in of(events, sid, "restarting")] == ["reload"]
    assert len(of(events, "db", "spawned")) == 1
    assert not of(events, "db", "restarting", "stopping")
    assert stack.stop() == 0


def signal_stack(make_stack: Any, on_change: str, hup_file: Path, signal_to: str = "group") -> Stack:
    # signal_to: the contract's default is the main process; these tests name the group.
    stack: Stack = make_stack(config(service(
        "api", program("--hup-file", hup_file, "--fork-child", "--say", "api up"),
        readiness={"log": {"pattern": "api up"}, "timeout_s": 20},
        watch={"paths": [ENGINE], "on_change": on_change, "signal_to": signal_to},
    )))
    layout(stack.root)
    return stack


def test_on_change_signal_sends_sighup_to_the_group_without_a_restart(
    make_stack: Any, tmp_path: Path
) -> None:
    hup_file = tmp_path / "hups"
    stack = signal_stack(make_stack, "signal:SIGHUP", hup_file)
    start_and_settle(stack, "api")
    leader = first_pid(stack.events(), "api")
    children = [p.pid for p in psutil.Process(leader).children()]
    assert len(children) == 1

    save(stack.root, "MODE = 'ok'  # edited\n")
    deadline = time.monotonic() + 20
    while not (hup_file.exists() and len(hup_file.read_text().splitlines()) >= 2):
        assert time.monotonic() < deadline, f"SIGHUP not seen by the group: {stack.events()[-10:]}"
        time.sleep(0.05)
    time.sleep(QUIET_S)
    lines = hup_file.read_text().splitlines()
    assert sorted(lines) == sorted([f"HUP {leader}", f"HUP {children[0]}"])  # once each
    events = stack.events()
    reload = of(events, "api", "reload")
    assert len(reload) == 1 and reload[0]["action"] == "signal:SIGHUP"
    assert len(of(events, "api", "spawned")) == 1
    assert not of(events, "api", "restarting", "stopping", "exited")
    status = stack.service("api")
    assert status["state"] == "ready" and status["pid"] == leader
    assert stack.stop() == 0


def test_on_change_none_only_records_the_reload(make_stack: Any, tmp_path: Path) -> None:
    hup_file = tmp_path / "hups"
    stack = signal_stack(make_stack, "none", hup_file)
    start_and_settle(stack, "api")
    leader = first_pid(stack.events(), "api")
    save(stack.root, "MODE = 'ok'  # edited\n")
    reload = stack.wait_event(lambda e: e["event"] == "reload" and e["service"] == "api")
    assert reload["action"] == "none"
    assert reload["paths"] == [str(stack.root / ENGINE)]
    time.sleep(QUIET_S)
    events = stack.events()
    assert not hup_file.exists()
    assert len(of(events, "api", "reload")) == 1
    assert len(of(events, "api", "spawned")) == 1
    assert not of(events, "api", "restarting", "stopping", "exited")
    status = stack.service("api")
    assert status["state"] == "ready" and status["pid"] == leader
    assert stack.stop() == 0
