"""``${VAR}`` interpolation of config strings: pure, no I/O, no environment access.

Why its own module: the rules are small but easy to get subtly wrong (escapes, defaults,
nesting), so they are tested apart from YAML. The loader owns the variables (the supervisor's
environment, the top-level ``env`` keys, ``--set`` overrides) and passes them in; this module
only substitutes.

Syntax:

* ``${VAR}``: the value of VAR; an error when VAR is not defined.
* ``${VAR:-default}``: the value of VAR, or ``default`` when VAR is undefined or empty. The
  default is itself interpolated, so ``${A:-${B:-x}}`` works.
* ``$$``: a literal ``$`` (so ``$${HOME}`` reaches the service as ``${HOME}``).
* A ``$`` followed by anything else is kept as is (``$HOME`` in a shell command is the shell's).

Bounds (issue 15): defaults nest at most ``MAX_DEPTH`` deep (a hostile ``${A:-${A:-…}}`` is a
clear error, not a RecursionError), and one document's interpolation produces at most
``MAX_EXPANSION`` characters (``B: "${A}${A}"``, ``C: "${B}${B}"``… doubles at every key: a
billion laughs made of variables).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

#: What a variable name may look like (the POSIX shell's rule).
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: How deep ``${A:-${B:-...}}`` defaults may nest.
MAX_DEPTH = 32

#: Characters the interpolation of one document may produce (8 MiB of text).
MAX_EXPANSION = 8 << 20


class InterpolationError(ValueError):
    """A string cannot be interpolated; the message is one line, ready for ``FILE:LINE:``."""


class UndefinedVariable(InterpolationError):
    """``${NAME}`` without a default, and NAME is not defined."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"undefined variable ${{{name}}} (set it in the environment, in env:, "
            f"or with --set {name}=...)"
        )
        self.name = name


class ExpansionTooLarge(InterpolationError):
    """The document's interpolation went past ``MAX_EXPANSION`` characters."""


class Budget:
    """The characters one document's interpolation may still produce; shared by its strings.

    Owned by one load (one thread); the replica expansion spends from the same budget.
    """

    def __init__(self, chars: int = MAX_EXPANSION) -> None:
        self.left = chars

    def spend(self, chars: int) -> None:
        """Take ``chars`` from the budget.

        Raises:
            ExpansionTooLarge: the budget is exhausted.
        """
        self.left -= chars
        if self.left < 0:
            raise ExpansionTooLarge(
                f"the config expands to more than {MAX_EXPANSION >> 20} MiB of text "
                "through ${...} references (and replicas): refused"
            )


def interpolate(
    text: str,
    variables: Mapping[str, str],
    *,
    budget: Budget | None = None,
    keep: str | None = None,
) -> str:
    """Substitute every ``${...}`` and ``$$`` in ``text``.

    Args:
        text: a string scalar of the config.
        variables: the variables defined at this point (name -> value).
        budget: the document's expansion budget (default: a fresh one for this string).
        keep: a variable whose references are kept as written; the result is then itself a
            config string (every other ``$`` written ``$$``), which interpolates later to the
            same text once ``keep`` is defined (``--explain`` of a replicated service).

    Returns:
        The text with every reference replaced.

    Raises:
        InterpolationError: an undefined variable without default, a bad name, an
            unterminated ``${``, defaults nested deeper than ``MAX_DEPTH``, or an expansion
            past the budget.
    """
    if "$" not in text:
        return text
    expander = _Expander(text, variables, budget or Budget(), keep)
    result, end = expander.expand(0, nested=False, strict=True, depth=0)
    assert end == len(text)
    return result


def references(text: str) -> list[str]:
    """The names of the variables ``text`` refers to, in order (defaults included)."""
    names: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
        elif text.startswith("${", i):
            match = VAR_NAME.match(text, i + 2)
            if match:
                names.append(match.group())
                i = match.end()
            else:
                i += 2
        else:
            i += 1
    return names


