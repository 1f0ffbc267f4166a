"""The pure halves of the notify protocol: the ``STATUS=`` wording and the watchdog interval."""

from __future__ import annotations

import os

import pytest

from mpsv3.engine.sd_notify import Entry, SystemdNotifier, status_text, watchdog_interval


def test_status_counts_ready_and_names_the_trouble_first() -> None:
    entries = [
        Entry("db", "ready"), Entry("migrate", "completed"), Entry("api", "starting"),
        Entry("ws_api", "backoff", 4.2), Entry("worker-1", "unhealthy"), Entry("cache", "ready"),
        Entry("mail", "pending"),
    ]
    assert status_text(entries) == "4/7 ready; ws_api: backoff 4 s; api: starting; mail: pending"


def test_status_counts_what_it_does_not_name() -> None:
    entries = [Entry(f"s{i}", "pending") for i in range(6)]
    assert status_text(entries) == "0/6 ready; s0: pending; s1: pending; s2: pending; 3 more not ready"
    assert status_text([Entry("a", "quarantined"), Entry("b", "backoff", None)]) == (
        "0/2 ready; a: quarantined; b: backoff"
    )
    assert status_text([]) == "0/0 ready"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "100"}, 0.2),  # the keeper's PID
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "200"}, 0.2),  # ours
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "300"}, None),  # someone else's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ, [200, 100]) == expected


@pytest.mark.skipif(os.name != "posix", reason="AF_UNIX datagrams")
def test_a_missing_manager_is_not_an_error(tmp_path: object) -> None:
    notifier = SystemdNotifier(f"{tmp_path}/nobody.sock")
    assert notifier.send("READY=1") is False
    assert notifier.failures == 1
    notifier.close()
    abstract = SystemdNotifier("@mpsv3-test-nobody")
    assert abstract.address.startswith("\0")
    assert abstract.send("WATCHDOG=1") is False
    abstract.close()
