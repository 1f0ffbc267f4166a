"""The singleton lease, and the cleanup of lock files left by an older supervisor.

Why here: ``up`` needs both at start, in this order: take the OS-level lease (from the
platform layer, which owns flock / named mutex), then judge the legacy lock files listed in
the config. A legacy lock never decides whether we run; it is only removed when stale, and
a live process named in it is reported, never killed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mpsv3._lazy import lazy_module
from mpsv3.platform import describe_process

if TYPE_CHECKING:
    import psutil
else:
    psutil = lazy_module("psutil")

__all__ = ["LegacyLockVerdict", "clean_legacy_locks", "judge_legacy_lock"]

#: psutil derives start times from the boot time, which the kernel reports in whole
#: seconds: a process that wrote its lock right after starting may appear to have started
#: up to a second after the file's mtime. Only a later start than this means a reused PID.
START_TIME_SLACK_S = 1.0


@dataclass(frozen=True)
class LegacyLockVerdict:
    """What was decided about one legacy lock file, and why (for the event and the log)."""

    path: Path
    pid: int | None
    action: Literal["removed", "kept"]
    reason: str


def lock_pid(text: str) -> int | None:
    """The PID named by a lock file: JSON ``{"pid": N}``, else the first integer in the text.

    A JSON object without a usable ``pid`` names no PID (its numbers are something else).
    """
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        value = data.get("pid")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        return None
    match = re.search(r"\d+", text)
    if match is None:
        return None
    pid = int(match.group())
    return pid if pid > 0 else None


def _stale_reason(pid: int | None, mtime: float) -> str | None:
    """Why the lock is stale, or None when a live process that predates it holds it."""
    if pid is None:
        return "no PID in it"
    if pid == os.getpid():
        return f"PID {pid} is this supervisor"
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"PID {pid} has exited (zombie)"
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return f"PID {pid} is not running"
    except psutil.Error:
        return None
    if started > mtime + START_TIME_SLACK_S:
        return f"PID {pid} was reused by a process started after the lock ({describe_process(pid)})"
    return None


def judge_legacy_lock(path: Path) -> LegacyLockVerdict:
    """Remove ``path`` if stale, else keep it; never raises, never signals anything."""
    try:
        mtime = path.stat().st_mtime
        text = path.read_text(errors="replace")
    except OSError as exc:
        return LegacyLockVerdict(path, None, "kept", f"cannot read it: {exc.strerror or exc}")
    pid = lock_pid(text)
    reason = _stale_reason(pid, mtime)
    if reason is None:
        alive = f"PID {pid} is alive ({describe_process(pid)})" if pid else "unknown holder"
        return LegacyLockVerdict(path, pid, "kept", alive)
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        return LegacyLockVerdict(
            path, pid, "kept", f"{reason}, but it cannot be removed: {exc.strerror or exc}"
        )
    return LegacyLockVerdict(path, pid, "removed", reason)


def _matches(root: Path, pattern: str) -> list[Path]:
    try:
        if Path(pattern).is_absolute():
            anchor = Path(Path(pattern).anchor)
            return sorted(anchor.glob(str(Path(pattern).relative_to(anchor))))
        return sorted(root.glob(pattern))
    except (ValueError, NotImplementedError, OSError):
        return []


def clean_legacy_locks(root: Path, patterns: Sequence[str]) -> list[LegacyLockVerdict]:
    """Judge every file matching ``patterns`` (globs relative to ``root``, ``**`` allowed).

    A lock is removed when it names no PID, a dead or zombie PID, this process, or a PID
    reused by a process that started after the file was written. It is kept (and nothing is
    killed) when a live process that started before the file names it, or when it cannot be
    read. Each file is judged once, in pattern order.

    Returns:
        One verdict per file found.
    """
    seen: set[Path] = set()
    verdicts = []
    for pattern in patterns:
        for path in _matches(root, pattern):
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            verdicts.append(judge_legacy_lock(path))
    return verdicts
