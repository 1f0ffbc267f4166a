"""The pure half of the file watcher: which services a change concerns, and when to act.

Why pure: "does this save restart ws_api?" and "is a burst of saves one restart?" are decided
here from paths and timestamps given by the caller, so they are unit-tested without a
filesystem or a clock. ``engine/watcher.py`` feeds them the OS's notifications.

- ``WatchTable`` answers ``affected_services(path)`` and lists the directories to watch;
- ``Debouncer`` turns timestamped changes into ``ChangeBatch`` values (trailing debounce with a
  cap of ``DEBOUNCE_CAP_FACTOR`` x the debounce, so an endless stream of writes still fires).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpsv3.policy.globs import DEFAULT_EXCLUDES, GlobSet, normalize_relpath

DEBOUNCE_CAP_FACTOR = 10
"""A burst that never goes quiet is delivered this many debounce periods after it began."""


@dataclass(frozen=True)
class ChangeBatch:
    """Files that changed for one service, delivered once per debounced burst."""

    service: str
    paths: tuple[str, ...]  # absolute paths, sorted, deduplicated


class Debouncer:
    """Per-service trailing debounce over a caller-supplied clock; pure, owned by one task.

    A service's burst is due when no change arrived for its debounce period, or when the burst
    is ``DEBOUNCE_CAP_FACTOR`` debounce periods old, whichever comes first.

    Args:
        debounce_ms: the debounce period of each service.
    """

    def __init__(self, debounce_ms: Mapping[str, int]) -> None:
        self._delay: dict[str, float] = {}
        self._pending: dict[str, tuple[float, float, set[str]]] = {}  # first, last, paths
        self.update(debounce_ms)

    def update(self, debounce_ms: Mapping[str, int]) -> None:
        """New periods (after a reload); pending changes of removed services are dropped."""
        self._delay = {service: ms / 1000.0 for service, ms in debounce_ms.items()}
        self._pending = {s: p for s, p in self._pending.items() if s in self._delay}

    def add(self, service: str, path: str, now: float) -> None:
        """Record that ``path`` changed for ``service`` at ``now``; unknown services are ignored."""
        if service not in self._delay:
            return
        first, _, paths = self._pending.get(service, (now, now, set()))
        paths.add(path)
        self._pending[service] = (first, now, paths)

    def _deadline(self, service: str) -> float:
        first, last, _ = self._pending[service]
        delay = self._delay[service]
        return min(last + delay, first + DEBOUNCE_CAP_FACTOR * delay)

    def next_deadline(self) -> float | None:
        """When the next batch is due, or ``None`` when nothing is pending."""
        return min((self._deadline(s) for s in self._pending), default=None)

    def due(self, now: float) -> list[ChangeBatch]:
        """Remove and return the batches due at ``now``, ordered by service id."""
        ready = sorted(s for s in self._pending if self._deadline(s) <= now)
        return [ChangeBatch(s, tuple(sorted(self._pending.pop(s)[2]))) for s in ready]


class WatchTable:
    """Which services a changed path concerns, and which directories must be watched; pure.

    Immutable; the watcher swaps in a new table on ``update()``. Its thread reads
    ``is_excluded`` of whichever table is current, which is safe because nothing mutates one.

    Args:
        root: the config file's folder, already resolved (paths are compared as strings).
        services: service id -> its ``watch.paths`` patterns.
        excluded_dirs: directories whose changes never count (the supervisor's ``state_dir``).

    Raises:
        ValueError: a bad pattern (config checks report these before a table is built).
    """

    def __init__(
        self, root: Path, services: Mapping[str, Sequence[str]], excluded_dirs: Sequence[Path]
    ) -> None:
        self.root = root
        self._globs = {service: GlobSet(patterns) for service, patterns in services.items()}
        self._defaults = GlobSet(DEFAULT_EXCLUDES)
        self._excluded = tuple(os.path.normpath(root / d) for d in excluded_dirs)

    def _relative(self, path: str) -> str:
        """``path`` relative to the root with ``/``; ``""`` (matches nothing) on another drive."""
        try:
            return os.path.relpath(os.path.normpath(path), self.root).replace(os.sep, "/")
        except ValueError:
            return ""

    def is_excluded(self, path: str) -> bool:
        """Default excludes and excluded directories; these never reach any service."""
        normal = os.path.normpath(path)
        if any(normal == d or normal.startswith(d + os.sep) for d in self._excluded):
            return True
        _, inner = normalize_relpath(self._relative(path))
        return self._defaults.matches(inner)

    def affected_services(self, path: str) -> list[str]:
        """Sorted ids of the services whose patterns select the absolute ``path``."""
        if self.is_excluded(path):
            return []
        relative = self._relative(path)
        return sorted(s for s, globs in self._globs.items() if globs.matches(relative))

    def watch_roots(self) -> list[Path]:
        """The static prefix of every include pattern, resolved against the root; sorted, unique."""
        prefixes = {p for globs in self._globs.values() for p in globs.roots()}
        return sorted({Path(os.path.normpath(self.root / p)) for p in prefixes})
