"""The real watcher on real files: OS notifications (and polling) -> debounced batches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from watchfiles._rust_notify import RustNotify

from mpsv3._compat import TaskGroup, timeout
from mpsv3.engine.watcher import ChangeBatch, FileWatcher, Notifier

DEBOUNCE_MS = 300
SETTLE_S = 1.5  # long enough for any stray batch to show up on a loaded machine
Services = dict[str, tuple[Sequence[str], int]]


def _layout(root: Path) -> None:
    for directory in ("engine/__pycache__", "web", ".mpsv3/logs"):
        (root / directory).mkdir(parents=True)


class Recorder:
    """Collects batches and problems; ``wait_for`` blocks until enough batches arrived."""

    def __init__(self) -> None:
        self.batches: list[ChangeBatch] = []
        self.problems: list[str] = []
        self._changed = asyncio.Event()

    def on_change(self, batch: ChangeBatch) -> None:
        self.batches.append(batch)
        self._changed.set()

    async def wait_for(self, count: int, within_s: float = 20.0) -> None:
        async with timeout(within_s):
            while len(self.batches) < count:
                self._changed.clear()
                await self._changed.wait()


def _run(
    root: Path,
    services: Services,
    scenario: Callable[[FileWatcher, Recorder], Awaitable[None]],
    force_polling: bool = False,
) -> Recorder:
    async def main() -> Recorder:
        recorder = Recorder()
        watcher = FileWatcher(
            root,
            services,
            [Path(".mpsv3")],
            recorder.on_change,
            recorder.problems.append,
            force_polling=force_polling,
        )
        async with TaskGroup() as group:
            task = group.create_task(watcher.run())
            async with timeout(20):
                await watcher.wait_started()
            await scenario(watcher, recorder)
            task.cancel()
        return recorder

    return asyncio.run(main())


STACK: Services = {"api": (["engine/**/*.py"], DEBOUNCE_MS), "web": (["web/**"], DEBOUNCE_MS)}


@pytest.mark.parametrize("force_polling", [False, True], ids=["native", "polling"])
def test_change_reaches_only_the_watching_service(tmp_path: Path, force_polling: bool) -> None:
    _layout(tmp_path)
    target = tmp_path / "engine" / "consciousness_engine_v2.py"

    async def scenario(watcher: FileWatcher, recorder: Recorder) -> None:
        target.write_text("print('v2')\n")
        await recorder.wait_for(1)
        await asyncio.sleep(SETTLE_S)

    recorder = _run(tmp_path, STACK, scenario, force_polling)
    assert recorder.batches == [ChangeBatch("api", (str(target.resolve()),))]
    assert recorder.problems == []


def test_excluded_files_trigger_nothing(tmp_path: Path) -> None:
    _layout(tmp_path)
    services: Services = {"api": (["engine/**/*.py", "**/*.log", "**"], DEBOUNCE_MS)}

    async def scenario(watcher: FileWatcher, recorder: Recorder) -> None:
        (tmp_path / "engine" / "x.pyc").write_bytes(b"\0")
        (tmp_path / "engine" / "__pycache__" / "a.py").write_text("x = 1\n")
        (tmp_path / "engine" / ".x.py.swp").write_text("swap")
        for line in range(20):
            with (tmp_path / ".mpsv3" / "logs" / "api.log").open("a") as log:
                log.write(f"line {line}\n")
        await asyncio.sleep(SETTLE_S + DEBOUNCE_MS / 1000)

    assert _run(tmp_path, services, scenario).batches == []


def test_fifty_writes_are_one_batch(tmp_path: Path) -> None:
    _layout(tmp_path)
    files = [tmp_path / "engine" / f"m{i % 10}.py" for i in range(50)]

    async def scenario(watcher: FileWatcher, recorder: Recorder) -> None:
        for i, path in enumerate(files):
            path.write_text(f"n = {i}\n")
            await asyncio.sleep(0.01)
        await recorder.wait_for(1)
        await asyncio.sleep(SETTLE_S)

    recorder = _run(tmp_path, STACK, scenario)
    assert len(recorder.batches) == 1
    assert recorder.batches[0].service == "api"
    assert recorder.batches[0].paths == tuple(sorted({str(p.resolve()) for p in files}))


def test_root_created_after_start_is_picked_up(tmp_path: Path) -> None:
    _layout(tmp_path)
    services: Services = {**STACK, "later": (["later/*.txt"], DEBOUNCE_MS)}
    note = tmp_path / "later" / "note.txt"

    async def scenario(watcher: FileWatcher, recorder: Recorder) -> None:
        note.parent.mkdir()
        note.write_text("hello\n")  # right after mkdir: caught by scanning the new directory
        await recorder.wait_for(1)
        await asyncio.sleep(SETTLE_S)
        note.write_text("again\n")  # and the new directory is watched from then on
        await recorder.wait_for(2)

    recorder = _run(tmp_path, services, scenario)
    assert recorder.batches == [ChangeBatch("later", (str(note.resolve()),))] * 2


def test_update_adds_a_service_and_its_root(tmp_path: Path) -> None:
    _layout(tmp_path)
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "index.md"

    async def scenario(watcher: FileWatcher, recorder: Recorder) -> None:
        watcher.update({**STACK, "docs": (["docs/*.md"], 100)})
        async with timeout(20):
            await watcher.wait_started()
        page.write_text("# docs\n")
        await recorder.wait_for(1)

    services: Services = {"web": (["web/**"], DEBOUNCE_MS)}
    recorder = _run(tmp_path, services, scenario)
    assert recorder.batches == [ChangeBatch("docs", (str(page.resolve()),))]


def test_vanished_root_is_reported_and_watched_again(tmp_path: Path) -> None:
    _layout(tmp_path)
    target = tmp_path / "web" / "app.js"

    async def scenario(watcher: FileWatcher, recorder: Recorder) -> None:
        (tmp_path / "web").rmdir()
        async with timeout(20):
            while not recorder.problems:
                await asyncio.sleep(0.05)
            await watcher.wait_started()
        target.parent.mkdir()
        target.write_text("x\n")
        await recorder.wait_for(1)

    recorder = _run(tmp_path, {"web": (["web/**"], DEBOUNCE_MS)}, scenario)
    assert recorder.batches == [ChangeBatch("web", (str(target.resolve()),))]
    assert "vanished" in recorder.problems[0]


def test_a_callback_error_ends_run(tmp_path: Path) -> None:
    _layout(tmp_path)

    def broken(batch: ChangeBatch) -> None:
        raise RuntimeError(f"bug handling {batch.service}")

    async def main() -> None:
        watcher = FileWatcher(tmp_path, STACK, [], broken)
        run = asyncio.create_task(watcher.run())
        async with timeout(20):
            await watcher.wait_started()
        (tmp_path / "web" / "x.js").write_text("x\n")
        with pytest.raises(RuntimeError, match="bug handling web"):
            await asyncio.wait_for(run, 20)

    asyncio.run(main())


def test_native_failure_falls_back_to_polling(tmp_path: Path) -> None:
    _layout(tmp_path)
    target = tmp_path / "engine" / "x.py"

    def limited(
        paths: list[str], debug: bool, polling: bool, delay_ms: int, recursive: bool, ignore: bool
    ) -> Notifier:
        if not polling:
            raise OSError("OS file watch limit reached")
        return RustNotify(paths, debug, polling, delay_ms, recursive, ignore)

    async def main() -> Recorder:
        recorder = Recorder()
        watcher = FileWatcher(
            tmp_path, STACK, [], recorder.on_change, recorder.problems.append, notifier=limited
        )
        async with TaskGroup() as group:
            task = group.create_task(watcher.run())
            async with timeout(20):
                await watcher.wait_started()
            target.write_text("x = 1\n")
            await recorder.wait_for(1)
            task.cancel()
        return recorder

    recorder = asyncio.run(main())
    assert recorder.batches == [ChangeBatch("api", (str(target.resolve()),))]
    assert len(recorder.problems) == 1
    assert (
        "OS file watch limit reached; falling back to polling every 300 ms" in recorder.problems[0]
    )
