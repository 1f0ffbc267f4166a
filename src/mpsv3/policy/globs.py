"""Glob matching for ``watch.paths``: pure string work, no filesystem access.

The file watcher (``mpsv3.engine.watcher``) owns one ``GlobSet`` per service and asks it whether a
changed path concerns that service; config checks call ``validate_glob`` to report a bad
pattern as a config error. Nothing here touches the disk, so the semantics are unit-tested
as a plain table.

Semantics (gitignore-like, chosen so that a ``services.yaml`` reads the way a ``.gitignore``
does):

- Patterns and paths are relative to the config file's folder and use ``/``; a backslash is
  read as a separator too (Windows paths), so there is no escape character: write ``[*]``
  to match a literal ``*``.
- ``*`` matches within one path segment (dotfiles included), ``?`` one character,
  ``[abc]`` / ``[a-z]`` / ``[!abc]`` (or ``[^abc]``) one character of a class.
- ``**`` as a whole segment matches any number of segments: zero or more in the middle
  (``app/**/*.py`` matches ``app/x.py``), one or more at the end (``web/**`` matches
  everything under ``web/``). ``**`` inside a segment (``a**b``) is a plain ``*``.
- ``{a,b}`` alternatives, nested allowed (``{src,lib/{x,y}}/*.py``); a group without a comma
  is literal text, as in a shell.
- A pattern without a ``/`` (``*.py``, ``node_modules/``) matches at any depth below the root;
  one with a ``/`` is anchored at the root.
- A pattern that matches a directory also matches everything beneath it, so ``web`` and
  ``web/`` cover ``web/a/b.js``. A trailing ``/`` is accepted and means the same thing (the
  matcher cannot tell files from directories without touching the disk).
- ``!pattern`` excludes. Patterns are applied in order and the last one that matches decides
  (a path no pattern matches is not selected), so ``!app/tests/**`` after ``app/**`` removes
  the tests and a later ``app/tests/keep.py`` brings one back.
- ``..`` is allowed only as leading segments (``../shared/**``): a path outside the root is
  matched only by patterns that climb exactly as far, never by ``**`` or an unanchored one.
- Absolute patterns (a leading ``/``, a drive letter) are rejected: everything is relative to
  the config file.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence

__all__ = [
    "DEFAULT_EXCLUDES",
    "GlobSet",
    "expand_braces",
    "normalize_relpath",
    "validate_glob",
]

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git/",
    "__pycache__/",
    "*.pyc",
    "node_modules/",
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.tmp",
)
"""Always excluded, for every service: VCS data, bytecode, dependencies, editor temp files."""

_MAX_EXPANSIONS = 256
_GLOB_CHARS = frozenset("*?[")
_DRIVE = re.compile(r"^[A-Za-z]:")


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{a,b}`` alternatives (nested allowed) into plain patterns, in order.

    A group without a top-level comma stays literal (``{a}`` is the text ``{a}``), and braces
    inside a ``[...]`` class are literal.

    Raises:
        ValueError: unbalanced braces, or more than 256 expansions.
    """
    results = _expand(pattern)
    if len(results) > _MAX_EXPANSIONS:
        raise ValueError(f"braces expand to more than {_MAX_EXPANSIONS} patterns")
    return results


def _expand(text: str) -> list[str]:
    start = _find_group(text)
    if start is None:
        return [text]
    end, commas = _group_end(text, start)
    head, tail = text[:start], text[end + 1 :]
    if not commas:
        # A literal group: keep its braces, expand what is inside and after it.
        return [
            head + "{" + mid + "}" + rest
            for mid in _expand(text[start + 1 : end])
            for rest in _expand(tail)
        ]
    bounds = [start, *commas, end]
    options: list[str] = []
    for left, right in itertools.pairwise(bounds):
        options.extend(_expand(text[left + 1 : right]))
        if len(options) > _MAX_EXPANSIONS:
            raise ValueError(f"braces expand to more than {_MAX_EXPANSIONS} patterns")
    tails = _expand(tail)
    return [head + option + rest for option in options for rest in tails]


def _find_group(text: str) -> int | None:
    """Index of the first ``{`` outside a class; raises on a stray ``}``."""
    for index, char in _outside_classes(text, 0):
        if char == "{":
            return index
        if char == "}":
            raise ValueError("unbalanced '}'")
    return None


def _group_end(text: str, start: int) -> tuple[int, list[int]]:
    """The matching ``}`` of the group at ``start`` and its top-level comma positions."""
    depth = 0
    commas: list[int] = []
    for index, char in _outside_classes(text, start):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index, commas
        elif char == "," and depth == 1:
            commas.append(index)
    raise ValueError("unbalanced '{'")


def _outside_classes(text: str, start: int) -> Iterator[tuple[int, str]]:
    """Each character from ``start`` with its index, character classes ``[...]`` skipped."""
    index = start
    while index < len(text):
        if text[index] == "[":
            index = _class_end(text, index) + 1
            continue
        yield index, text[index]
        index += 1


def _class_end(text: str, start: int) -> int:
    """Index of the ``]`` closing the class opened at ``start`` (``[]a]`` holds a ``]``)."""
    index = start + 1
    if index < len(text) and text[index] in "!^":
        index += 1
    if index < len(text) and text[index] == "]":
        index += 1
    while index < len(text) and text[index] != "]":
        if text[index] in "/\\":
            break
        index += 1
    if index >= len(text) or text[index] != "]":
        raise ValueError("unclosed '[' character class")
    return index


