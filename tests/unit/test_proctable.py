"""The Linux descendant table: environment parsing and the indexes a stop relies on."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from mpsv3.platform.proctable import Entry, ProcTable, _value, read_table

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.mark.parametrize(
    ("environ", "key", "expected"),
    [
        (b"A=1\0MPSV3_INSTANCE=x\0MPSV3_SERVICE=api\0", "MPSV3_INSTANCE", b"x"),
        (b"A=1\0MPSV3_INSTANCE=x\0MPSV3_SERVICE=api\0", "MPSV3_SERVICE", b"api"),
        (b"MPSV3_INSTANCE=first\0", "MPSV3_INSTANCE", b"first"),
        (b"XMPSV3_INSTANCE=no\0", "MPSV3_INSTANCE", None),
        (b"A=1\0", "MPSV3_INSTANCE", None),
        (b"MPSV3_INSTANCE=last", "MPSV3_INSTANCE", b"last"),
        (b"MPSV3_INSTANCE=\0", "MPSV3_INSTANCE", b""),
    ],
)
def test_value_of_a_key_in_a_raw_environment(environ: bytes, key: str, expected: bytes | None) -> None:
    assert _value(environ, key) == expected


def test_groups_and_descendants_are_indexed() -> None:
    table = ProcTable(
        {
            10: Entry(10, 1, 10, False),
            11: Entry(11, 10, 10, False),
            12: Entry(12, 11, 12, False),  # escaped its group
            13: Entry(13, 10, 10, True),  # zombie
            20: Entry(20, 1, 20, False),
        }
    )
    assert sorted(table.group(10)) == [10, 11]
    assert table.descendants(10) == {11, 12, 13}
    assert table.descendants(20) == set()


def test_read_table_finds_a_child_and_its_marker() -> None:
    env = dict(os.environ, MPSV3_INSTANCE="proctable-test", MPSV3_SERVICE="svc")
    child = subprocess.Popen(["sleep", "30"], env=env)
    try:
        deadline = time.monotonic() + 5
        while True:  # on a loaded machine the new process's environ may read empty at first
            table = read_table(os.getpid())
            found = table.marked("MPSV3_INSTANCE", "proctable-test", "MPSV3_SERVICE", "svc")
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert child.pid in table.entries
        assert found == [child.pid]
        assert table.marked("MPSV3_INSTANCE", "proctable-test", "MPSV3_SERVICE", "other") == []
    finally:
        child.kill()
        child.wait()
