"""The UI app against a scripted supervisor: what each key sends, what each answer shows.

Fast and without processes (the same app runs against a real ``up`` in
``tests/integration/test_ui_pilot.py``). The script speaks tomorrow's status document
(kind, replicas, CPU and memory), so these tests also pin how the new figures are shown.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.widgets import Checkbox, DataTable, Input, Static

from mpsv3.control.protocol import InstanceRef, NotRunning
from mpsv3.ui.app import MpsvUi
from mpsv3.ui.screens import HelpScreen, SignalPrompt

NOW = 1_795_000_000.0


def svc(sid: str, **extra: Any) -> dict[str, Any]:
    base = {
        "id": sid, "state": "ready", "pid": 100 + len(sid), "pgid": 100, "restarts": 0, "failures": 0,
        "last_exit": None, "next_restart_in_s": None, "ready_since": None, "reason": None,
        "kind": "service", "replica": None, "enabled": True, "cpu_percent": 2.5, "rss_bytes": 20 * 1024 * 1024,
    }
    return {**base, **extra}


STATUS: dict[str, Any] = {
    "supervisor": {"pid": 42, "name": "mind", "config": "/x/services.yaml",
                   "started_at": "2026-11-24T15:00:00.000Z", "version": "0.1.0",
                   "cpu_percent": 0.5, "rss_bytes": 30 * 1024 * 1024},
    "services": [svc("db"), svc("worker-1", replica=1), svc("worker-2", replica=2, cpu_percent=55.0)],
}


class Supervisor:
    """Answers like a supervisor: the status, and a scripted reply to every other request."""

    def __init__(self) -> None:
        self.status = copy.deepcopy(STATUS)
        self.sent: list[dict[str, Any]] = []
        self.gone = False
        self.reply: dict[str, Any] = {"ok": True, "result": {"message": "done it"}}

    async def __call__(self, target: Any, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        if self.gone:
            raise NotRunning(target)
        if message["cmd"] == "status":
            return {"ok": True, "result": copy.deepcopy(self.status)}
        self.sent.append(message)
        return self.reply


def run(tmp_path: Path, scenario: Callable[[MpsvUi, Any, Supervisor], Any]) -> Supervisor:
    supervisor = Supervisor()
    app = MpsvUi(InstanceRef("mind", tmp_path, tmp_path / "services.yaml"), refresh_s=0.2, log_poll_s=0.1,
                 request=supervisor, clock=lambda: NOW)

    async def drive() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await scenario(app, pilot, supervisor)

    asyncio.run(drive())
    return supervisor


async def settle(pilot: Any, check: Callable[[], bool], what: str) -> None:
    for _ in range(100):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError(what)


def message_of(app: MpsvUi) -> str:
    return str(app.query_one("#message", Static).render())


def test_cpu_and_memory_figures_are_in_the_table_and_the_header(tmp_path: Path) -> None:
    async def scenario(app: MpsvUi, pilot: Any, _sup: Supervisor) -> None:
        table = app.query_one("#services", DataTable)
        assert str(table.get_cell("worker-2", "cpu")) == "55%"
        assert str(table.get_cell("db", "mem")) == "20.0M"
        summary = str(app.query_one("#summary", Static).render())
        assert "cpu 0.5% · mem 30.0M" in summary and "3 ready" in summary

    run(tmp_path, scenario)


def test_the_service_keys_send_their_request_for_the_row_under_the_cursor(tmp_path: Path) -> None:
    async def scenario(app: MpsvUi, pilot: Any, sup: Supervisor) -> None:
        await pilot.press("down", "r")  # the key comes right after the move: no stale selection
        await pilot.press("x", "s", "u", "R")
        await settle(pilot, lambda: len(sup.sent) == 5, "five requests")
        assert sup.sent == [
            {"cmd": "restart", "id": "worker-1"}, {"cmd": "stop", "id": "worker-1"},
            {"cmd": "start", "id": "worker-1"}, {"cmd": "release", "id": "worker-1"}, {"cmd": "reload"},
        ]
        assert message_of(app) == "done it"

    run(tmp_path, scenario)


def test_scale_keys_name_the_replicated_service(tmp_path: Path) -> None:
    async def scenario(app: MpsvUi, pilot: Any, sup: Supervisor) -> None:
        await pilot.press("down", "down", "plus")
        await settle(pilot, lambda: len(sup.sent) == 1, "scale +1")
        await pilot.press("minus")
        await settle(pilot, lambda: len(sup.sent) == 2, "scale -1")
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("backspace", "7", "enter")
        await settle(pilot, lambda: len(sup.sent) == 3, "scale to 7")
        assert sup.sent == [
            {"cmd": "scale", "id": "worker", "replicas": 3},
            {"cmd": "scale", "id": "worker", "replicas": 1},
            {"cmd": "scale", "id": "worker", "replicas": 7},
        ]

    run(tmp_path, scenario)


def test_the_signal_prompt_checks_the_name_and_can_target_the_group(tmp_path: Path) -> None:
    async def scenario(app: MpsvUi, pilot: Any, sup: Supervisor) -> None:
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, SignalPrompt)
        await pilot.press(*"nonsense", "enter")
        await pilot.pause()
        assert isinstance(app.screen, SignalPrompt) and sup.sent == []
        assert "unknown signal 'nonsense'" in str(app.screen.query_one("#error").render())
        app.screen.query_one("#signal", Input).value = "usr1"
        app.screen.query_one("#group", Checkbox).value = True
        app.screen.query_one("#signal", Input).focus()
        await pilot.press("enter")
        await settle(pilot, lambda: len(sup.sent) == 1, "the signal request")
        assert sup.sent == [{"cmd": "signal", "id": "db", "signal": "SIGUSR1", "group": True}]
        await pilot.press("k")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SignalPrompt) and len(sup.sent) == 1

    run(tmp_path, scenario)


def test_a_refusal_is_a_message_not_a_crash(tmp_path: Path) -> None:
    async def scenario(app: MpsvUi, pilot: Any, sup: Supervisor) -> None:
        sup.reply = {"ok": False, "error": "unknown command 'scale': expected one of status, restart"}
        await pilot.press("plus")
        await settle(pilot, lambda: "unknown command" in message_of(app), "the refusal")
        assert message_of(app).startswith("scale db to 2: unknown command 'scale'")
        assert app.query_one("#message", Static).has_class("error")
        assert app.is_running

    run(tmp_path, scenario)


def test_a_supervisor_that_goes_away_and_comes_back(tmp_path: Path) -> None:
    async def scenario(app: MpsvUi, pilot: Any, sup: Supervisor) -> None:
        banner = app.query_one("#banner", Static)
        sup.gone = True
        await settle(pilot, lambda: banner.display, "the banner")
        assert "no supervisor is running for instance 'mind'" in str(banner.render())
        await pilot.press("r")
        await settle(pilot, lambda: "no supervisor" in message_of(app), "the failed restart")
        sup.gone = False
        await settle(pilot, lambda: not banner.display, "the banner gone")

    run(tmp_path, scenario)


def test_help_opens_and_any_key_closes_it(tmp_path: Path) -> None:
    async def scenario(app: MpsvUi, pilot: Any, sup: Supervisor) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("r")  # closes the help; does not restart anything
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen) and sup.sent == []

    run(tmp_path, scenario)


def test_a_status_change_updates_cells_and_keeps_the_selection(tmp_path: Path) -> None:
    async def scenario(app: MpsvUi, pilot: Any, sup: Supervisor) -> None:
        await pilot.press("down", "down")
        await settle(pilot, lambda: app.selected == "worker-2", "worker-2 selected")
        sup.status["services"][2].update(state="backoff", pid=None, reason="exited with code 3", next_restart_in_s=2.0)
        table = app.query_one("#services", DataTable)
        await settle(pilot, lambda: str(table.get_cell("worker-2", "state")) == "backoff", "the new state")
        assert "exited with code 3" in str(app.query_one("#detail", Static).render())
        sup.status["services"].insert(0, svc("new_one"))  # a reload added a service
        await settle(pilot, lambda: table.row_count == 4, "the new row")
        assert app.selected == "worker-2" and table.cursor_row == 3

    run(tmp_path, scenario)
