"""User-supplied regular expressions (``readiness.log.pattern``), matched in linear time.

Why RE2 and not ``re``: a log pattern is matched against every line a service prints, on the
supervisor's event loop. Python's backtracking engine takes exponential time on patterns like
``^(a+)+$`` against 40 a's and a "b", and the whole supervisor freezes (issue 15). RE2
(``google-re2``) guarantees time linear in the line's length for every pattern it accepts; it
refuses the features that need backtracking (backreferences, lookaround). So the config check
rejects what RE2 cannot compile, and the engine compiles a validated pattern here, with the
same options, so that what ``check`` accepts is exactly what runs.

This module imports neither pydantic nor the schema: the engine may use it at run time.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2  # type: ignore[import-untyped]

#: Memory RE2 may use for one compiled pattern (its default, stated here so it is one place).
MAX_PROGRAM_BYTES = 8 << 20

#: RE2's refusals of what a backtracking engine (Python's ``re``, PCRE) accepts, and why.
_UNSUPPORTED = {
    "invalid perl operator": "lookaround ((?=, (?!, (?<=, (?<!) needs backtracking",
    "bad repetition operator": "possessive quantifiers (a++) need backtracking",
    "invalid repetition size": "a repeat count is at most 1000, nested counts multiplied",
    "pattern too large": "the compiled pattern is larger than 8 MiB",
}
_LINEAR = "mpsv3 matches log patterns with RE2, in linear time"


class CompiledPattern(Protocol):
    """What the engine uses of a compiled pattern (RE2's ``_Regexp``)."""

    def search(self, text: str) -> Any: ...


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line to fd 2, outside our format
    options.max_mem = MAX_PROGRAM_BYTES
    return options


def compile_pattern(text: str) -> CompiledPattern:
    """Compile a pattern that :func:`pattern_problem` accepted; ``.search(line)`` runs in linear time.

    Raises:
        ValueError: the pattern does not compile (a config that was not validated).
    """
    try:
        return re2.compile(text, _options())  # type: ignore[no-any-return]
    except re2.error as exc:
        raise ValueError(_describe(exc)) from None


def pattern_problem(text: str) -> str | None:
    """Why ``text`` cannot be used as a log pattern, as one line; None when it compiles."""
    if "\0" in text:
        return "contains a NUL character"
    try:
        re2.compile(text, _options())
    except re2.error as exc:
        return _describe(exc)
    return None


def _describe(exc: Exception) -> str:
    """RE2's error text (bytes in some versions), plus why it refuses, when that is known."""
    raw = exc.args[0] if exc.args else str(exc)
    reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    reason = " ".join(reason.split())
    why = _why(reason)
    return f"{reason}: {why} ({_LINEAR})" if why else reason


def _why(reason: str) -> str | None:
    if reason.startswith("invalid escape sequence: "):
        escape = reason.removeprefix("invalid escape sequence: ")
        if escape[1:2].isdigit():
            return "backreferences need backtracking"
        if escape == "\\Z":
            return "write \\z for the end of the text"
        return None
    for start, why in _UNSUPPORTED.items():
        if reason.startswith(start):
            return why
    return None
