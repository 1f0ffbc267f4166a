"""Issue 17's keys and commands against a real ``mpsv3 up``: tasks, ``user:`` with notify
readiness, ``env_file``, ``enabled``/``profiles``, ``limits.memory_mb``, ``watch.signal_to``,
``signal``, stamped log lines, ``logs`` merged with ``--since`` (``replicas``, rolling
restarts and ``scale``: test_production_replicas.py).

The services are small Python programs (``py()``), so these run everywhere CI does; the real
servers (PostgreSQL, Redis, nginx, gunicorn, rq) are in tests/acceptance/test_production_stack.py.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest
from production_support import SLEEPER, SYSTEM_PYTHON

from support import (
    STAMP,
    Event,
    Stack,
    Yaml,
    alive,
    argv,
    config,
    log_lines,
    of,
    ok,
    py,
    service,
    unstamped,
    wait_for,
)

# ----------------------------------------------------------------------------------- tasks


def counting_task(runs: Path) -> Yaml:
    """A task that adds a line to ``runs`` at each run, and takes 0.2 s (one that exits at
    once can meet the engine bug shown below)."""
    return py(f"import time\nopen({str(runs)!r}, 'a').write('run' + chr(10))\ntime.sleep(0.2)")


def app(requires: str, **keys: Any) -> dict[str, Any]:
    """The long-running service ``app``, ready once it printed ``up``, after ``requires``."""
    return service("app", SLEEPER, requires=[requires], readiness={"log": {"pattern": "^up$"}}, **keys)


def assert_reran_then_app(stack: Stack, task: str, mark: int) -> None:
    """Since event ``mark``: ``task`` completed, then ``app`` spawned, then ``app`` was ready."""
    ready = stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "app", after=mark)
    after = stack.events()[mark:]
    completed = next(i for i, e in enumerate(after) if e["service"] == task and e.get("to") == "completed")
    app_spawn = next(i for i, e in enumerate(after) if e["service"] == "app" and e["event"] == "spawned")
    assert completed < app_spawn < after.index(ready)


def test_a_completed_task_is_not_rerun_when_its_dependents_restart(make_stack: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    stack = make_stack(config(
        service("init", counting_task(runs), kind="task"),
        app("init", restart={"backoff": {"base_ms": 100}}),
    ))
    stack.start()
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "app")
    assert stack.service("init")["state"] == "completed"
    ok(stack.cli("restart", "app"))  # by the operator
    wait_for("app's 2nd ready", lambda: len(of(stack.events(), "app", "ready")) == 2)
    os.kill(stack.service("app")["pid"], 9)  # by a crash
    wait_for("app's 3rd ready", lambda: len(of(stack.events(), "app", "ready")) == 3)
    assert len(of(stack.events(), "init", "spawned")) == 1 and runs.read_text() == "run\n"
    assert stack.service("init")["state"] == "completed"

    mark = len(stack.events())  # `restart init` runs it again, then restarts its dependents
    ok(stack.cli("restart", "init"))
    assert_reran_then_app(stack, "init", mark)
    assert runs.read_text() == "run\nrun\n"
    assert stack.stop() == 0


def test_a_change_to_a_tasks_watched_file_reruns_it_then_restarts_its_dependents(
    make_stack: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    watch = {"paths": ["migrations.sql"], "debounce_ms": 100}
    stack = make_stack(config(service("migrate", counting_task(runs), kind="task", watch=watch), app("migrate")))
    (stack.root / "migrations.sql").write_text("-- 1\n")
    stack.start()
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "app")
    stack.wait_event(lambda e: e["event"] == "watcher_started")
    time.sleep(0.3)
    mark = len(stack.events())
    (stack.root / "migrations.sql").write_text("-- 2\n")
    assert_reran_then_app(stack, "migrate", mark)
    assert runs.read_text() == "run\nrun\n" and len(of(stack.events(), "app", "spawned")) == 2
    assert stack.stop() == 0


def test_a_failing_task_backs_off_and_its_dependent_waits_until_it_completes(
    make_stack: Any, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed"
    migrate = py(f"import os, sys, time\ntime.sleep(0.2)\nsys.exit(0 if os.path.exists({str(fixed)!r}) else 3)")
    restart = {"backoff": {"base_ms": 200, "factor": 1}, "max_retries": 50}
    stack = make_stack(config(
        service("migrate", migrate, kind="task", restart=restart),
        service("app", SLEEPER, requires=["migrate"]),
    ))
    stack.start()
    stack.wait_event(lambda e: e["event"] == "backoff" and e["service"] == "migrate" and e["attempt"] >= 2)
    app = stack.service("app")
    assert app["state"] == "pending" and "migrate" in (app["reason"] or "")
    fixed.write_text("yes")
    stack.wait_state("migrate", "completed")
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "app")
    migrate = stack.service("migrate")
    assert migrate["kind"] == "task" and migrate["state"] == "completed"
    assert stack.stop() == 0


def test_a_program_that_exits_at_once_is_reported_with_its_own_exit_code(make_stack: Any) -> None:
    restart = {"policy": "always", "backoff": {"base_ms": 20}}
    stack = make_stack(config(*(service(f"quick{i}", ["true"], restart=restart) for i in range(5))))
    stack.start()

    def exits() -> list[Event]:
        return [e for e in stack.events() if e["event"] == "exited"]

    wait_for("300 exits or a wrong code", lambda: len(exits()) >= 300 or any(e["code"] for e in exits()), 30)
    assert stack.stop() == 0
    # Until the stop: a `true` still starting when the stop came is ended by its SIGTERM.
    events = stack.events()
    stop = next(i for i, e in enumerate(events) if e["event"] == "shutdown_started")
    ran = [e for e in events[:stop] if e["event"] == "exited"]
    wrong = [e for e in ran if e["code"] != 0]
    assert not wrong, f"{len(wrong)} of {len(ran)} exits of `true` reported otherwise: {wrong[:3]}"


# ---------------------------------------------------------------------------- user: notify


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A stack folder another user can enter (pytest's own temp folders are 0700 root's)."""
    root = Path(tempfile.mkdtemp(prefix="mpsv3-user-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_a_service_run_as_another_user_is_ready_by_notify(open_root: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("user: needs a root supervisor")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"{SYSTEM_PYTHON} is missing (the venv's interpreter is not readable by nobody)")
    nobody = pwd.getpwnam("nobody")
    sender = """
import os, socket, time
time.sleep(0.5)
print('uid', os.getuid(), 'gid', os.getgid(), 'home', os.environ.get('HOME'), flush=True)
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.sendto(b'STATUS=warming up\\nREADY=1', os.environ['NOTIFY_SOCKET'])
while True: time.sleep(1)
"""
    daemon = service("daemon", argv(sender, python=SYSTEM_PYTHON), user="nobody", group="nogroup",
                     readiness={"notify": True, "timeout_s": 20})
    stack = Stack(open_root / "stack", config(daemon), name=f"u{os.getpid()}")
    try:
        stack.start()
        ready = stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "daemon")
        assert ready["after_ms"] >= 400  # the gate waited for READY=1, not for the spawn
        proc = psutil.Process(stack.service("daemon")["pid"])
        assert proc.uids().real == proc.uids().effective == nobody.pw_uid
        assert proc.gids().real == proc.gids().effective == nobody.pw_gid
        assert log_lines(stack, "daemon") == [f"uid {nobody.pw_uid} gid {nobody.pw_gid} home {nobody.pw_dir}"]
        assert stack.stop() == 0
    finally:
        stack.stop()


# ------------------------------------------------------------------------------ env_file


def test_env_file_values_reach_the_service_and_a_missing_optional_file_is_fine(make_stack: Any) -> None:
    show = py("import os, time\nprint('secret', os.environ['SECRET'], os.environ['OWN'], flush=True)\n"
              "while True: time.sleep(1)")
    stack = make_stack(config(service("app", show, env_file=[".env", "?.env.local"], env={"OWN": "own"},
                                      readiness={"log": {"pattern": "^secret"}})))
    (stack.root / ".env").write_text("SECRET='from .env'\nOWN=loses-to-env\n")
    stack.start()
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "app")
    assert log_lines(stack, "app") == ["secret from .env own"]

    (stack.root / ".env.local").write_text("SECRET=from-local\n")  # present now: it wins
    assert "app" in ok(stack.cli("reload"))
    wait_for("app's 2nd ready", lambda: len(of(stack.events(), "app", "ready")) == 2)
    assert log_lines(stack, "app")[-1] == "secret from-local own"
    assert stack.stop() == 0


# ---------------------------------------------------------------------- enabled, profiles


def test_disabled_and_profile_services_start_only_when_asked(make_stack: Any) -> None:
    stack = make_stack(config(
        service("base", SLEEPER),
        service("extra", SLEEPER, enabled=False, requires=["base"]),
        service("dbg", SLEEPER, profiles=["debug"]),
    ))
    stack.start()
    stack.wait_state("base", "ready")
    time.sleep(1.0)
    status = {s["id"]: s for s in stack.status()["services"]}
    assert status["extra"]["state"] == status["dbg"]["state"] == "stopped"
    assert status["extra"]["enabled"] is False and status["base"]["enabled"] is True
    assert not of(stack.events(), "extra", "spawned") and not of(stack.events(), "dbg", "spawned")
    ok(stack.cli("start", "extra"))
    stack.wait_state("extra", "ready")
    assert stack.stop() == 0

    mark = len(stack.events())
    stack.start("--profile", "debug")
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "dbg", after=mark)
    assert stack.service("extra")["state"] == "stopped"
    assert stack.stop() == 0