def normalize_relpath(path: str) -> tuple[int, str]:
    """Split a relative path into (number of leading ``..``, the rest with ``/`` separators).

    ``.`` segments and empty segments are dropped, and ``a/../b`` is folded to ``b``.
    """
    parts: list[str] = []
    ups = 0
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            else:
                ups += 1
            continue
        parts.append(part)
    return ups, "/".join(parts)


class _Compiled:
    """One user pattern compiled once: a regex per number of leading ``..`` segments."""

    __slots__ = ("exclude", "regexes", "roots", "text")

    def __init__(self, text: str) -> None:
        problem = validate_glob(text)
        if problem is not None:
            raise ValueError(f"{text!r}: {problem}")
        self.text = text
        self.exclude = text.startswith("!")
        body = text[1:] if self.exclude else text
        alternatives: dict[int, list[str]] = {}
        roots: list[str] = []
        for expanded in expand_braces(body.replace("\\", "/")):
            ups, regex, root = _translate(expanded)
            alternatives.setdefault(ups, []).append(regex)
            roots.append(root)
        self.regexes = {
            ups: re.compile("|".join(f"(?:{r})" for r in rs)) for ups, rs in alternatives.items()
        }
        self.roots = roots

    def matches(self, ups: int, rest: str) -> bool:
        regex = self.regexes.get(ups)
        return regex is not None and regex.fullmatch(rest) is not None


def _translate(pattern: str) -> tuple[int, str, str]:
    """One brace-free pattern -> (leading ``..`` count, regex for the rest, static root)."""
    anchored = "/" in pattern.rstrip("/")
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    ups = 0
    while segments and segments[0] == "..":
        ups += 1
        segments.pop(0)
    regex = "" if anchored else "(?:[^/]+/)*"
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            regex += "[^/]+(?:/[^/]+)*" if last else "(?:[^/]+/)*"
        else:
            regex += _translate_segment(segment) + ("" if last else "/")
    if not (segments and segments[-1] == "**"):
        regex += "(?:/.*)?"
    static: list[str] = []
    if anchored:
        for segment in segments if pattern.endswith("/") else segments[:-1]:
            if segment == "**" or not _GLOB_CHARS.isdisjoint(segment):
                break
            static.append(segment)
    root = "/".join([".."] * ups + static)
    return ups, regex, root


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            while index + 1 < len(segment) and segment[index + 1] == "*":
                index += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = _class_end(segment, index)
            inner = segment[index + 1 : end]
            negate = inner[:1] in ("!", "^")
            if negate:
                inner = inner[1:]
            escaped = inner.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
            out.append(f"[^/{escaped}]" if negate else f"(?!/)[{escaped}]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def validate_glob(pattern: str) -> str | None:
    """``None`` if ``pattern`` is a usable watch pattern, else a one-line description of it.

    Config checks call this to report ``services.yaml:LINE: bad glob ...`` before anything runs.
    """
    body = pattern[1:] if pattern.startswith("!") else pattern
    if not body.strip():
        return "empty pattern" if not pattern.startswith("!") else "nothing after '!'"
    normal = body.replace("\\", "/")
    if normal.startswith("/") or _DRIVE.match(normal):
        return "absolute path: watch patterns are relative to the config file (use ../ to go up)"
    try:
        for expanded in expand_braces(normal):
            segments = [s for s in expanded.split("/") if s not in ("", ".")]
            while segments and segments[0] == "..":
                segments.pop(0)
            if ".." in segments:
                return "'..' is allowed only at the start of a pattern"
            for segment in segments:
                re.compile(_translate_segment(segment))
    except ValueError as err:
        return str(err)
    except re.error as err:
        return f"bad character class: {err}"
    return None


class GlobSet:
    """Ordered include/exclude patterns relative to a root; the last matching pattern wins.

    Immutable once built; safe to share between tasks and threads. Owned by the watcher's
    ``WatchTable`` (one per service, plus one for ``DEFAULT_EXCLUDES``).

    Args:
        patterns: the ``watch.paths`` list, in order; ``!`` marks an exclude.

    Raises:
        ValueError: a pattern that ``validate_glob`` rejects, naming the pattern.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self._compiled = [_Compiled(p) for p in patterns]
        self.patterns: tuple[str, ...] = tuple(patterns)

    def matches(self, relpath: str) -> bool:
        """Whether ``relpath`` (relative to the root; ``/`` or ``\\`` separators) is selected."""
        ups, rest = normalize_relpath(relpath)
        if not rest:
            return False
        for compiled in reversed(self._compiled):
            if compiled.matches(ups, rest):
                return not compiled.exclude
        return False

    def roots(self) -> list[str]:
        """Static directory prefixes of the include patterns, sorted, unique (``""`` = the root).

        The prefix is the directory part before the first segment with a glob character:
        ``app/**/*.py`` -> ``app``, ``engine/main.py`` -> ``engine``, ``*.py`` -> ``""``
        (matches at any depth), ``../shared/*.py`` -> ``../shared``.
        """
        found = {root for c in self._compiled if not c.exclude for root in c.roots}
        return sorted(found)

    def __repr__(self) -> str:
        return f"GlobSet({list(self.patterns)!r})"
