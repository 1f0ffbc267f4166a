"""``up`` under systemd's notify protocol: a real datagram socket stands in for systemd.

The test binds ``NOTIFY_SOCKET``, runs the real ``mpsv3 up`` (keeper and supervisor) with
``WATCHDOG_USEC`` set, and reads what arrives: ``READY=1`` only after the last ``ready``
event, ``STATUS=`` lines on the way, ``WATCHDOG=1`` at half the interval, ``RELOADING=1``
and ``READY=1`` around a reload, ``STOPPING=1`` at SIGTERM.
"""

from __future__ import annotations

import calendar
import itertools
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import config, py, service

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="AF_UNIX datagrams, the keeper")

WATCHDOG_USEC = 400_000  # pings every 0.2 s


class FakeSystemd:
    """The manager's end of ``NOTIFY_SOCKET``: every datagram with the time it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._open = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while self._open:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append((time.time(), fields))

    def received(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30.0, after: int = 0) -> int:
        """Index of the first message (from ``after``) that sets ``key`` (to ``value``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, (_, fields) in enumerate(self.received()[after:], after):
                if key in fields and (value is None or fields[key] == value):
                    return index
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value} within {timeout}s; got {[m for _, m in self.received()]}")

    def close(self) -> None:
        self._open = False
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


def seconds(ts: str) -> float:
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) + int(ts[20:23]) / 1000


def two_services(slow_after: float = 1.2, timeout_s: float = 20) -> str:
    """``fast`` ready at its spawn; ``slow`` ready ``slow_after`` seconds later, by its log."""
    slow = py(f"import time, os; time.sleep({slow_after}); print('up', os.environ.get('NOTIFY_SOCKET'), flush=True); time.sleep(600)")
    return config(
        service("fast", py("import time; time.sleep(600)")),
        service("slow", slow, readiness={"log": {"pattern": "^up"}, "timeout_s": timeout_s}, stop={"grace_s": 5}),
    )


def start(make_stack: Any, systemd: FakeSystemd, text: str) -> Any:
    stack = make_stack(text)
    stack.env.update(NOTIFY_SOCKET=str(systemd.path), WATCHDOG_USEC=str(WATCHDOG_USEC))
    stack.start()
    return stack


def test_ready_only_after_the_last_ready_event_with_status_lines(make_stack: Any, systemd: FakeSystemd) -> None:
    stack = start(make_stack, systemd, two_services())
    ready_at = systemd.wait_for("READY", "1")
    arrived, fields = systemd.received()[ready_at]
    last_ready = max(seconds(e["ts"]) for e in stack.events() if e["event"] == "ready")
    assert {e["service"] for e in stack.events() if e["event"] == "ready"} == {"fast", "slow"}
    assert arrived >= last_ready - 0.002, "READY=1 came before the slow service was ready"
    assert fields.get("STATUS") == "2/2 ready"
    before = [m.get("STATUS") for _, m in systemd.received()[:ready_at] if "STATUS" in m]
    assert "1/2 ready; slow: starting" in before, before
    assert not any("READY" in m for _, m in systemd.received()[:ready_at])
    # The services do not inherit the manager's socket.
    log = (stack.state_dir / "logs" / "slow.log").read_text()
    assert " up None" in log, log


def test_watchdog_pings_at_half_the_interval(make_stack: Any, systemd: FakeSystemd) -> None:
    start(make_stack, systemd, two_services(slow_after=0.1))
    systemd.wait_for("READY", "1")
    time.sleep(2.0)
    pings = [t for t, m in systemd.received() if m.get("WATCHDOG") == "1"]
    window = [t for t in pings if t >= pings[-1] - 1.6]
    gaps = [b - a for a, b in itertools.pairwise(window)]
    assert len(gaps) >= 5, pings
    assert 0.15 <= statistics.median(gaps) <= 0.3, gaps  # half of 0.4 s
    assert max(gaps) < 0.6, gaps


