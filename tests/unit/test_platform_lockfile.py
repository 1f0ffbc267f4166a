"""Reading the PID out of a legacy lock file (pure parsing)."""

from __future__ import annotations

import pytest

from mpsv3.engine.legacy_locks import lock_pid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4242", 4242),
        ("4242\n", 4242),
        ("pid=4242 started 2024-01-01", 4242),
        ('{"pid": 6924, "started": 1}', 6924),
        ('{"started": 1, "pid": 6924}', 6924),
        ('{"host": "x", "port": 8000}', None),
        ("", None),
        ("garbage", None),
        ("0", None),
        ('{"pid": true}', None),
    ],
)
def test_lock_pid(text: str, expected: int | None) -> None:
    assert lock_pid(text) == expected