# ------------------------------------------------------------------------------ limits


def test_a_memory_hog_over_its_limit_is_restarted_with_reason_memory(make_stack: Any) -> None:
    hog = py("""
        import time
        print('up', flush=True)
        blocks = []
        for _ in range(40):
            blocks.append(b'x' * (8 << 20))
            time.sleep(0.05)
        while True: time.sleep(1)
    """)
    restart = {"backoff": {"base_ms": 300}, "max_retries": 20}
    stack = make_stack(config(service("hog", hog, limits={"memory_mb": 64}, restart=restart)))
    stack.start()
    exceeded = stack.wait_event(lambda e: e["event"] == "limit_exceeded" and e["service"] == "hog")
    assert exceeded["limit"] == "memory"
    restarting = stack.wait_event(lambda e: e["event"] == "restarting" and e["service"] == "hog")
    assert restarting["reason"] == "memory"
    stack.wait_event(lambda e: e["event"] == "spawned" and e["service"] == "hog" and e["attempt"] == 2)
    status = stack.service("hog")
    assert status["restarts"] >= 1 and status["failures"] >= 1
    assert stack.stop() == 0


# ------------------------------------------------------------------- signal_to, signal


PARENT = py("""
    import signal, subprocess, sys, time
    child = subprocess.Popen([sys.executable, '-c',
        'import signal, time\\nsignal.signal(signal.SIGHUP, signal.SIG_DFL)\\nwhile True: time.sleep(1)'])
    signal.signal(signal.SIGHUP, lambda *_: print('reloaded', flush=True))
    print('child', child.pid, flush=True)
    while True: time.sleep(1)
""")


