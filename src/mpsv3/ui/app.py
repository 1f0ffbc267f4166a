"""The Textual app of ``mpsv3 ui``: the services table, the selected log, keys that act.

Why over the control socket only: the UI is a client like ``status``; it can be opened and
closed while the stack runs, several at once, and quitting it stops nothing. Every second it
asks for the status document (the same as ``status --json``) and redraws from it; four times
a second it reads what the followed logs gained. Keys send one request each, in a worker, so
a slow supervisor never freezes the screen; the reply (or the refusal of a supervisor that
does not know the command yet) goes to the message line.

Seams: ``request`` (the control client) and ``clock`` are constructor arguments, so the app
can be driven against a scripted supervisor as well as a real ``up``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Log, Static

from mpsv3.cli.status_view import STATE_COLOURS
from mpsv3.control.client import request as control_request
from mpsv3.control.protocol import Instance
from mpsv3.errors import MpsvError
from mpsv3.ui import model
from mpsv3.ui.logs import SUPERVISOR_LOG, LogSource
from mpsv3.ui.screens import HelpScreen, ScalePrompt, SignalPrompt

__all__ = ["MpsvUi", "Request"]

Request = Callable[[Instance, dict[str, Any], float], Awaitable[dict[str, Any]]]

#: Rich styles per state, from the ANSI codes of ``status`` (same colours everywhere).
_ANSI_STYLE = {"1": "bold", "2": "dim", "31": "red", "32": "green", "33": "yellow", "35": "magenta"}
STATE_STYLES = {
    state: " ".join(_ANSI_STYLE[part] for part in code.split(";"))
    for state, code in STATE_COLOURS.items()
}
LOG_LINES = 5000
TAIL_LINES = 200


class MpsvUi(App[None]):
    """The operator's screen for one running instance.

    Args:
        target: the instance (its name, state dir and config path locate the supervisor).
        refresh_s: how often to ask for the status.
        log_poll_s: how often to read what the followed logs gained.
        request: the control client (``mpsv3.control.client.request``).
        clock: wall clock for uptimes and "ago".
    """

    TITLE = "mpsv3"
    CSS = """
    #summary { height: auto; max-height: 2; background: $boost; padding: 0 1; }
    #banner { height: auto; color: $error; padding: 0 1; display: none; }
    #services { height: auto; max-height: 50%; scrollbar-size-horizontal: 0; }
    #detail { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    #logtitle { height: 1; background: $boost; padding: 0 1; }
    #log { height: 1fr; }
    #message { height: 1; padding: 0 1; }
    #message.error { color: $error; }
    #filter { display: none; height: 3; }
    """
    BINDINGS = [
        Binding("r", "restart", "restart"),
        Binding("x", "stop", "stop"),
        Binding("s", "start", "start"),
        Binding("u", "release", "release"),
        Binding("k", "signal", "signal"),
        Binding("n", "scale", "scale"),
        Binding("plus", "scale_by(1)", "+1", show=False),
        Binding("minus", "scale_by(-1)", "-1", show=False),
        Binding("m", "toggle_merged", "merged log"),
        Binding("slash", "filter", "filter"),
        Binding("escape", "clear_filter", "clear filter", show=False),
        Binding("R", "reload", "reload", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        target: Instance,
        *,
        refresh_s: float = 1.0,
        log_poll_s: float = 0.25,
        request: Request = control_request,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.target = target
        self._refresh_s = refresh_s
        self._log_poll_s = log_poll_s
        self._request = request
        self._clock = clock
        self.status: Mapping[str, Any] = {}
        self.query_text = ""
        self.selected: str | None = None
        self.merged = False
        self._shown_ids: list[str] = []
        self._shown_cells: dict[str, Mapping[str, str]] = {}
        self._source: LogSource | None = None

    # ---------------------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        self._summary = Static("connecting…", id="summary")
        self._banner = Static("", id="banner")
        self._table: DataTable[str | Text] = DataTable(id="services", cursor_type="row", zebra_stripes=True)
        self._detail = Static("", id="detail")
        self._filter = Input(
            placeholder="filter: words in the id, state or reason (Enter keeps it, Escape clears)", id="filter"
        )
        self._log_title = Static("", id="logtitle")
        self._log_pane = Log(id="log", max_lines=LOG_LINES)
        self._message = Static("? for the keys; q quits the UI, the stack keeps running", id="message")
        yield from (self._summary, self._banner, self._table, self._detail, self._filter)
        yield from (self._log_title, self._log_pane, self._message, Footer())

    async def on_mount(self) -> None:
        for key, label in model.TABLE_COLUMNS:
            self._table.add_column(label, key=key)
        self._table.focus()
        await self.refresh_status()
        self.set_interval(self._refresh_s, self.refresh_status)
        self.set_interval(self._log_poll_s, self.poll_logs)

    def on_unmount(self) -> None:
        if self._source is not None:
            self._source.close()

    # ---------------------------------------------------------------------------- status

    async def refresh_status(self) -> None:
        """Ask for the status document and redraw from it; a failure shows in the banner."""
        banner = self._banner
        try:
            reply = await self._request(self.target, {"cmd": "status"}, 10.0)
        except (MpsvError, OSError) as exc:
            banner.update(f"{exc}; retrying every {self._refresh_s:g}s")
            banner.display = True
            return
        if not reply.get("ok"):
            banner.update(f"status refused: {reply.get('error')}")
            banner.display = True
            return
        banner.display = False
        self.status = reply.get("result") or {}
        if self._table.is_attached:  # not when the reply comes back while the UI closes
            self._redraw()

    def _redraw(self) -> None:
        now = self._clock()
        self._summary.update(model.summary_line(self.status, now))
        self._fill_table(model.table_rows(self.status, now, self.query_text))
        service = model.services_by_id(self.status).get(self.selected or "")
        self._detail.update(model.detail_line(service, now))
        if self.merged and self._source is not None:
            self._source.set_ids([SUPERVISOR_LOG, *model.ids_of(self.status)])

    def _fill_table(self, rows: list[model.Row]) -> None:
        """Update cells in place; rebuild only when the rows themselves change."""
        table = self._table
        ids = [row.id for row in rows]
        if ids != self._shown_ids:
            table.clear()
            for row in rows:
                table.add_row(*self._cells(row), key=row.id)
            self._shown_ids = ids
            self._shown_cells = {row.id: row.cells for row in rows}
            if self.selected in ids:
                table.move_cursor(row=ids.index(self.selected))
            elif ids:
                self._select(ids[min(table.cursor_row, len(ids) - 1)])
            return
        for row in rows:
            before = self._shown_cells.get(row.id, {})
            for (key, _), cell in zip(model.TABLE_COLUMNS, self._cells(row), strict=True):
                if before.get(key) != row.cells[key]:
                    table.update_cell(row.id, key, cell, update_width=True)
        self._shown_cells = {row.id: row.cells for row in rows}

    @staticmethod
    def _cells(row: model.Row) -> list[str | Text]:
        cells: list[str | Text] = []
        for key, _ in model.TABLE_COLUMNS:
            text = row.cells[key]
            if key == "state":
                cells.append(Text(text, style=STATE_STYLES.get(text, "")))
            elif key in ("cpu", "mem", "pid", "uptime", "restarts", "next"):
                cells.append(Text(text, justify="right"))
            else:
                cells.append(text)
        return cells

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._select(str(event.row_key.value))

    def _select(self, sid: str) -> None:
        if sid == self.selected:
            return
        self.selected = sid
        service = model.services_by_id(self.status).get(sid)
        self._detail.update(model.detail_line(service, self._clock()))
        if not self.merged:
            self._follow([sid])

    # ------------------------------------------------------------------------------ logs

    def _follow(self, ids: list[str]) -> None:
        """Point the log pane at ``ids`` (one service, or every log merged), from its tail."""
        if self._source is not None:
            self._source.close()
        self._source = LogSource(Path(self.target.state_dir), ids)
        log = self._log_pane
        log.clear()
        log.write_lines(self._source.tail(TAIL_LINES))
        what = "every log, merged" if self.merged else f"log of {ids[0]}"
        self._log_title.update(f"{what} (following; m: {'one service' if self.merged else 'merged'})")

    def poll_logs(self) -> None:
        if self._source is None:
            return
        lines = self._source.read_new()
        if lines:
            self._log_pane.write_lines(lines)

    def action_toggle_merged(self) -> None:
        self.merged = not self.merged
        if self.merged:
            self._follow([SUPERVISOR_LOG, *model.ids_of(self.status)])
        elif self.selected is not None:
            self._follow([self.selected])

    # --------------------------------------------------------------------------- actions

    @work(group="control")
    async def send(self, message: dict[str, Any], what: str) -> None:
        """One request; its reply (or why there is none) goes to the message line."""
        try:
            reply = await self._request(self.target, message, 30.0)
        except (MpsvError, OSError) as exc:
            self.show_message(f"{what}: {exc}", error=True)
            return
        text, error = model.reply_text(what, reply)
        self.show_message(text, error=error)
        await self.refresh_status()

    def show_message(self, text: str, *, error: bool = False) -> None:
        line = self._message
        line.update(Text(text))
        line.set_class(error, "error")

    def current(self) -> str | None:
        """The service under the table's cursor (read now: a key may arrive before the
        table's highlight message does)."""
        table = self._table
        if 0 <= table.cursor_row < len(self._shown_ids):
            self._select(self._shown_ids[table.cursor_row])
        return self.selected if self.selected in self._shown_ids else None

    def _service_verb(self, verb: str) -> None:
        sid = self.current()
        if sid is None:
            self.show_message(f"{verb}: no service selected", error=True)
            return
        self.send({"cmd": verb, "id": sid}, f"{verb} {sid}")

    def action_restart(self) -> None:
        self._service_verb("restart")

    def action_stop(self) -> None:
        self._service_verb("stop")

    def action_start(self) -> None:
        self._service_verb("start")

    def action_release(self) -> None:
        self._service_verb("release")

    def action_reload(self) -> None:
        self.send({"cmd": "reload"}, "reload")

    def action_signal(self) -> None:
        sid = self.current()
        if sid is None:
            self.show_message("signal: no service selected", error=True)
            return

        def answered(answer: tuple[str, bool] | None) -> None:
            if answer is not None:
                name, group = answer
                where = " (group)" if group else ""
                self.send({"cmd": "signal", "id": sid, "signal": name, "group": group}, f"signal {name} to {sid}{where}")

        self.push_screen(SignalPrompt(sid), answered)

    def action_scale(self) -> None:
        sid = self.current()
        if sid is None:
            self.show_message("scale: no service selected", error=True)
            return
        base, count = model.scale_target(self.status, sid)

        def answered(replicas: int | None) -> None:
            if replicas is not None:
                self._scale(base, replicas)

        self.push_screen(ScalePrompt(base, count), answered)

    def action_scale_by(self, step: int) -> None:
        sid = self.current()
        if sid is None:
            self.show_message("scale: no service selected", error=True)
            return
        base, count = model.scale_target(self.status, sid)
        self._scale(base, max(0, count + step))

    def _scale(self, base: str, replicas: int) -> None:
        self.send({"cmd": "scale", "id": base, "replicas": replicas}, f"scale {base} to {replicas}")

    def action_filter(self) -> None:
        box = self._filter
        box.display = True
        self.call_after_refresh(box.focus)  # a widget is focusable once it is displayed

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.query_text = event.value
            self._fill_table(model.table_rows(self.status, self._clock(), self.query_text))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(event.value)
            self._table.focus()

    def action_clear_filter(self) -> None:
        box = self._filter
        box.value = ""
        box.display = False
        self.query_text = ""
        self._fill_table(model.table_rows(self.status, self._clock(), ""))
        self._table.focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