class _Expander:
    """One string's expansion: the text, the variables, and what it may spend."""

    def __init__(
        self, text: str, variables: Mapping[str, str], budget: Budget, keep: str | None
    ) -> None:
        self.text = text
        self.variables = variables
        self.budget = budget
        self.keep = keep

    def expand(self, start: int, *, nested: bool, strict: bool, depth: int) -> tuple[str, int]:
        """Expand from ``start`` up to the end of the text (or, when nested, the closing ``}``).

        Returns the expansion and the index of where it stopped (a nested expansion stops at
        its closing ``}``, which the caller consumes). With ``strict`` false (a default that is
        not used), an undefined variable is not an error: like the shell, defaults are lazy.
        """
        text, out = self.text, []
        literal_dollar = "$$" if self.keep else "$"
        i = start
        braces = 0  # plain braces inside a default, so that "${A:-{x}}" keeps its "{x}"
        while i < len(text):
            char = text[i]
            if char == "$" and text.startswith("$$", i):
                out.append(literal_dollar)
                i += 2
            elif char == "$" and text.startswith("${", i):
                value, i = self._reference(i, strict=strict, depth=depth)
                out.append(value)
            elif nested and char == "}" and braces == 0:
                return "".join(out), i
            else:
                if nested and char == "{":
                    braces += 1
                elif nested and char == "}":
                    braces -= 1
                out.append(literal_dollar if char == "$" else char)
                i += 1
        if nested:
            raise InterpolationError(f"unterminated ${{...}} in {_shown(text)}")
        return "".join(out), i

    def _reference(self, start: int, *, strict: bool, depth: int) -> tuple[str, int]:
        """Expand the ``${...}`` that begins at ``start``; return it and the index past its ``}``."""
        text = self.text
        match = VAR_NAME.match(text, start + 2)
        if match is None:
            raise _bad_reference(text, start)
        name = match.group()
        i = match.end()
        if name == self.keep:
            end = self._reference_end(i, start, depth)
            return text[start:end], end
        if text.startswith("}", i):
            if name not in self.variables:
                if not strict:
                    return "", i + 1
                raise UndefinedVariable(name)
            return self._value(name), i + 1
        if text.startswith(":-", i):
            if depth >= MAX_DEPTH:
                raise InterpolationError(
                    f"${{...}} defaults nested more than {MAX_DEPTH} deep in {_shown(text)}"
                )
            value = self.variables.get(name, "")
            default, i = self.expand(
                i + 2, nested=True, strict=strict and not value, depth=depth + 1
            )
            return (self._value(name) if value else default), i + 1
        if i >= len(text):
            raise InterpolationError(f"unterminated ${{...}} in {_shown(text)}")
        raise _bad_reference(text, start)

    def _reference_end(self, i: int, start: int, depth: int) -> int:
        """Where a kept reference ends (its syntax is still checked)."""
        if self.text.startswith("}", i):
            return i + 1
        if self.text.startswith(":-", i):
            if depth >= MAX_DEPTH:
                raise InterpolationError(
                    f"${{...}} defaults nested more than {MAX_DEPTH} deep in {_shown(self.text)}"
                )
            _, end = self.expand(i + 2, nested=True, strict=False, depth=depth + 1)
            return end + 1
        if i >= len(self.text):
            raise InterpolationError(f"unterminated ${{...}} in {_shown(self.text)}")
        raise _bad_reference(self.text, start)

    def _value(self, name: str) -> str:
        """A variable's value (escaped when the result is a config string), paid for."""
        value = self.variables[name]
        self.budget.spend(len(value))
        return value.replace("$", "$$") if self.keep else value


