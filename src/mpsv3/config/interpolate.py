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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: What a variable name may look like (the POSIX shell's rule).
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(ValueError):
    """A string cannot be interpolated; the message is one line, ready for ``FILE:LINE:``."""


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Substitute every ``${...}`` and ``$$`` in ``text``.

    Args:
        text: a string scalar of the config.
        variables: the variables defined at this point (name -> value).

    Returns:
        The text with every reference replaced.

    Raises:
        InterpolationError: an undefined variable without default, a bad name, or an
            unterminated ``${``.
    """
    if "$" not in text:
        return text
    result, end = _expand(text, 0, variables, nested=False, strict=True)
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


def _expand(
    text: str, start: int, variables: Mapping[str, str], *, nested: bool, strict: bool
) -> tuple[str, int]:
    """Expand from ``start`` up to the end of ``text`` (or, when nested, the closing ``}``).

    Returns the expansion and the index of where it stopped (a nested expansion stops at its
    closing ``}``, which the caller consumes). With ``strict`` false (a default that is not
    used), an undefined variable is not an error: like the shell, defaults are lazy.
    """
    out: list[str] = []
    i = start
    depth = 0  # plain braces inside a default, so that "${A:-{x}}" keeps its "{x}"
    while i < len(text):
        char = text[i]
        if char == "$" and text.startswith("$$", i):
            out.append("$")
            i += 2
        elif char == "$" and text.startswith("${", i):
            value, i = _reference(text, i, variables, strict=strict)
            out.append(value)
        elif nested and char == "}" and depth == 0:
            return "".join(out), i
        else:
            if nested and char == "{":
                depth += 1
            elif nested and char == "}":
                depth -= 1
            out.append(char)
            i += 1
    if nested:
        raise InterpolationError(f"unterminated ${{...}} in {text!r}")
    return "".join(out), i


def _reference(
    text: str, start: int, variables: Mapping[str, str], *, strict: bool
) -> tuple[str, int]:
    """Expand the ``${...}`` that begins at ``start``; return it and the index past its ``}``."""
    match = VAR_NAME.match(text, start + 2)
    if match is None:
        raise _bad_reference(text, start)
    name = match.group()
    i = match.end()
    if text.startswith("}", i):
        if name not in variables:
            if not strict:
                return "", i + 1
            raise InterpolationError(
                f"undefined variable ${{{name}}} (set it in the environment, in env:, "
                f"or with --set {name}=...)"
            )
        return variables[name], i + 1
    if text.startswith(":-", i):
        value = variables.get(name, "")
        default, i = _expand(text, i + 2, variables, nested=True, strict=strict and not value)
        return (value if value else default), i + 1
    if i >= len(text):
        raise InterpolationError(f"unterminated ${{...}} in {text!r}")
    raise _bad_reference(text, start)


def _bad_reference(text: str, start: int) -> InterpolationError:
    close = text.find("}", start)
    shown = text[start : close + 1] if close >= 0 else text[start:]
    return InterpolationError(
        f"bad variable reference {shown!r}: expected ${{NAME}} or ${{NAME:-default}}"
    )


#: Where a string sits in the document: mapping keys and list indexes.
DocumentPath = tuple[str | int, ...]


def interpolate_document(
    data: dict[str, Any], environ: Mapping[str, str], overrides: Mapping[str, str]
) -> list[tuple[DocumentPath, str | None]]:
    """Interpolate every string scalar of a config document in place (keys are left alone).

    The variables are built in layers: ``environ`` first, then the top-level ``env`` keys in
    order (each interpolated against what is defined so far, then defining a variable), then
    ``overrides`` on top; a ``--set`` of an ``env`` key's name replaces that key's value.
    Every other string is interpolated against the result. A string that fails is left as
    written.

    Returns:
        ``(path, message)`` for each string that failed; the message is None when the failure
        only follows from an ``env`` key that failed already (one mistake, one error).
    """
    problems: list[tuple[DocumentPath, str | None]] = []
    broken: set[str] = set()
    variables = dict(environ)

    def expand(value: str, path: DocumentPath, known: Mapping[str, str]) -> str | None:
        try:
            return interpolate(value, known)
        except InterpolationError as exc:
            consequence = bool(broken.intersection(references(value)))
            problems.append((path, None if consequence else str(exc)))
            return None

    env = data.get("env")
    if isinstance(env, dict):
        for key, value in env.items():
            if key in overrides:
                env[key] = overrides[key]
            elif isinstance(value, str):
                expanded = expand(value, ("env", key), {**variables, **overrides})
                if expanded is None:
                    broken.add(key)
                    continue
                env[key] = expanded
            else:
                continue
            variables[key] = env[key]
    variables.update(overrides)

    def walk(node: Any, path: DocumentPath) -> Any:
        if isinstance(node, str):
            expanded = expand(node, path, variables)
            return node if expanded is None else expanded
        if isinstance(node, dict):
            for key in node:
                if path or key != "env":
                    node[key] = walk(node[key], (*path, key))
        elif isinstance(node, list):
            for n, item in enumerate(node):
                node[n] = walk(item, (*path, n))
        return node

    walk(data, ())
    return problems
