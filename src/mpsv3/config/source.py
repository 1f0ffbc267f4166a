"""Where a config problem was written: document paths, their lines, the file as given.

Why its own module: the document reader, the schema-error wording and every check locate
problems the same way, as ``ConfigError(FILE, LINE, message)``; this is the one shape they
share, with no dependency on YAML or pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mpsv3.errors import ConfigError

#: A place in the document: mapping keys and list indexes (pydantic's ``loc`` shape).
Path_ = tuple[str | int, ...]


class Lines(Protocol):
    """Where each part of the document was written (``document.SourceMap``)."""

    def line(self, path: Path_) -> int: ...


@dataclass(frozen=True)
class Source:
    """What a check needs besides the stack: the file, its lines, and which services are whose.

    Attributes:
        shown: the config path as the user gave it.
        lines: key/item lines of the document.
        indexes: the document index of each service of the checked stack (services that
            failed the schema are left out of a partial stack, so positions differ).
        declared: every service id written in the document, when it differs from the ids of
            the checked stack (a dependency on a service with a schema error is not unknown).
    """

    shown: str
    lines: Lines
    indexes: tuple[int, ...] = ()
    declared: frozenset[str] | None = None

    def error(self, path: Path_, message: str) -> ConfigError:
        return ConfigError(self.shown, self.lines.line(path), message)

    def service_path(self, position: int, *rest: str | int) -> Path_:
        """The document path of ``stack.services[position]`` (plus ``rest`` inside it)."""
        return ("services", self.indexes[position], *rest)
