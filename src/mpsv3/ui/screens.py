"""The UI's small screens: the help, and the prompts for a signal and a replica count.

Why screens of their own: each asks one question and answers it with ``dismiss`` (None when
the operator backs out with Escape), so the app only deals with the answer.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, Static

from mpsv3.ui.model import parse_signal

__all__ = ["HELP", "HelpScreen", "ScalePrompt", "SignalPrompt"]

#: The keys, as the help screen and ``docs/ui.md`` list them.
HELP = """\
mpsv3 ui: every key acts through the control socket; quitting never stops anything.

  up/down, pgup/pgdn   select a service (its log follows below)
  r                    restart the selected service
  x                    stop it (it stays down until started)
  s                    start it (and what it requires)
  u                    release it from quarantine
  k                    send it a signal (SIGHUP, TERM, 9 ...; to its main process or group)
  + / -                one replica more / less
  n                    scale to N replicas
  m                    log pane: the selected service / every log merged
  /                    filter: words in the id, state or reason; state:backoff
  escape               clear the filter
  R                    reload the config (apply what changed)
  ?                    this help
  q                    quit the UI (the stack keeps running)
"""

_PROMPT_CSS = """
ModalScreen { align: center middle; }
#prompt { width: 64; height: auto; border: round $accent; background: $panel; padding: 0 1; }
#prompt Label { width: 100%; }
#error { color: $error; height: auto; }
"""


class HelpScreen(ModalScreen[None]):
    """The keys; any key closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: auto; max-width: 96; height: auto; border: round $accent; background: $panel; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP + "\n(any key closes this)", id="help")

    def on_key(self, event: events.Key) -> None:
        event.stop()  # the key only closes the help: it must not act on a service too
        event.prevent_default()
        self.dismiss(None)


class SignalPrompt(ModalScreen[tuple[str, bool] | None]):
    """Which signal to send to ``service``, and whether to its whole process group."""

    DEFAULT_CSS = _PROMPT_CSS
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(f"signal to {self._service} (HUP, SIGUSR1, TERM, 9 ...), Enter sends")
            yield Input(value="SIGHUP", id="signal")
            yield Checkbox("to its whole process group", id="group")
            yield Label("", id="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name, error = parse_signal(event.value)
        if name is None:
            self.query_one("#error", Label).update(error or "")
            return
        self.dismiss((name, self.query_one("#group", Checkbox).value))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ScalePrompt(ModalScreen[int | None]):
    """How many replicas ``service`` should run."""

    DEFAULT_CSS = _PROMPT_CSS
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, service: str, current: int) -> None:
        super().__init__()
        self._service = service
        self._current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(f"replicas of {self._service} (now {self._current}), Enter applies")
            yield Input(value=str(self._current), id="replicas", restrict=r"[0-9]*")
            yield Label("", id="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text.isdigit() or int(text) > 1000:
            self.query_one("#error", Label).update("a whole number of replicas, 0 to 1000")
            return
        self.dismiss(int(text))

    def action_cancel(self) -> None:
        self.dismiss(None)
