"""``mpsv3 ui`` driven by Textual's headless pilot against a real ``mpsv3 up``.

The app runs in this process and talks to the supervisor over its real control socket; the
services are real processes. Each test opens the UI on a running stack and checks what an
operator would: every service and its state in the table, a key that restarts (new PID), the
log pane showing a line printed after the UI opened, the filter, and that quitting the UI
leaves every PID as it was.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Log, Static

from mpsv3.cli.client_verbs import locate
from mpsv3.ui.app import MpsvUi
from support import py

#: Prints a line whenever a file named ``poke`` appears in its folder (then removes it).
ECHO = py(
    """
    import os, time
    print('echo up', flush=True)
    while True:
        if os.path.exists('poke'):
            text = open('poke').read().strip()
            os.remove('poke')
            print('echo got', text, flush=True)
        time.sleep(0.05)
    """
)
SLEEPER = py("import time\nprint('sleeping', flush=True)\nwhile True: time.sleep(1)")
IDS = ("echo", "sleeper", "third_service_with_a_long_id")
CONFIG = f"""
    version: 1
    services:
      - id: echo
        cmd: {ECHO}
      - id: sleeper
        cmd: {SLEEPER}
      - id: third_service_with_a_long_id
        cmd: {SLEEPER}
        requires: [sleeper]
