"""Per-service rules beyond one field's type: what cannot be spawned, tasks, accounts.

Why at load time: a config that ``check`` accepts must not crash the running supervisor
(issue 15). A NUL byte in a string that reaches a process (argv, environment, cwd, a probe
command, a user name) makes ``exec``/``open`` raise ``ValueError``; an environment key with
``=`` makes ``execve`` refuse; a user that does not exist fails in the child. Each is reported
here as ``FILE:LINE: message`` with the rest of the config's problems, never met at spawn time.
"""

from __future__ import annotations

import importlib
from typing import Any

from mpsv3.config.schema import ServiceSpec, StackSpec
from mpsv3.config.source import Path_, Source
from mpsv3.config.wording import describe_path, show
from mpsv3.errors import ConfigError


def nul_problems(data: Any) -> list[tuple[Path_, str]]:
    """Every string (value or key) of the document that holds a NUL character.

    Walks the plain data after interpolation, so nothing is missed whichever field (or
    unknown key) it is in; returns ``(path, message)`` with the service named.
    """
    found: list[tuple[Path_, str]] = []
    if not _holds_nul(data):
        return found
    todo: list[tuple[Path_, Any]] = [((), data)]
    while todo:  # iterative: the document may be deep
        path, node = todo.pop()
        if isinstance(node, str):
            if "\0" in node:
                found.append((path, _nul_message(data, path)))
        elif isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and "\0" in key:
                    found.append(((*path, key), _nul_message(data, (*path, key), key=True)))
                else:
                    todo.append(((*path, key), value))
        elif isinstance(node, list):
            todo.extend(((*path, n), item) for n, item in enumerate(node))
    return sorted(found, key=lambda item: str(item[0]))


def _holds_nul(data: Any) -> bool:
    """Whether any string of ``data`` holds a NUL (a quick pass that builds no paths)."""
    todo = [data]
    while todo:
        node = todo.pop()
        if isinstance(node, str):
            if "\0" in node:
                return True
        elif isinstance(node, dict):
            todo.extend(node)
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return False


def _nul_message(data: Any, path: Path_, *, key: bool = False) -> str:
    owner, rest = "", path
    items = data.get("services") if isinstance(data, dict) else None
    if len(path) >= 2 and path[0] == "services" and isinstance(items, list):
        item = items[path[1]] if isinstance(path[1], int) and path[1] < len(items) else None
        if isinstance(item, dict) and isinstance(item.get("id"), str) and "\0" not in item["id"]:
            owner, rest = f"service {show(item['id'])}: ", path[2:]
    what = "a key with a NUL character" if key else "contains a NUL character (\\0)"
    return f"{owner}{describe_path(rest)}{what}: no argument, environment variable or path can hold one"


def check_tasks(stack: StackSpec, source: Source) -> list[ConfigError]:
    """A ``kind: task`` gates its dependents by completing: no probes, no ``policy: always``."""
    errors: list[ConfigError] = []
    for n, spec in enumerate(stack.services):
        if spec.kind != "task":
            continue
        for gate in ("readiness", "liveness"):
            if getattr(spec, gate) is not None:
                message = (
                    f"service {show(spec.id)}: a task has no {gate}: its completion "
                    "(exit 0) is what its dependents wait for"
                )
                errors.append(source.error(source.service_path(n, gate), message))
        if spec.restart.policy == "always":
            message = (
                f"service {show(spec.id)}: restart.policy: always would run a task again "
                "after it completed; use on-failure (retry until it succeeds) or never"
            )
            errors.append(source.error(source.service_path(n, "restart", "policy"), message))
    return errors


def check_env_keys(stack: StackSpec, source: Source) -> list[ConfigError]:
    """An ``env`` key that no environment can hold: empty, or with ``=`` in it."""
    errors: list[ConfigError] = []
    for key in stack.env:
        problem = env_key_problem(key)
        if problem:
            errors.append(source.error(("env", key), f"env[{show(key)}]: {problem}"))
    for n, spec in enumerate(stack.services):
        for key in spec.env:
            problem = env_key_problem(key)
            if problem:
                message = f"service {show(spec.id)}: env[{show(key)}]: {problem}"
                errors.append(source.error(source.service_path(n, "env", key), message))
    return errors


def env_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an environment variable's name, or None."""
    if not key:
        return "an environment variable needs a name"
    if "=" in key:
        return 'a variable name cannot contain "=" (the environment is NAME=VALUE)'
    return None


def check_accounts(stack: StackSpec, source: Source) -> list[ConfigError]:
    """``user:`` and ``group:`` name accounts of this machine (the root check is ``up``'s)."""
    errors: list[ConfigError] = []
    for n, spec in enumerate(stack.services):
        for field in ("user", "group"):
            name = getattr(spec, field)
            problem = None if name is None else account_problem(field, name)
            if problem:
                path = source.service_path(n, field)
                errors.append(source.error(path, f"service {show(spec.id)}: {field}: {problem}"))
    return errors


def account_problem(kind: str, name: str) -> str | None:
    """Why ``name`` is not a ``kind`` ("user" or "group") of this machine, or None.

    A name, or a number that is an existing id (as ``setpriv`` and systemd accept).
    """
    module, by_name, by_id = ("pwd", "getpwnam", "getpwuid") if kind == "user" else (
        "grp", "getgrnam", "getgrgid"
    )
    try:
        table = importlib.import_module(module)
    except ImportError:  # no POSIX accounts here (Windows)
        return f"running a service as another {kind} is supported on POSIX systems only"
    if "\0" in name:
        return None  # reported as a NUL character already
    if not name:
        return f"expected a {kind} name"
    try:
        if name.isdigit():
            getattr(table, by_id)(int(name))
        else:
            getattr(table, by_name)(name)
    except (KeyError, OverflowError, ValueError):
        listing = "passwd" if kind == "user" else "group"
        return f"no {kind} {show(name)} on this machine (see getent {listing})"
    return None


def replica_ids(spec: ServiceSpec, count: int) -> list[str]:
    """The ids of the replicas of ``spec``: ``ID-1`` … ``ID-count``."""
    return [f"{spec.id}-{k}" for k in range(1, count + 1)]
