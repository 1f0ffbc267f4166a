"""The runtime state file tells the next ``up`` whether the previous run ended cleanly."""

from __future__ import annotations

import json
from pathlib import Path

from mpsv3.engine.run_record import RunRecord


def test_no_file_means_a_clean_end_and_nothing_to_scan(tmp_path: Path) -> None:
    assert RunRecord(tmp_path / "state.json", "demo").load_previous() is None


def test_a_begun_record_means_an_unclean_end_until_cleared(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    record = RunRecord(tmp_path / "run" / "state.json", "demo")
    record.cgroup_base = "/sys/fs/cgroup/mpsv3.demo"
    record.begin()
    assert json.loads(record.path.read_text())["cgroups"] == ["/sys/fs/cgroup/mpsv3.demo"]
    assert RunRecord(record.path, "demo").load_previous() == []  # killed before any spawn
    record.clear()
    assert RunRecord(record.path, "demo").load_previous() is None


def test_an_unreadable_or_foreign_record_still_counts_as_an_unclean_end(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert RunRecord(path, "demo").load_previous() == []
    path.write_text(json.dumps({"instance": "other", "services": {"a": {"pid": 1, "create_time": 0}}}))
    assert RunRecord(path, "demo").load_previous() == []


def test_recorded_services_come_back_as_process_records(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"instance": "demo", "services": {"db": {
        "pid": 42, "pgid": 42, "create_time": 1.5, "stop_signal": "SIGINT", "grace_s": 30,
        "cgroup": "/sys/fs/cgroup/mpsv3.demo/svc.db"}}}))
    [db] = RunRecord(path, "demo").load_previous() or []
    assert (db.service, db.pid, db.pgid, db.stop_signal, db.grace_s) == ("db", 42, 42, "SIGINT", 30.0)
    assert db.cgroup == "/sys/fs/cgroup/mpsv3.demo/svc.db"