"""


@pytest.fixture
def running(make_stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    stack = make_stack(CONFIG)
    monkeypatch.setenv("MPSV3_RUNTIME_DIR", stack.env["MPSV3_RUNTIME_DIR"])
    stack.start()
    for sid in IDS:
        stack.wait_state(sid, "ready")
    return stack


def pids(stack: Any) -> dict[str, int]:
    return {s["id"]: s["pid"] for s in stack.status()["services"]}


async def until(pilot: Any, what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await pilot.pause(0.1)


def table_of(app: MpsvUi) -> DataTable[Any]:
    return app.query_one("#services", DataTable)


def shown_ids(app: MpsvUi) -> list[str]:
    table = table_of(app)
    return [str(row.key.value) for row in table.ordered_rows]


def cell(app: MpsvUi, sid: str, column: str) -> str:
    return str(table_of(app).get_cell(sid, column))


def run(scenario: Callable[[MpsvUi, Any], Any], stack: Any, size: tuple[int, int] = (120, 36)) -> None:
    app = MpsvUi(locate(Path(stack.config_path), []), refresh_s=0.3, log_poll_s=0.1)

    async def drive() -> None:
        async with app.run_test(size=size) as pilot:
            await until(pilot, "the first status", lambda: len(shown_ids(app)) == len(IDS))
            await scenario(app, pilot)

    asyncio.run(drive())


def test_the_table_shows_every_service_and_its_state(running: Any) -> None:
    async def scenario(app: MpsvUi, pilot: Any) -> None:
        assert shown_ids(app) == list(IDS)
        expected = pids(running)
        for sid in IDS:
            assert cell(app, sid, "state") == "ready"
            assert cell(app, sid, "pid") == str(expected[sid])
        summary = str(app.query_one("#summary", Static).render())
        assert "3 ready" in summary and running.config_path.parent.name != ""

    run(scenario, running)
    assert running.stop() == 0


def test_a_key_restarts_the_selected_service_and_its_pid_changes(running: Any) -> None:
    before = pids(running)

    async def scenario(app: MpsvUi, pilot: Any) -> None:
        await pilot.press("down")  # echo -> sleeper
        await pilot.press("r")
        await until(pilot, "a new pid for sleeper in the table", lambda: cell(app, "sleeper", "pid") not in ("-", str(before["sleeper"])))
        await until(pilot, "sleeper ready again", lambda: cell(app, "sleeper", "state") == "ready")
        message = str(app.query_one("#message", Static).render())
        assert "sleeper" in message

    run(scenario, running)
    after = pids(running)
    assert after["sleeper"] != before["sleeper"]
    assert after["echo"] == before["echo"]
    assert running.stop() == 0


def test_the_log_pane_shows_a_line_printed_after_the_ui_opened(running: Any) -> None:
    token = uuid.uuid4().hex

    async def scenario(app: MpsvUi, pilot: Any) -> None:
        assert app.selected == "echo"
        log = app.query_one("#log", Log)
        await until(pilot, "the tail of echo's log", lambda: any("echo up" in line for line in log.lines))
        (running.root / "poke").write_text(token)
        await until(pilot, "the new line in the log pane", lambda: any(f"echo got {token}" in line for line in log.lines))
        await pilot.press("m")  # merged: every log, each line with its source
        await until(pilot, "the merged view", lambda: any(line.startswith("sleeper") for line in log.lines))
        (running.root / "poke").write_text(token + "-merged")
        await until(
            pilot, "the new line in the merged view",
            lambda: any(line.startswith("echo") and f"{token}-merged" in line for line in log.lines),
        )

    run(scenario, running)
    assert running.stop() == 0


def test_the_filter_narrows_the_table_and_escape_clears_it(running: Any) -> None:
    async def scenario(app: MpsvUi, pilot: Any) -> None:
        await pilot.press("slash")
        await pilot.pause()
        await pilot.press("t", "h", "i")
        await until(pilot, "only the third service", lambda: shown_ids(app) == ["third_service_with_a_long_id"])
        await pilot.press("enter")  # keeps the filter, back to the table
        await pilot.pause(0.8)  # a few refreshes: the filter holds
        assert shown_ids(app) == ["third_service_with_a_long_id"]
        assert app.selected == "third_service_with_a_long_id"
        await pilot.press("escape")
        await until(pilot, "every service again", lambda: shown_ids(app) == list(IDS))

    run(scenario, running)
    assert running.stop() == 0


def test_quitting_leaves_every_pid_unchanged(running: Any) -> None:
    before = pids(running)

    async def scenario(app: MpsvUi, pilot: Any) -> None:
        await pilot.press("q")

    run(scenario, running)
    time.sleep(1.0)
    assert pids(running) == before
    assert all(s["state"] == "ready" for s in running.status()["services"])
    assert running.stop() == 0


def test_signal_and_scale_keys_answer_in_the_message_line(running: Any) -> None:
    """A supervisor that does not know ``signal``/``scale`` yet refuses: the UI says so."""

    async def scenario(app: MpsvUi, pilot: Any) -> None:
        message = app.query_one("#message", Static)
        first = str(message.render())
        await pilot.press("k")
        await pilot.pause()
        await pilot.press("enter")  # SIGHUP, the prompt's default
        await until(pilot, "the signal's answer", lambda: str(message.render()) != first)
        answer = str(message.render())
        if "unknown command" in answer:
            assert answer.startswith("signal SIGHUP to echo: unknown command 'signal'")
            assert message.has_class("error")
        await pilot.press("plus")
        await until(pilot, "the scale's answer", lambda: str(message.render()) != answer)
        if "unknown command" in str(message.render()):
            assert str(message.render()).startswith("scale echo to 2: unknown command 'scale'")
        assert app.is_running

    run(scenario, running)
    assert running.stop() == 0


def test_ui_without_a_supervisor_says_so_in_one_line_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mpsv3.cli.main import main, main_group
    from mpsv3.cli.ui_command import ui

    config = tmp_path / "services.yaml"
    config.write_text(f"version: 1\nname: nobody_home\nservices:\n  - id: a\n    cmd: {SLEEPER}\n")
    monkeypatch.setenv("MPSV3_RUNTIME_DIR", str(tmp_path / "runtime"))
    main_group.add_command(ui)  # as the CLI registers it
    with pytest.raises(SystemExit) as exited:
        main(["ui", "-c", str(config)])
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"mpsv3: no supervisor is running for instance 'nobody_home' (config {config})"]
