"""How config messages name places and values: one line each, short, as the user wrote them.

Why its own module: the schema-error text, the cross-service checks and the document reader
all quote keys and values; doing it one way keeps every message ``FILE:LINE: message`` on one
line, whatever the input (a 300-character id, a key with a newline in it).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from typing import Any

from mpsv3.config.source import Path_

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:/*-]+")


def describe_path(path: Path_) -> str:
    """``readiness.http_get.url: `` (a place inside its owner), or ``""`` for the owner itself.

    A key that is not a plain name is quoted (``env["A B"]``) so a message stays one line.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            text += f"[{show(part)}]"
        else:
            text += f".{part}" if text else part
    return text + ": " if text else ""


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean "x"?)`` when a choice is close to ``word``, else ``""``."""
    close = closest(word, choices)
    return f' (did you mean "{close}"?)' if close else ""


def closest(word: str, choices: Sequence[str]) -> str | None:
    """The choice closest to ``word``, if one is close enough to be a typo of it."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def show(value: Any) -> str:
    """A value as the user wrote it in YAML, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        shown = "".join(
            char if char.isprintable() else json.dumps(char)[1:-1]
            for char in json.dumps(value[:60], ensure_ascii=False)
        )
        return shown if len(shown) <= 60 and len(value) <= 60 else shown[:56] + '..."'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
