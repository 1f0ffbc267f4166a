"""Signal names as operators write them: ``SIGHUP``, ``hup``, ``USR1``, ``1``.

Why here: ``mpsv3 signal`` and the control verb accept a name typed by a person, while the
platform code needs the canonical name; what exists depends on the OS (Windows has no SIGHUP).
"""

from __future__ import annotations

import signal
from typing import Any


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
