"""Modules imported on first use: psutil, in the supervisor.

Why: the supervisor of a stack whose services declare no ports, no memory limits and were not
left behind by a crash never needs psutil; importing it anyway costs ~4 MiB of RSS for the
life of the process. Modules that use psutil write ``psutil = lazy_module("psutil")`` (with a
plain import for type checkers); the first attribute access imports it.

Why not ``importlib.util.LazyLoader``: before Python 3.12.3 it is not thread-safe. A port
check loads psutil in a worker thread (``asyncio.to_thread``) while the loop may use it too,
and the loop then saw a half-loaded module (``module 'psutil' has no attribute 'Process'``).
Here the first use runs a plain ``importlib.import_module``, whose per-module import lock
makes every other thread wait for the whole module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any


class _Deferred(ModuleType):
    """Stands for a module not imported yet; every attribute read goes to the real one."""

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attribute)


def lazy_module(name: str) -> ModuleType:
    """``name``, imported when an attribute of it is first used (the module itself if loaded)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"no module named {name!r}")
    return _Deferred(name)
