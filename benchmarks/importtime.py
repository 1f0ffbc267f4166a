"""Reading ``python -X importtime`` output: what a process spent importing, by package.

Why by package and by *self* time: a module's cumulative time includes everything it imports,
so adding cumulative times double-counts; each module's self time belongs to exactly one
module, and summing it per top-level package (``pydantic``, ``click``, ``asyncio``,
``mpsv3``) says without overlap which libraries a start-up pays for. Pure functions.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

HEADER = "import time: self [us] | cumulative | imported package"
PREFIX = "import time:"
#: The importer named for a top-level import: by ``__main__`` or on first use while running.
RUN_TIME = "__main__ or first use"


@dataclass(frozen=True)
class Entry:
    """One imported module: its own time and its time with everything it imported (µs)."""

    name: str
    self_us: int
    cumulative_us: int
    depth: int


def blocks(text: str) -> list[list[Entry]]:
    """The entries of each process in ``text``, split at each process's header line.

    Several processes may write to one console (``mpsv3 up`` and then its supervisor); each
    interpreter prints the header once before its first import. Lines that are not
    importtime lines (service output, the supervisor's own lines) are skipped.
    """
    found: list[list[Entry]] = []
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            continue
        if line.strip() == HEADER:
            found.append([])
            continue
        entry = _entry(line)
        if entry is not None:
            if not found:
                found.append([])
            found[-1].append(entry)
    return found


def _entry(line: str) -> Entry | None:
    parts = line[len(PREFIX) :].split("|")
    if len(parts) != 3:
        return None
    try:
        own, cumulative = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    name = parts[2].rstrip()
    stripped = name.lstrip(" ")
    depth = (len(name) - len(stripped) - 1) // 2
    return Entry(stripped, own, cumulative, max(depth, 0))


def total_us(entries: list[Entry]) -> int:
    """Everything the process imported: the sum of the top-level entries' cumulative times."""
    return sum(entry.cumulative_us for entry in entries if entry.depth == 0)


def package_of(module: str) -> str:
    """The top-level package of ``module``; for mpsv3 its subpackage (``mpsv3.config``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "mpsv3" else parts[0]


def by_package(entries: list[Entry]) -> dict[str, int]:
    """Self time summed per package (``package_of``), largest first (µs)."""
    sums: dict[str, int] = {}
    for entry in entries:
        package = package_of(entry.name)
        sums[package] = sums.get(package, 0) + entry.self_us
    return dict(sorted(sums.items(), key=lambda item: item[1], reverse=True))


def is_stdlib(package: str) -> bool:
    """True for a standard-library package (``asyncio``) or a module that is not installed
    here (an import that failed, like ``copy``'s probe for Jython's ``org``); False for a
    third-party package or mpsv3."""
    if package in sys.stdlib_module_names or package.startswith("_"):
        return True
    if package == "sitecustomize" or package.startswith("mpsv3"):
        return package == "sitecustomize"
    try:
        return importlib.util.find_spec(package) is None
    except (ImportError, ValueError):
        return True


def _parent(entries: list[Entry], index: int) -> int | None:
    """The entry that imported ``entries[index]``: importtime prints a module after the
    modules it imported, so its importer is the next entry one level up."""
    depth = entries[index].depth
    for later in range(index + 1, len(entries)):
        if entries[later].depth < depth:
            return later
    return None


def importers(entries: list[Entry], owner: str = "mpsv3") -> dict[str, str]:
    """Third-party package -> the ``owner`` module whose import brought it in first."""
    found: dict[str, str] = {}
    for index, entry in enumerate(entries):
        package = package_of(entry.name)
        if package in found or is_stdlib(package) or package.startswith(owner):
            continue
        parent = _parent(entries, index)
        while parent is not None and not entries[parent].name.startswith(owner + "."):
            parent = _parent(entries, parent)
        found[package] = entries[parent].name if parent is not None else RUN_TIME
    return found


def summary(entries: list[Entry], top: int = 6) -> dict[str, object]:
    """Total import time, module count, the ``top`` packages by self time (µs), and which
    mpsv3 module brought in each third-party package."""
    packages = by_package(entries)
    return {
        "total_us": total_us(entries),
        "modules": len(entries),
        "top": [
            {"package": name, "self_us": us, "stdlib": is_stdlib(name)}
            for name, us in list(packages.items())[:top]
        ],
        "third_party": {
            name: importers(entries).get(name, "?")
            for name in packages
            if not is_stdlib(name) and not name.startswith("mpsv3")
        },
    }
