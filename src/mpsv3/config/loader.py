"""Load ``services.yaml``: YAML with line numbers, interpolation, schema, checks, resolution.

Why this shape: the contract promises every problem of a config at once, each as
``FILE:LINE: message``, and never a traceback. So the loader is a pipeline that collects
``ConfigError`` values at each step (read, parse, interpolate, schema, cross-service checks)
and raises one ``ConfigInvalid`` at the end; no other exception type escapes for bad input.
The YAML node tree is walked by hand (``yaml.compose``) to keep the line of every key and
item, and to catch duplicate keys that a plain ``safe_load`` silently drops.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mpsv3.config.checks import (
    Path_,
    Source,
    describe_path,
    partial_stack,
    run_checks,
    schema_errors,
)
from mpsv3.config.interpolate import VAR_NAME, interpolate_document
from mpsv3.config.schema import Config, StackSpec
from mpsv3.errors import EXIT_USAGE, ConfigError, ConfigInvalid, MpsvError

__all__ = ["load_config", "load_config_text", "parse_overrides"]


def load_config(
    path: Path | str,
    overrides: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read, validate and resolve a config file.

    Args:
        path: the config file, as the user gave it (errors name it this way).
        overrides: ``--set`` variables; they win over the environment and ``env:``.
        environ: the variables of the supervisor's environment (default ``os.environ``).

    Returns:
        The validated config, every relative path resolved against the file's folder.

    Raises:
        ConfigInvalid: with every problem found, each located by line.
    """
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = " (use -c FILE)" if isinstance(exc, FileNotFoundError) else ""
        raise ConfigInvalid(
            [ConfigError(shown, 0, f"cannot read config: {reason}{hint}")]
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"cannot read config: not UTF-8 text (byte 0x{raw[exc.start]:02x})"
        raise ConfigInvalid([ConfigError(shown, line, message)]) from None
    return load_config_text(text, path, overrides, environ=environ)


def load_config_text(
    text: str,
    path: Path | str,
    overrides: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate and resolve a config given as text; ``path`` locates it (errors, relative paths).

    Same contract as :func:`load_config`; used by it, by ``reload`` and by the tests.
    """
    shown = str(path)
    document = build(text, shown)
    errors = list(document.errors)
    data = document.data
    if errors and data is None:
        raise ConfigInvalid(errors)
    if data is None:
        message = "the config is empty: expected a mapping with version: 1 and services:"
        raise ConfigInvalid([ConfigError(shown, 0, message)])
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the scalar {data!r}"
        message = f"the config must be a mapping (version: 1, services: ...), got {kind}"
        raise ConfigInvalid([*errors, ConfigError(shown, document.lines.line(()), message)])

    lines = document.lines
    variables = {**(os.environ if environ is None else environ), **builtin_variables(data, path)}
    problems = interpolate_document(data, variables, overrides or {})
    errors += [ConfigError(shown, lines.value_line(p), m) for p, m in problems if m is not None]
    failed = [path for path, _ in problems]
    _stringify_env_numbers(data, lines)
    stack: StackSpec | None = None
    try:
        stack = StackSpec.model_validate(data)
    except ValidationError as exc:
        schema = schema_errors(exc, data, Source(shown, lines))
        errors += [error for loc, error in schema if not _under_any(loc, failed)]
        partial = partial_stack(data)
        if partial is not None:
            kept, indexes, declared = partial
            errors += run_checks(kept, Source(shown, lines, tuple(indexes), frozenset(declared)))
    else:
        errors += run_checks(stack, Source(shown, lines, tuple(range(len(stack.services)))))
    if errors or stack is None:
        raise ConfigInvalid(errors)
    absolute = Path(os.path.abspath(path))
    return Config(path=absolute, stack=_resolve(stack, absolute))


def builtin_variables(data: dict[str, Any], path: Path | str) -> dict[str, str]:
    """Variables mpsv3 defines for interpolation (they win over the environment, not --set).

    ``MPSV3_PYTHON`` is the interpreter running mpsv3 (so a stack started from a virtualenv
    runs its Python services in it), ``MPSV3_CONFIG_DIR`` the config file's folder, and
    ``MPSV3_STATE_DIR`` the absolute state dir when it is written without variables.
    """
    root = Path(os.path.abspath(path)).parent
    variables = {"MPSV3_PYTHON": sys.executable, "MPSV3_CONFIG_DIR": str(root)}
    state_dir = data.get("state_dir", ".mpsv3")
    if isinstance(state_dir, str) and "$" not in state_dir:
        variables["MPSV3_STATE_DIR"] = os.path.normpath(root / state_dir)
    return variables


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """Turn ``--set VAR=VALUE`` arguments into variables (a later one wins).

    Raises:
        MpsvError: an argument is not ``NAME=VALUE`` with a valid variable name (exit 2).
    """
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not VAR_NAME.fullmatch(name):
            raise MpsvError(
                f"--set {pair!r}: expected VAR=VALUE, VAR made of letters, digits and _",
                EXIT_USAGE,
            )
        result[name] = value
    return result


# ------------------------------------------------------------------------- YAML with lines

_TAG = "tag:yaml.org,2002:"
_MAX_VALUES = 100_000  # alias bombs expand to millions of values: refuse them


class SourceMap:
    """Where each part of the document was written: the line of a key, an item, a value.

    Paths are tuples of mapping keys and list indexes, the same shape as pydantic's ``loc``.
    """

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self._key_lines: dict[Path_, int] = {(): 1}
        self._value_lines: dict[Path_, int] = {}
        self._texts: dict[Path_, str] = {}

    def record(self, path: Path_, key_line: int, value_line: int, text: str | None) -> None:
        self._key_lines[path] = key_line
        self._value_lines[path] = value_line
        if text is not None:
            self._texts[path] = text

    def line(self, path: Path_) -> int:
        """The line of the key (or list item) at ``path``, else of its nearest ancestor."""
        for end in range(len(path), -1, -1):
            line = self._key_lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1

    def value_line(self, path: Path_) -> int:
        """The line where the value at ``path`` begins (a block value starts below its key)."""
        return self._value_lines.get(tuple(path)) or self.line(path)

    def scalar_text(self, path: Path_, default: str) -> str:
        """A non-string scalar exactly as written (``1.10``, not ``1.1``)."""
        return self._texts.get(tuple(path), default)


class Document:
    """The plain data of a YAML file, where each part was written, and what went wrong."""

    def __init__(self, data: Any, lines: SourceMap, errors: list[ConfigError]) -> None:
        self.data = data
        self.lines = lines
        self.errors = errors


class _TooLarge(Exception):
    """The document expands past the size limit (an alias bomb)."""


def build(text: str, shown: str) -> Document:
    """Parse ``text`` into plain data, keeping lines; syntax errors become ``ConfigError``."""
    lines = SourceMap(shown)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        return Document(None, lines, [ConfigError(shown, line, _yaml_message(exc))])
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        message = f"YAML syntax error: unacceptable character: {exc.reason}"
        return Document(None, lines, [ConfigError(shown, line, message)])
    except yaml.YAMLError as exc:
        return Document(
            None, lines, [ConfigError(shown, 0, f"YAML syntax error: {_one_line(str(exc))}")]
        )
    except RecursionError:
        return Document(None, lines, [ConfigError(shown, 0, "YAML is nested too deeply")])
    if node is None:
        return Document(None, lines, [])
    builder = _Builder(shown, lines)
    try:
        data = builder.value(node, (), node.start_mark.line + 1)
    except _TooLarge:
        return Document(
            None, lines, [ConfigError(shown, 1, "the config is too large (alias bomb?)")]
        )
    except RecursionError:
        return Document(None, lines, [ConfigError(shown, 0, "YAML is nested too deeply")])
    return Document(data, lines, builder.errors)


class _Builder:
    """Walks a composed node tree into dicts, lists and scalars, recording every line."""

    def __init__(self, shown: str, lines: SourceMap) -> None:
        self.shown = shown
        self.lines = lines
        self.errors: list[ConfigError] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._active: set[int] = set()  # collections being built: a recursive alias ends here
        self._count = 0

    def error(self, line: int, message: str) -> None:
        self.errors.append(ConfigError(self.shown, line, message))

    def value(self, node: yaml.Node, path: Path_, key_line: int) -> Any:
        self._count += 1
        if self._count > _MAX_VALUES:
            raise _TooLarge
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            value, text = self._scalar(node, line)
            self.lines.record(path, key_line, line, text)
            return value
        self.lines.record(path, key_line, line, None)
        if id(node) in self._active:
            self.error(line, f"{describe_path(path)}recursive alias: a value that contains itself")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _TAG + "seq":
                return [
                    self.value(item, (*path, n), item.start_mark.line + 1)
                    for n, item in enumerate(node.value)
                ]
            if isinstance(node, yaml.MappingNode) and node.tag == _TAG + "map":
                return self._mapping(node, path)
            self.error(line, f"{describe_path(path)}unsupported YAML tag {_short_tag(node.tag)}")
            return None
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, line: int) -> tuple[Any, str | None]:
        tag = node.tag.removeprefix(_TAG)
        if tag in ("str", "timestamp"):  # no field is a date: "2024-01-01" stays text
            return node.value, None
        if tag in ("int", "float", "bool", "null"):
            try:
                built = getattr(self._constructor, f"construct_yaml_{tag}")(node)
            except (ValueError, yaml.YAMLError) as exc:
                self.error(line, f"cannot read {node.value!r} as {tag}: {_one_line(str(exc))}")
                return node.value, None
            return built, node.value
        self.error(line, f"unsupported YAML tag {_short_tag(node.tag)}")
        return node.value, None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        """Build a mapping; duplicate keys are errors; ``<<`` merge keys work as in YAML 1.1."""
        explicit: list[tuple[str, int, yaml.Node]] = []
        first_line: dict[str, int] = {}
        merged: list[tuple[str, int, yaml.Node]] = []
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _TAG + "merge":
                merged += self._merge_sources(value_node, path)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(
                    key_line,
                    f"{describe_path(path)}a key must be a plain name, not a list or mapping",
                )
                continue
            key = key_node.value
            if key in first_line:
                self.error(
                    key_line,
                    f"{describe_path(path)}duplicate key {json.dumps(key)} (first at line {first_line[key]})",
                )
                continue
            first_line[key] = key_line
            explicit.append((key, key_line, value_node))
        result: dict[str, Any] = {}
        for key, key_line, value_node in merged:
            if key not in first_line and key not in result:
                result[key] = self.value(value_node, (*path, key), key_line)
        for key, key_line, value_node in explicit:
            result[key] = self.value(value_node, (*path, key), key_line)
        return result

    def _merge_sources(self, node: yaml.Node, path: Path_) -> list[tuple[str, int, yaml.Node]]:
        """The pairs a ``<<`` value brings in: a mapping or a list of them; the first one wins."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        pairs: list[tuple[str, int, yaml.Node]] = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode) or id(source) in self._active:
                line = source.start_mark.line + 1
                self.error(line, f"{describe_path(path)}<< expects a mapping or a list of mappings")
                continue
            self._active.add(id(source))
            try:
                inherited: list[tuple[str, int, yaml.Node]] = []
                for key_node, value_node in source.value:
                    if key_node.tag == _TAG + "merge":
                        inherited += self._merge_sources(value_node, path)
                    elif isinstance(key_node, yaml.ScalarNode):
                        pairs.append((key_node.value, key_node.start_mark.line + 1, value_node))
                pairs += inherited
            finally:
                self._active.discard(id(source))
        return pairs


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    problem = _one_line(exc.problem or "")
    context = _one_line(exc.context or "")
    if problem.startswith("but ") and context:
        return f"YAML syntax error: {context}, {problem}"
    if context:
        return f"YAML syntax error: {problem} ({context})"
    return f"YAML syntax error: {problem or _one_line(str(exc))}"


# ---------------------------------------------------------------------------- after YAML


def _stringify_env_numbers(data: dict[str, Any], lines: SourceMap) -> None:
    """``PORT: 8000`` in an ``env`` mapping means the string "8000", as written in the file."""
    envs: list[tuple[Path_, Any]] = [(("env",), data.get("env"))]
    services = data.get("services")
    if isinstance(services, list):
        envs += [
            (("services", n, "env"), item.get("env"))
            for n, item in enumerate(services)
            if isinstance(item, dict)
        ]
    for path, env in envs:
        if not isinstance(env, dict):
            continue
        for key, value in env.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                env[key] = lines.scalar_text((*path, key), str(value))


def _under_any(loc: Path_, prefixes: list[Path_]) -> bool:
    """An error at ``loc`` follows from a failed interpolation at one of ``prefixes``."""
    return any(loc[: len(prefix)] == prefix for prefix in prefixes)


# ------------------------------------------------------------------------------ resolution


def _resolve(stack: StackSpec, path: Path) -> StackSpec:
    """A new stack with everything relative made absolute and the global env merged in."""
    root = path.parent
    name = stack.name or re.sub(r"[^A-Za-z0-9_.-]", "_", root.name) or "mpsv3"
    services = [
        spec.model_copy(
            update={
                "env": {**stack.env, **spec.env},
                "cwd": os.path.normpath(root / spec.cwd),
            }
        )
        for spec in stack.services
    ]
    return stack.model_copy(
        update={
            "name": name,
            "state_dir": os.path.normpath(root / stack.state_dir),
            "services": services,
        }
    )