def test_signal_to_main_leaves_a_child_that_dies_on_sighup_alive(make_stack: Any) -> None:
    watch = {"paths": ["app.conf"], "on_change": "signal:SIGHUP", "signal_to": "main", "debounce_ms": 100}
    stack = make_stack(config(service("app", PARENT, readiness={"log": {"pattern": "^child "}}, watch=watch)))
    (stack.root / "app.conf").write_text("v1\n")
    stack.start()
    stack.wait_event(lambda e: e["event"] == "ready" and e["service"] == "app")
    stack.wait_event(lambda e: e["event"] == "watcher_started")
    time.sleep(0.3)
    leader = stack.service("app")["pid"]
    child = int(log_lines(stack, "app")[0].split()[1])
    assert psutil.Process(child).ppid() == leader and os.getpgid(child) == leader

    def reloads() -> int:
        return log_lines(stack, "app").count("reloaded")

    (stack.root / "app.conf").write_text("v2\n")  # the watcher: SIGHUP to the main process
    wait_for("the first reload", lambda: reloads() == 1)
    assert "sent SIGHUP to the main process" in ok(stack.cli("signal", "app", "SIGHUP"))
    wait_for("the second reload", lambda: reloads() == 2)
    time.sleep(1.0)
    assert alive(child), "the child died of a SIGHUP meant for the main process"
    assert stack.service("app")["pid"] == leader and len(of(stack.events(), "app", "spawned")) == 1

    ok(stack.cli("signal", "app", "HUP", "--group"))  # the control: the child does die of it
    wait_for("the child's death", lambda: not alive(child))
    assert reloads() == 3 and stack.service("app")["pid"] == leader
    assert stack.stop() == 0


