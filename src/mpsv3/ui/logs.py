"""The UI's log pane source: one service's log, or every log merged, followed live.

Why not ``LogFollower.follow``: that blocks a thread on file notifications; the UI already
wakes up several times a second, so it asks each follower for what is new
(:meth:`LogFollower.read_new` never blocks) and hands the lines to the pane. Rotation and a
restarted service's new file are handled by the follower.

Lines are made fit for a terminal cell: the log files' stamp becomes the local time
(``15:04:05``), escape sequences and other control characters a service printed are
removed. In the merged view each line carries its source and the lines of one poll are put
in time order by their stamps. Owned by the UI's event loop; no lock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path

from mpsv3.cli.logview import LogFollower, log_path
from mpsv3.engine.console import STAMP_LEN, clock_time, is_stamped

__all__ = ["SUPERVISOR_LOG", "LogSource", "display_line"]

#: The supervisor's own log, shown in the merged view under this name.
SUPERVISOR_LOG = "mpsv3"
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f]")


def display_line(line: str) -> tuple[str, str]:
    """(the line's sort key, the line as shown): the stamp shortened, control codes removed."""
    key = ""
    if is_stamped(line):
        key = line[: STAMP_LEN - 1]
        line = f"{clock_time(line[:19])} {line[STAMP_LEN:]}"
    return key, _CONTROL.sub("", line.replace("\t", "    "))


class LogSource:
    """Follows the logs of ``ids`` under ``state_dir/logs``: one id, or several merged.

    Args:
        state_dir: the instance's state dir.
        ids: the services to follow (``mpsv3`` names the supervisor's own log); with more
            than one, each line is prefixed with its source.
    """

    def __init__(self, state_dir: Path, ids: Iterable[str]) -> None:
        self._state_dir = Path(state_dir)
        self._followers: dict[str, LogFollower] = {}
        self._last_key: dict[str, str] = {}
        self.ids: tuple[str, ...] = ()
        self._merged = False
        self.set_ids(ids)

    @property
    def merged(self) -> bool:
        return self._merged

    def set_ids(self, ids: Iterable[str]) -> None:
        """Follow these ids from now on (new ones from their end, gone ones closed)."""
        wanted = list(dict.fromkeys(ids))
        for sid in list(self._followers):
            if sid not in wanted:
                self._followers.pop(sid).close()
        for sid in wanted:
            if sid not in self._followers:
                self._followers[sid] = LogFollower(self._path(sid))
        self.ids = tuple(wanted)
        self._merged = len(wanted) > 1

    def _path(self, sid: str) -> Path:
        return log_path(self._state_dir, sid)

    def tail(self, count: int) -> list[str]:
        """The last ``count`` lines (of each log, merged in time order) before following."""
        batches = [(sid, follower.tail(count)) for sid, follower in self._followers.items()]
        return self._collect(batches, "")[-count:]

    def read_new(self) -> list[str]:
        """Every line written since the last call, ready to show."""
        batches = [(sid, follower.read_new()) for sid, follower in self._followers.items()]
        if not any(lines for _, lines in batches):
            return []
        now = time.strftime("%Y-%m-%dT%H:%M:%S.999Z", time.gmtime())
        return self._collect(batches, now)

    def _collect(self, batches: list[tuple[str, list[str]]], unknown: str) -> list[str]:
        """Lines ready to show; merged ones in stamp order (a line with no stamp of its own
        or before it in its log takes ``unknown``: old for a tail, now for new lines)."""
        keyed: list[tuple[str, str]] = []
        width = max((len(s) for s in self.ids), default=0)
        for sid, lines in batches:
            for raw in lines:
                key, shown = display_line(raw)
                key = key or self._last_key.get(sid) or unknown
                self._last_key[sid] = key
                keyed.append((key, f"{sid:<{width}} │ {shown}" if self._merged else shown))
        if self._merged:
            keyed.sort(key=lambda item: item[0])  # stable: one source's lines keep their order
        return [shown for _, shown in keyed]

    def close(self) -> None:
        for follower in self._followers.values():
            follower.close()
        self._followers.clear()
