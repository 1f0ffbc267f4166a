"""The watcher's pure parts with a fake clock: ``Debouncer`` and ``WatchTable``."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpsv3.policy.watching import DEBOUNCE_CAP_FACTOR, ChangeBatch, Debouncer, WatchTable


def test_burst_of_fifty_events_is_one_batch() -> None:
    debouncer = Debouncer({"api": 200})
    for i in range(50):  # 50 events within one second, 20 ms apart
        now = 100.0 + i * 0.02
        debouncer.add("api", f"/p/f{i % 5}.py", now)
        assert debouncer.due(now) == []
    last = 100.0 + 49 * 0.02
    assert debouncer.next_deadline() == pytest.approx(last + 0.2)
    assert debouncer.due(last + 0.19) == []
    assert debouncer.due(last + 0.2) == [ChangeBatch("api", tuple(f"/p/f{i}.py" for i in range(5)))]
    assert debouncer.due(last + 10) == []
    assert debouncer.next_deadline() is None


def test_bursts_further_apart_than_debounce_are_two_batches() -> None:
    debouncer = Debouncer({"api": 100})
    debouncer.add("api", "/p/a.py", 0.0)
    debouncer.add("api", "/p/a.py", 0.05)
    assert debouncer.due(0.16) == [ChangeBatch("api", ("/p/a.py",))]
    debouncer.add("api", "/p/b.py", 0.5)
    assert debouncer.due(0.55) == []
    assert debouncer.due(0.6) == [ChangeBatch("api", ("/p/b.py",))]


def test_never_ending_stream_fires_at_the_cap() -> None:
    debouncer = Debouncer({"api": 100})
    cap = DEBOUNCE_CAP_FACTOR * 0.1
    fired: list[float] = []
    now = 0.0
    while now < 2.5:  # an event every 50 ms, never quiet for 100 ms
        debouncer.add("api", "/p/log.txt", now)
        if debouncer.due(now):
            fired.append(now)
        now = round(now + 0.05, 6)
    assert fired == [pytest.approx(cap), pytest.approx(2 * cap + 0.05)]


def test_services_debounce_independently() -> None:
    debouncer = Debouncer({"api": 100, "web": 500})
    debouncer.add("web", "/p/web/a.js", 0.0)
    debouncer.add("api", "/p/engine/x.py", 0.0)
    debouncer.add("ghost", "/p/x", 0.0)  # not configured: ignored
    assert debouncer.next_deadline() == pytest.approx(0.1)
    assert debouncer.due(0.1) == [ChangeBatch("api", ("/p/engine/x.py",))]
    assert debouncer.next_deadline() == pytest.approx(0.5)
    assert debouncer.due(0.5) == [ChangeBatch("web", ("/p/web/a.js",))]


def test_zero_debounce_is_due_at_once() -> None:
    debouncer = Debouncer({"api": 0})
    debouncer.add("api", "/p/x.py", 3.0)
    assert debouncer.due(3.0) == [ChangeBatch("api", ("/p/x.py",))]


def test_update_drops_removed_services_and_applies_new_periods() -> None:
    debouncer = Debouncer({"api": 100, "web": 100})
    debouncer.add("api", "/p/x.py", 0.0)
    debouncer.add("web", "/p/y.js", 0.0)
    debouncer.update({"api": 300})
    assert debouncer.due(0.2) == []
    assert debouncer.due(0.3) == [ChangeBatch("api", ("/p/x.py",))]
    assert debouncer.next_deadline() is None


@pytest.fixture
def table(tmp_path: Path) -> WatchTable:
    return WatchTable(
        tmp_path,
        {"api": ["engine/**/*.py"], "web": ["web/**"], "all": ["*.py", "!tests/"]},
        [Path(".mpsv3")],
    )


@pytest.mark.parametrize(
    ("relpath", "services"),
    [
        ("engine/consciousness_engine_v2.py", ["all", "api"]),
        ("engine/deep/m.py", ["all", "api"]),
        ("web/index.html", ["web"]),
        ("web/app.py", ["all", "web"]),
        ("tests/test_x.py", []),
        ("engine/x.pyc", []),
        ("engine/__pycache__/a.py", []),
        ("web/node_modules/x.js", []),
        (".mpsv3/logs/api.log", []),
        (".mpsv3/x.py", []),
        ("README.md", []),
    ],
)
def test_affected_services(
    table: WatchTable, tmp_path: Path, relpath: str, services: list[str]
) -> None:
    assert table.affected_services(str(tmp_path / relpath)) == services


def test_paths_outside_the_root_do_not_match(table: WatchTable, tmp_path: Path) -> None:
    assert table.affected_services(str(tmp_path.parent / "x.py")) == []


def test_watch_roots_are_resolved_against_the_root(table: WatchTable, tmp_path: Path) -> None:
    assert table.watch_roots() == [tmp_path, tmp_path / "engine", tmp_path / "web"]
