"""Signal names as operators write them (``SIGHUP``, ``hup``, ``USR1``, ``1``), stop signals.

Why here: ``mpsv3 signal`` and the control verb accept a name typed by a person, while the
platform code needs the canonical name; what exists depends on the OS (Windows has no SIGHUP,
and its event loops take no signal handlers).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the client parses signal names; it need not import asyncio for that
    import asyncio

#: What stops a supervisor in order. SIGHUP: the terminal of a foreground ``up`` closed;
#: SIGQUIT: asked to quit; their default action would kill it without stopping anything.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGBREAK")


def parse_signal_name(value: Any) -> str | None:
    """The canonical name (``SIGHUP``) of a signal this OS knows, or None."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return None
    text = str(value).strip().upper()
    if text.isdigit():
        try:
            return signal.Signals(int(text)).name
        except ValueError:
            return None
    name = text if text.startswith("SIG") else "SIG" + text
    return name if name in signal.Signals.__members__ else None


def on_stop_signals(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Call ``callback`` on the loop when any of :data:`STOP_SIGNALS` this OS has arrives."""
    for signame in STOP_SIGNALS:
        signum = getattr(signal, signame, None)
        if signum is None:
            continue
        try:
            loop.add_signal_handler(signum, callback)
        except (NotImplementedError, RuntimeError):  # Windows' loops have no signal handlers
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(callback))
