"""A config file as plain data with the line of every part: YAML, lines, bounded nesting.

Why apart from the loader: hostile input is bounded as early as it can be (issue 15); the
file's size is bounded before this, by ``config.bounds`` as it is read. YAML is
composed by libyaml when it is there (linear and about six times faster than the pure-Python
parser, which a 1 MiB config needs); a document nested deeper than ``MAX_NESTING`` is refused
as it is walked (no step after this one can then run out of stack); aliases may repeat at
most ``MAX_REPEATED_VALUES`` values (an alias bomb expands to millions). The node
tree is walked by hand (``yaml.compose``) to keep the line of every key and item, and to catch
duplicate keys that a plain ``safe_load`` silently drops.
"""

from __future__ import annotations

from typing import Any

import yaml

from mpsv3.config.source import Path_
from mpsv3.config.wording import describe_path, show
from mpsv3.errors import ConfigError

#: Values that aliases may add by repeating a node (``*a`` used again and again).
MAX_REPEATED_VALUES = 100_000

#: How deep mappings and lists may nest (a config needs about six levels).
MAX_NESTING = 64

#: Below this size a syntax error is described by the pure-Python parser, whose messages
#: name the offending character; above it, libyaml's own message is kept (re-parsing a large
#: file in Python would take seconds).
_DESCRIBE_IN_PYTHON = 64 << 10

_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: First characters of a plain scalar that may be something other than a string (a number,
#: a bool, null, a date, a merge key): every other scalar is a string without a regex.
_MAYBE_TYPED = frozenset(
    char for char in yaml.SafeLoader.yaml_implicit_resolvers if char  # type: ignore[attr-defined]
)


class _FastLoader(_BASE_LOADER):  # type: ignore[misc,valid-type]
    """libyaml's safe loader, with the tag of plain text found without running the resolver's
    regular expressions (they were a third of the load time of a large config)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and (not implicit[0] or (value and value[0] not in _MAYBE_TYPED)):
            return _STR
        return super().resolve(kind, value, implicit)


_FAST_LOADER: Any = _FastLoader


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


class _TooManyRepeats(Exception):
    """Aliases repeat more values than the limit (an alias bomb)."""


class _TooDeep(Exception):
    """A value nested deeper than ``MAX_NESTING`` (at ``line``)."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def build(text: str, shown: str) -> Document:
    """Parse ``text`` into plain data, keeping lines; syntax errors become ``ConfigError``."""
    lines = SourceMap(shown)
    node, error = _compose(text, shown)
    if error is not None:
        return Document(None, lines, [error])
    if node is None:
        return Document(None, lines, [])
    builder = _Builder(shown, lines)
    try:
        data = builder.value(node, (), node.start_mark.line + 1)
    except _TooDeep as exc:
        message = f"YAML is nested more than {MAX_NESTING} levels deep"
        return Document(None, lines, [ConfigError(shown, exc.line, message)])
    except _TooManyRepeats:
        return Document(
            None, lines, [ConfigError(shown, 1, "the config is too large (alias bomb?)")]
        )
    except RecursionError:
        return Document(None, lines, [ConfigError(shown, 0, "YAML is nested too deeply")])
    return Document(data, lines, builder.errors)


def _compose(text: str, shown: str) -> tuple[yaml.Node | None, ConfigError | None]:
    """The node tree (libyaml first), or the error that stops it."""
    try:
        return yaml.compose(text, Loader=_FAST_LOADER), None
    except (yaml.YAMLError, RecursionError) as exc:
        nesting = "maximum nesting depth" in str(exc)  # Python would recurse, and slowly
        if _BASE_LOADER is yaml.SafeLoader or len(text) > _DESCRIBE_IN_PYTHON or nesting:
            return None, _syntax_error(exc, text, shown)
    try:  # the same text again in Python: its messages name the offending character
        return yaml.compose(text, Loader=yaml.SafeLoader), None
    except (yaml.YAMLError, RecursionError) as exc:
        return None, _syntax_error(exc, text, shown)


def _syntax_error(exc: BaseException, text: str, shown: str) -> ConfigError:
    if isinstance(exc, RecursionError):
        return ConfigError(shown, 0, "YAML is nested too deeply")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        return ConfigError(shown, line, _yaml_message(exc))
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return ConfigError(
            shown, line, f"YAML syntax error: unacceptable character: {_one_line(exc.reason)}"
        )
    return ConfigError(shown, 0, f"YAML syntax error: {_one_line(str(exc))}")


class _Builder:
    """Walks a composed node tree into dicts, lists and scalars, recording every line."""

    def __init__(self, shown: str, lines: SourceMap) -> None:
        self.shown = shown
        self.lines = lines
        self.errors: list[ConfigError] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._active: set[int] = set()  # collections being built: a recursive alias ends here
        self._seen: set[int] = set()  # nodes built once: building one again is an alias
        self._repeats = 0

    def error(self, line: int, message: str) -> None:
        self.errors.append(ConfigError(self.shown, line, message))

    def value(self, node: yaml.Node, path: Path_, key_line: int) -> Any:
        if len(path) > MAX_NESTING:  # the path is as long as the nesting is deep
            raise _TooDeep(node.start_mark.line + 1)
        if id(node) in self._seen:
            self._repeats += 1
            if self._repeats > MAX_REPEATED_VALUES:
                raise _TooManyRepeats
        else:
            self._seen.add(id(node))
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
                self.error(line, f"cannot read {show(node.value)} as {tag}: {_one_line(str(exc))}")
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
                    f"{describe_path(path)}duplicate key {show(key)} (first at line {first_line[key]})",
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
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else show(tag).strip('"')




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


def env_numbers_as_text(env: Any, path: Path_, lines: SourceMap) -> None:
    """``PORT: 8000`` in an ``env`` mapping means the string "8000", as written in the file."""
    if not isinstance(env, dict):
        return
    for key, value in env.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            env[key] = lines.scalar_text((*path, key), str(value))