# --------------------------------------------------------------------------------- logs


def test_log_lines_carry_a_utc_stamp_in_the_file_and_in_logs(make_stack: Any) -> None:
    begin = datetime.now(timezone.utc).isoformat(timespec="milliseconds")[:23]
    three = py("import time\nfor i in range(3): print('line', i, flush=True)\nwhile True: time.sleep(1)")
    stack = make_stack(config(service("app", three)))
    stack.start()
    wait_for("three lines", lambda: len(log_lines(stack, "app")) == 3)
    end = datetime.now(timezone.utc).isoformat(timespec="milliseconds")[:23]
    raw = (stack.state_dir / "logs" / "app.log").read_text().splitlines()
    stamps = [line[:23] for line in raw]
    assert all(STAMP.match(line) for line in raw) and stamps == sorted(stamps)
    assert begin <= stamps[0] and stamps[-1] <= end
    shown = ok(stack.cli("logs", "app", "-c", str(stack.config_path))).splitlines()
    assert shown == raw
    assert stack.stop() == 0


def test_logs_merges_every_service_in_time_order_and_since_cuts(make_stack: Any, tmp_path: Path) -> None:
    trigger = tmp_path / "late"
    talker = """
        import os, sys, time
        name, offset = sys.argv[1], float(sys.argv[2])
        time.sleep(offset)
        for i in range(3):
            print(name, 'early', i, flush=True)
            time.sleep(0.4)
        while not os.path.exists(TRIGGER): time.sleep(0.02)
        print(name, 'late', flush=True)
        while True: time.sleep(1)
    """.replace("TRIGGER", repr(str(trigger)))
    stack = make_stack(config(service("a", argv(talker, "a", "0")), service("b", argv(talker, "b", "0.2"))))
    stack.start()
    wait_for("the early lines", lambda: len(log_lines(stack, "b")) == 3)
    with_config = ("-c", str(stack.config_path))

    def merged(*args: str) -> list[tuple[str, str]]:
        rows = []
        for line in ok(stack.cli("logs", *args, *with_config)).splitlines():
            sid, _, rest = line.partition(" | ")
            rows.append((sid.strip(), rest))
        return rows

    rows = merged()
    assert [f"{sid}: {unstamped(rest)}" for sid, rest in rows] == [
        f"{sid}: {sid} early {i}" for i in range(3) for sid in ("a", "b")
    ]
    assert [rest[:23] for _, rest in rows] == sorted(rest[:23] for _, rest in rows)

    time.sleep(0.05)
    cut = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(0.05)
    trigger.write_text("now")
    wait_for("the late lines", lambda: "a late" in log_lines(stack, "a") and "b late" in log_lines(stack, "b"))
    assert sorted(unstamped(rest) for _, rest in merged("--since", cut)) == ["a late", "b late"]
    assert len(merged("--since", "10m")) == 8
    assert [unstamped(line) for line in ok(stack.cli("logs", "b", "--since", cut, *with_config)).splitlines()] == ["b late"]
    assert stack.stop() == 0

