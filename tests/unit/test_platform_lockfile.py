"""Pure decisions about lock files and private paths: a legacy lock's PID, which lease or
state directory and file are refused, the error digest and the connection cap."""

from __future__ import annotations

import errno
import logging
import os
import stat

import pytest

from mpsv3.control.server import default_max_connections
from mpsv3.engine.legacy_locks import lock_pid
from mpsv3.platform.dirs import dir_problem, file_problem
from mpsv3.platform.pressure import MAX_KINDS, ErrorDigest, is_exhaustion


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


# ------------------------------------------------- private paths: what is refused, and why

def stat_of(mode: int, uid: int = 1000, nlink: int = 1) -> os.stat_result:
    return os.stat_result((mode, 1, 1, nlink, uid, uid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "expected"),
    [
        (stat.S_IFDIR | 0o700, 1000, None),
        (stat.S_IFDIR | 0o755, 1000, None),  # readable: tightened, not refused
        (stat.S_IFDIR | 0o775, 1000, "writable by other users (mode 0775)"),
        (stat.S_IFDIR | 0o1777, 1000, "writable by other users (mode 1777)"),
        (stat.S_IFDIR | 0o700, 4242, "owned by uid 4242"),
        (stat.S_IFLNK | 0o777, 1000, "it is a symlink"),
        (stat.S_IFREG | 0o600, 1000, "it is not a directory"),
    ],
)
def test_dir_problem(mode: int, uid: int, expected: str | None) -> None:
    problem = dir_problem(stat_of(mode, uid), 1000)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_dir_problem_names_both_owners_and_the_remedy() -> None:
    problem = dir_problem(stat_of(stat.S_IFDIR | 0o700, uid=0), 4242)
    assert problem == (
        "it is owned by uid 0 (root), not by uid 4242; another user may have prepared it: "
        "remove it"
    )


def test_without_a_uid_only_the_type_is_checked() -> None:  # Windows
    assert dir_problem(stat_of(stat.S_IFDIR | 0o777, uid=5), None) is None
    assert dir_problem(stat_of(stat.S_IFLNK | 0o777), None) is not None
    assert file_problem(stat_of(stat.S_IFREG | 0o666, uid=5, nlink=3), None) is None


@pytest.mark.parametrize(
    ("mode", "uid", "nlink", "expected"),
    [
        (stat.S_IFREG | 0o600, 1000, 1, None),
        (stat.S_IFREG | 0o644, 1000, 1, None),  # tightened by the opener, not refused
        (stat.S_IFREG | 0o600, 1000, 2, "it has 2 hard links"),
        (stat.S_IFREG | 0o600, 4242, 1, "owned by uid 4242"),
        (stat.S_IFIFO | 0o600, 1000, 1, "not a regular file"),
        (stat.S_IFDIR | 0o700, 1000, 1, "not a regular file"),
    ],
)
def test_file_problem(mode: int, uid: int, nlink: int, expected: str | None) -> None:
    problem = file_problem(stat_of(mode, uid, nlink), 1000)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


# ------------------------------------------------------- resource pressure: the digest


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def digest_with_records() -> tuple[ErrorDigest, FakeClock, list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger(f"test.digest.{len(lines)}.{id(lines)}")
    logger.propagate = False
    logger.addHandler(Collect())
    logger.setLevel(logging.DEBUG)
    clock = FakeClock()
    return ErrorDigest(logger, every_s=60.0, clock=clock), clock, lines


def test_the_digest_logs_a_kind_once_then_counts() -> None:
    digest, clock, lines = digest_with_records()
    assert digest.report("accept-EMFILE", "accept failed")
    for _ in range(10_000):
        assert not digest.report("accept-EMFILE", "accept failed")
        clock.now += 0.001  # ten seconds in all
    assert digest.report("idle", "a client sent nothing")
    assert lines == [
        "accept failed (repeats are counted: at most one line a 60s)",
        "a client sent nothing (repeats are counted: at most one line a 60s)",
    ]
    clock.now += 50.0
    assert digest.report("accept-EMFILE", "accept failed")  # 60 s after its first line
    assert lines[-1] == "accept failed (10001 times since the last line)"
    assert not digest.report("accept-EMFILE", "accept failed")
    assert digest.counts() == {"accept-EMFILE": 10_003, "idle": 1}


def test_the_digest_table_is_bounded() -> None:
    digest, _clock, lines = digest_with_records()
    for index in range(MAX_KINDS + 100):
        digest.report(f"kind-{index}", f"error {index}")
    assert len(digest.counts()) == MAX_KINDS + 1  # the overflow shares "other"
    assert digest.counts()["other"] == 100
    assert len(lines) == MAX_KINDS + 1


def test_exhaustion_errors_are_ours_not_the_peers() -> None:
    assert is_exhaustion(OSError(errno.EMFILE, "Too many open files"))
    assert is_exhaustion(OSError(errno.ENFILE, "Too many open files in system"))
    assert not is_exhaustion(OSError(errno.ECONNRESET, "reset"))
    assert not is_exhaustion(ValueError("x"))


@pytest.mark.parametrize(
    ("fd_limit", "cap"), [(None, 64), (20000, 64), (256, 64), (100, 25), (16, 4), (3, 4)]
)
def test_the_connection_cap_leaves_most_descriptors_to_the_services(
    fd_limit: int | None, cap: int
) -> None:
    assert default_max_connections(fd_limit) == cap