def _bad_reference(text: str, start: int) -> InterpolationError:
    close = text.find("}", start)
    shown = text[start : close + 1] if close >= 0 else text[start:]
    return InterpolationError(
        f"bad variable reference {_shown(shown)}: expected ${{NAME}} or ${{NAME:-default}}"
    )


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut short: a message stays one readable line."""
    return repr(text) if len(text) <= 80 else repr(text[:60]) + "..."


#: Where a string sits in the document: mapping keys and list indexes.
DocumentPath = tuple[str | int, ...]


class DocumentInterpolator:
    """Interpolates one config document in place: the global ``env`` layer, then any subtree.

    The variables are built in layers: ``environ`` first, then the top-level ``env`` keys in
    order (each interpolated against what is defined so far, then defining a variable), then
    ``overrides`` on top; a ``--set`` of an ``env`` key's name replaces that key's value.
    Every other string is interpolated against the result (plus, for a replicated service,
    ``MPSV3_REPLICA``). A string that fails is left as written.

    Args:
        environ: the variables below ``env:`` (the supervisor's environment, mpsv3's own).
        overrides: ``--set`` variables, above everything.
        budget: the document's expansion budget.
        hints: what to say of a variable that is undefined in some places only.

    Attributes:
        problems: ``(path, message)`` for each string that failed; the message is None when
            the failure only follows from an ``env`` key that failed already (one mistake,
            one error).
        budget: the expansion budget of the document.

    Owned by one load; not shared between threads.
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        overrides: Mapping[str, str],
        budget: Budget,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        self.problems: list[tuple[DocumentPath, str | None]] = []
        self.budget = budget
        self._hints = hints or {}  # variable -> what to say when it is undefined
        self._environ = environ
        self._overrides = overrides
        self._broken: set[str] = set()
        self._too_large = False  # the budget ran out: said once, not at every string after

    def env_layer(self, data: dict[str, Any]) -> dict[str, str]:
        """Interpolate the top-level ``env`` in place; return the variables for the rest."""
        variables = dict(self._environ)
        env = data.get("env")
        if isinstance(env, dict):
            for key, value in env.items():
                if key in self._overrides:
                    env[key] = self._overrides[key]
                elif isinstance(value, str):
                    expanded = self.expand(value, ("env", key), {**variables, **self._overrides})
                    if expanded is None:
                        self._broken.add(key)
                        continue
                    env[key] = expanded
                else:
                    continue
                variables[key] = env[key]
        variables.update(self._overrides)
        return variables

    def expand(self, value: str, path: DocumentPath, variables: Mapping[str, str]) -> str | None:
        """One string, or None (and a recorded problem) when it cannot be interpolated."""
        try:
            return interpolate(value, variables, budget=self.budget)
        except ExpansionTooLarge as exc:
            self.problems.append((path, None if self._too_large else str(exc)))
            self._too_large = True
            return None
        except InterpolationError as exc:
            consequence = bool(self._broken.intersection(references(value)))
            message = str(exc)
            if isinstance(exc, UndefinedVariable) and exc.name in self._hints:
                message = f"undefined variable ${{{exc.name}}}: {self._hints[exc.name]}"
            self.problems.append((path, None if consequence else message))
            return None

    def walk(self, node: Any, path: DocumentPath, variables: Mapping[str, str]) -> Any:
        """Interpolate every string under ``node`` (keys are left alone); return the node."""
        if isinstance(node, str):
            expanded = self.expand(node, path, variables)
            return node if expanded is None else expanded
        if isinstance(node, dict):
            for key in node:
                node[key] = self.walk(node[key], (*path, key), variables)
        elif isinstance(node, list):
            for n, item in enumerate(node):
                node[n] = self.walk(item, (*path, n), variables)
        return node


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """Turn ``--set VAR=VALUE`` arguments into variables (a later one wins).

    Here, not in the loader: client commands parse ``--set`` without loading anything else.

    Raises:
        MpsvError: an argument is not ``NAME=VALUE`` with a valid variable name (exit 2).
    """
    from mpsv3.errors import EXIT_USAGE, MpsvError

    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not VAR_NAME.fullmatch(name):
            raise MpsvError(f"--set {pair!r}: expected VAR=VALUE, VAR made of letters, digits and _", EXIT_USAGE)
        result[name] = value
    return result