def test_status_names_a_service_in_backoff(make_stack: Any, systemd: FakeSystemd) -> None:
    flaky = service("flaky", py("raise SystemExit(1)"), readiness={"log": {"pattern": "never"}},
                    restart={"backoff": {"base_ms": 4000, "max_ms": 4000}})
    start(make_stack, systemd, config(service("ok", py("import time; time.sleep(600)")), flaky))
    index = systemd.wait_for("STATUS", "1/2 ready; flaky: backoff 4 s")
    assert not any("READY" in m for _, m in systemd.received()[: index + 1])


def test_stopping_at_sigterm(make_stack: Any, systemd: FakeSystemd) -> None:
    stack = start(make_stack, systemd, two_services(slow_after=0.1))
    systemd.wait_for("READY", "1")
    assert stack.stop() == 0
    index = systemd.wait_for("STOPPING", "1", timeout=5)
    assert all("READY" not in m for _, m in systemd.received()[index:])


def test_stopping_comes_before_the_services_stop(make_stack: Any, systemd: FakeSystemd) -> None:
    """The ``shutdown_started`` event (SIGTERM, ``down``) sends STOPPING=1 before anything stops."""
    lingering = py("""
        import signal, time
        signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1.5), exit(0)))
        print("up", flush=True)
        time.sleep(600)
    """)
    stack = start(make_stack, systemd, config(
        service("lingering", lingering, readiness={"log": {"pattern": "^up"}}, stop={"grace_s": 5})
    ))
    systemd.wait_for("READY", "1")
    assert stack.process is not None
    stack.process.terminate()
    index = systemd.wait_for("STOPPING", "1", timeout=10)
    assert stack.stop() == 0
    stopped = next(e for e in stack.events() if e["event"] == "stopped" and e["service"] == "lingering")
    assert systemd.received()[index][0] < seconds(stopped["ts"]) - 1.0  # it lingered 1.5 s after


def test_reloading_then_ready_once_the_new_config_runs(make_stack: Any, systemd: FakeSystemd) -> None:
    stack = start(make_stack, systemd, two_services(slow_after=0.1))
    systemd.wait_for("READY", "1")
    mark = len(systemd.received())
    stack.write_config(two_services(slow_after=1.0), keep_name=True)
    assert stack.cli("reload").returncode == 0
    reloading = systemd.wait_for("RELOADING", "1", after=mark)
    assert int(systemd.received()[reloading][1]["MONOTONIC_USEC"]) > 0
    ready = systemd.wait_for("READY", "1", after=reloading)
    spawned = [e for e in stack.events() if e["event"] == "ready" and e["service"] == "slow"]
    assert len(spawned) == 2, "the changed service was restarted"
    assert systemd.received()[ready][0] >= seconds(spawned[-1]["ts"]) - 0.002

    # A rejected reload: RELOADING=1 and READY=1 at once, nothing changed.
    mark = len(systemd.received())
    stack.write_config("version: 1\nservices: [{id: x}]\n", keep_name=True)
    assert stack.cli("reload").returncode != 0
    reloading = systemd.wait_for("RELOADING", "1", after=mark)
    ready = systemd.wait_for("READY", "1", after=reloading, timeout=5)
    assert systemd.received()[ready][1]["STATUS"].startswith("reload rejected")


def test_a_reload_of_probes_only_ends_with_ready(make_stack: Any, systemd: FakeSystemd) -> None:
    """A change of probes applies without a restart (no state event): READY=1 all the same."""
    stack = start(make_stack, systemd, two_services(slow_after=0.1))
    systemd.wait_for("READY", "1")
    mark = len(systemd.received())
    stack.write_config(two_services(slow_after=0.1, timeout_s=25), keep_name=True)
    assert stack.cli("reload").returncode == 0
    reloading = systemd.wait_for("RELOADING", "1", after=mark)
    ready = systemd.wait_for("READY", "1", after=reloading, timeout=5)
    assert systemd.received()[ready][1]["STATUS"] == "2/2 ready"
    assert stack.count("spawned", "slow") == 1


def test_stopping_at_down(make_stack: Any, systemd: FakeSystemd) -> None:
    stack = start(make_stack, systemd, two_services(slow_after=0.1))
    systemd.wait_for("READY", "1")
    assert stack.cli("down").returncode == 0
    systemd.wait_for("STOPPING", "1", timeout=5)
    assert stack.process is not None and stack.process.wait(timeout=30) == 0
    stack.process = None
