"""Regression: redis-server empties its environment block (process title), hiding our marker;
a leader recorded by our previous run with the same pid and start time is still reclaimed."""

from __future__ import annotations

import subprocess

import psutil

from mpsv3.platform import ProcessRecord, find_leftovers


def test_recorded_leader_with_an_empty_environment_is_ours() -> None:
    blank = subprocess.Popen(["/bin/sleep", "60"], env={})
    stranger = subprocess.Popen(["/bin/sleep", "60"], env={"HOME": "/tmp"})
    try:
        records = [
            ProcessRecord("db", p.pid, p.pid, psutil.Process(p.pid).create_time()) for p in (blank, stranger)
        ]
        found = {p.pid for p in find_leftovers("empty-env-test", records)}
        assert blank.pid in found
        assert stranger.pid not in found  # it has an environment, and not our marker
        wrong_time = [ProcessRecord("db", blank.pid, blank.pid, records[0].create_time - 100)]
        assert find_leftovers("empty-env-test", wrong_time) == []
    finally:
        for proc in (blank, stranger):
            proc.kill()
            proc.wait()
