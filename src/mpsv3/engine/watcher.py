"""The one file watcher of the stack: OS notifications -> services -> debounced batches.

Owned by the supervisor, which runs ``FileWatcher.run()`` as one task for its whole life and
calls ``update()`` after a config reload. The pure parts are separate so they are unit-tested
without a filesystem or a clock:

- ``WatchTable`` answers ``affected_services(path)`` and lists the directories to watch;
- ``Debouncer`` turns timestamped changes into ``ChangeBatch`` values (trailing debounce with a
  cap of ``DEBOUNCE_CAP_FACTOR`` x the debounce, so an endless stream of writes still fires).

The I/O part runs watchfiles' ``RustNotify`` (inotify, FSEvents, ReadDirectoryChangesW) on
its own thread, one "session" per set of watch roots; the thread only reads the OS and posts
raw changes to the event loop, where all state lives. Timers are loop timers (``call_at``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol

from watchfiles._rust_notify import RustNotify

from mpsv3.policy.watching import ChangeBatch, Debouncer, WatchTable

__all__ = [
    "ChangeBatch",
    "FileWatcher",
    "Notifier",
    "NotifierFactory",
]


POLL_DELAY_MS = 300
_RUST_DEBOUNCE_MS = 100  # RustNotify groups raw events this long at most before handing them over
_RUST_STEP_MS = 50  # how often the watcher thread checks its stop flag
_WALK_LIMIT = 5000  # entries scanned in a directory that appeared (see _Session._walk_new_dirs)
_ADDED = 1  # watchfiles.Change.added
_DELETED = 3  # watchfiles.Change.deleted
_RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class Notifier(Protocol):
    """What the watcher thread needs of ``RustNotify``; tests substitute a failing one."""

    def watch(
        self, debounce_ms: int, step_ms: int, timeout_ms: int, stop_event: threading.Event | None
    ) -> set[tuple[int, str]] | Literal["signal", "stop", "timeout"]: ...

    def close(self) -> None: ...


NotifierFactory = Callable[[list[str], bool, bool, int, bool, bool], Notifier]
"""``RustNotify``'s constructor: (paths, debug, force_polling, poll_delay_ms, recursive,
ignore_permission_denied)."""


def _covering_dirs(roots: Iterable[Path]) -> list[Path]:
    """The directories to watch recursively so that every root is covered.

    A missing root is covered by its nearest existing ancestor, so it is seen when it appears
    (``_Session._walk_new_dirs`` catches files written into it right away); a directory inside
    another watched one is dropped, since the outer watch is recursive. Touches the disk.
    """
    chosen: set[Path] = set()
    for root in roots:
        current = root
        while not current.exists() and current.parent != current:
            current = current.parent
        chosen.add(current)
    return [d for d in sorted(chosen) if not any(d != o and d.is_relative_to(o) for o in chosen)]


class _Session:
    """One ``RustNotify`` on its own thread for a fixed set of directories.

    The thread owns the ``RustNotify`` (creates, reads, closes it); it reports back only
    through ``loop.call_soon_threadsafe``. ``stop()`` makes it return within ``_RUST_STEP_MS``.
    """

    def __init__(
        self,
        watcher: FileWatcher,
        dirs: Sequence[Path],
        polling: bool,
    ) -> None:
        self.dirs = list(dirs)
        self.polling = polling
        self._watcher = watcher
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._main, name="mpsv3-file-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _post(self, callback: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed before the thread ended
            self._loop.call_soon_threadsafe(callback, *args)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _main(self) -> None:
        try:
            paths = [str(d) for d in self.dirs]
            notify = self._watcher._notifier(paths, False, self.polling, POLL_DELAY_MS, True, True)
        except Exception as err:
            self._post(self._watcher._session_failed, self, err)
            self._post(self._finish)
            return
        try:
            self._post(self._watcher._session_armed, self)
            while not self._stop.is_set():
                result = notify.watch(_RUST_DEBOUNCE_MS, _RUST_STEP_MS, 0, self._stop)
                if isinstance(result, set):
                    changes = self._walk_new_dirs(result)
                    self._post(self._watcher._session_changes, self, changes)
        except Exception as err:
            self._post(self._watcher._session_failed, self, err)
        finally:
            notify.close()
            self._post(self._finish)

    def _walk_new_dirs(self, changes: set[tuple[int, str]]) -> list[tuple[int, str]]:
        """Add the files already inside a directory that just appeared.

        The OS watch on a new directory is armed only after its creation is seen, so files
        written right after ``mkdir`` would be missed; scanning the new directory closes that gap.
        Runs on the watcher thread (disk I/O stays off the event loop).
        """
        found = list(changes)
        budget = _WALK_LIMIT
        for change, path in changes:
            if change != _ADDED or not os.path.isdir(path):
                continue
            for dirpath, dirnames, filenames in os.walk(path):
                table = self._watcher._table
                dirnames[:] = [
                    d for d in dirnames if not table.is_excluded(os.path.join(dirpath, d))
                ]
                found.extend((_ADDED, os.path.join(dirpath, f)) for f in filenames)
                budget -= len(dirnames) + len(filenames)
                if budget <= 0:
                    return found
        return found


class FileWatcher:
    """The one watcher of the stack. Owned by the supervisor; runs as one task.

    Args:
        root: the config file's folder; patterns are relative to it.
        services: service id -> (``watch.paths`` patterns, ``debounce_ms``).
        excluded_dirs: directories never reported (the ``state_dir``), relative to ``root``
            or absolute.
        on_change: called on the event loop with one batch per service per debounced burst.
        on_problem: called with a one-line message when watching degrades (native watcher
            failed, falling back to polling; a watched root vanished).
        force_polling: poll every ``POLL_DELAY_MS`` instead of using OS notifications.
        notifier: the OS watcher's constructor; a seam for tests, ``RustNotify`` otherwise.
    """

    def __init__(
        self,
        root: Path,
        services: Mapping[str, tuple[Sequence[str], int]],
        excluded_dirs: Sequence[Path],
        on_change: Callable[[ChangeBatch], None],
        on_problem: Callable[[str], None] | None = None,
        force_polling: bool = False,
        *,
        notifier: NotifierFactory = RustNotify,
    ) -> None:
        self._notifier = notifier
        self._root = Path(os.path.realpath(root))
        self._excluded = [Path(os.path.realpath(self._root / d)) for d in excluded_dirs]
        self._on_change = on_change
        self._on_problem = on_problem
        self._polling = force_polling
        self._table = WatchTable(
            self._root, {s: p for s, (p, _) in services.items()}, self._excluded
        )
        self._debouncer = Debouncer({s: ms for s, (_, ms) in services.items()})
        self._started = asyncio.Event()
        self._session: _Session | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._rearm: asyncio.Future[str | BaseException | None] | None = None
        self._failures = 0  # consecutive failed polling sessions, for the retry delay

    async def wait_started(self) -> None:
        """Return once the OS watch (or the polling fallback) is armed over the current roots."""
        await self._started.wait()

    def update(self, services: Mapping[str, tuple[Sequence[str], int]]) -> None:
        """Apply a reloaded config: new patterns and periods; re-arm if the roots changed.

        Raises:
            ValueError: a bad pattern; the previous configuration stays in force.
        """
        old_roots = self._table.watch_roots()
        self._table = WatchTable(
            self._root, {s: p for s, (p, _) in services.items()}, self._excluded
        )
        self._debouncer.update({s: ms for s, (_, ms) in services.items()})
        self._reschedule()
        if self._table.watch_roots() != old_roots:
            self._started.clear()
            self._request_rearm(None)

    async def run(self) -> None:
        """Watch until cancelled, re-arming on new roots, vanished roots and watcher failures."""
        try:
            while True:
                dirs = _covering_dirs(self._table.watch_roots())
                self._rearm = asyncio.get_running_loop().create_future()
                self._session = _Session(self, dirs, self._polling)
                self._session.start()
                reason = await self._rearm
                await self._end_session()
                if isinstance(reason, BaseException):
                    raise reason
                if isinstance(reason, str):
                    self._degrade(reason)
                    if self._failures:
                        delay = _RETRY_DELAYS_S[min(self._failures, len(_RETRY_DELAYS_S)) - 1]
                        await asyncio.sleep(delay)
        finally:
            if self._timer is not None:
                self._timer.cancel()
            await self._end_session()

    def _degrade(self, reason: str) -> None:
        """Report a failed session; switch to polling, or count a polling failure for backoff."""
        self._started.clear()
        if not self._polling:
            self._polling = True
            self._problem(f"{reason}; falling back to polling every {POLL_DELAY_MS} ms")
            return
        self._failures += 1
        self._problem(f"{reason}; retrying")

    async def _end_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.stop()
            # The thread returns within one step; do not hang shutdown if the OS call is stuck.
            await asyncio.wait({session.done}, timeout=5.0)

    def _problem(self, message: str) -> None:
        if self._on_problem is not None:
            self._on_problem(message)

    def _request_rearm(self, reason: str | BaseException | None) -> None:
        if self._rearm is not None and not self._rearm.done():
            self._rearm.set_result(reason)

    # -- called on the loop by the session thread ---------------------------------------------

    def _session_armed(self, session: _Session) -> None:
        if session is self._session:
            self._failures = 0
            self._started.set()

    def _session_failed(self, session: _Session, err: Exception) -> None:
        if session is self._session:
            kind = "polling" if session.polling else "OS file watcher"
            where = ", ".join(str(d) for d in session.dirs)
            self._request_rearm(f"{kind} on {where} failed: {err or type(err).__name__}")

    def _session_changes(self, session: _Session, changes: list[tuple[int, str]]) -> None:
        if session is not self._session:
            return
        now = asyncio.get_running_loop().time()
        vanished: list[str] = []
        for change, path in changes:
            if change == _DELETED and any(Path(path) == d for d in session.dirs):
                vanished.append(path)
            for service in self._table.affected_services(path):
                self._debouncer.add(service, path, now)
        self._reschedule()
        if vanished:
            self._problem(
                f"watched directory {', '.join(sorted(vanished))} vanished; watching its parent"
            )
            self._started.clear()
            self._request_rearm(None)

    # -- debounce timer -----------------------------------------------------------------------

    def _reschedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._debouncer.next_deadline()
        if deadline is not None:
            with contextlib.suppress(RuntimeError):  # update() before run(): no loop yet
                self._timer = asyncio.get_running_loop().call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        try:
            for batch in self._debouncer.due(asyncio.get_running_loop().time()):
                self._on_change(batch)
        except Exception as err:  # a bug in the owner's callback ends run() with it, visibly
            self._request_rearm(err)
        self._reschedule()
