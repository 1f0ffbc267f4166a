"""conversation_watcher: capture conversation files into the graph as TRACE records.

Run as ``python -m mind.conversation_watcher``. It watches ``CONVERSATIONS_DIR`` (default
``$MIND_STATE_DIR/conversations``) and, whenever a file there is created or grows, writes a
``(:Conversation {file})-[:HAS_TRACE]->(:Trace {lines, new_lines, at})`` record. On start it
also captures whatever changed while it was down: the graph remembers each file's line count.

Readiness for mpsv3 is the log line ``watching DIR``, printed once the file watcher is armed
(its first report), so a file written after that line is never missed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from watchfiles import Change, awatch

from mind.graph_store import GraphStore, GraphUnavailable
from mind.runtime import env_float, env_str, log, run_async, state_dir, unless_stopped

#: How often (ms) the watcher reports even without changes; its first report means "armed".
ARMED_REPORT_MS = 500


def count_lines(path: Path) -> int:
    """Lines in a text file: newlines, plus one for a last line without a newline."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def conversation_files(folder: Path) -> list[Path]:
    """Every conversation file under ``folder`` (hidden files and folders are skipped)."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


class Capturer:
    """Turns file changes into TRACE records; owned by the watcher's one task.

    Args:
        store: the graph.
        folder: the conversations folder; files are named relative to it in the graph.
    """

    def __init__(self, store: GraphStore, folder: Path) -> None:
        self.store = store
        self.folder = folder
        self.known: dict[str, int] = {}

    async def load(self) -> None:
        """Learn the line counts already captured (by an earlier run)."""
        self.known = await self.store.conversation_lines()

    async def capture(self, path: Path) -> None:
        """Record a TRACE when ``path`` has a line count the graph has not seen."""
        try:
            name = path.relative_to(self.folder).as_posix()
        except ValueError:
            return
        if any(part.startswith(".") for part in Path(name).parts):
            return
        try:
            lines = count_lines(path)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return
        before = self.known.get(name, 0)
        if name in self.known and lines == before:
            return
        await self.store.record_trace(name, lines, max(0, lines - before))
        self.known[name] = lines
        log(f"trace: {name} ({lines} lines, {max(0, lines - before)} new)")

    async def capture_all(self) -> None:
        for path in conversation_files(self.folder):
            await self.capture(path)


async def watch(stop: asyncio.Event) -> int:
    """Connect to the graph, then capture until ``stop`` is set."""
    folder = Path(env_str("CONVERSATIONS_DIR", str(state_dir() / "conversations"))).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    store = GraphStore.from_env()
    try:
        try:
            connected = await unless_stopped(
                stop, _connected(store, env_float("GRAPH_CONNECT_TIMEOUT_S", 30.0))
            )
        except GraphUnavailable as exc:
            log(f"conversation_watcher: {exc}")
            return 1
        if not connected:
            return 0
        capturer = Capturer(store, folder)
        await capturer.load()
        return await _follow(capturer, stop)
    finally:
        await store.close()


async def _connected(store: GraphStore, timeout_s: float) -> bool:
    await store.connect(timeout_s)
    return True


async def _follow(capturer: Capturer, stop: asyncio.Event) -> int:
    armed = False
    failing = False
    async for changes in awatch(
        capturer.folder,
        stop_event=stop,
        debounce=200,
        rust_timeout=ARMED_REPORT_MS,
        yield_on_timeout=True,
    ):
        try:
            if not armed or failing:
                # Files written before the watcher was armed, or while the graph was away.
                await capturer.capture_all()
            if not armed:
                armed = True
                log(f"watching {capturer.folder} ({len(capturer.known)} conversations known)")
            if failing:
                failing = False
                log("conversation_watcher: recording traces again")
            for change, raw in sorted(changes):
                if change in (Change.added, Change.modified):
                    await capturer.capture(Path(raw))
        except GraphUnavailable as exc:
            if not failing:
                log(f"conversation_watcher: cannot record traces: {exc}")
            failing = True
    log("conversation_watcher: stopped")
    return 0


def main() -> int:
    return run_async(watch)


if __name__ == "__main__":
    raise SystemExit(main())
