"""Modules imported on first use (``importlib.util.LazyLoader``): psutil, in the supervisor.

Why: the supervisor of a stack whose services declare no ports, no memory limits and were not
left behind by a crash never needs psutil; importing it anyway costs ~4 MiB of RSS for the
life of the process. Modules that use psutil write ``psutil = lazy_module("psutil")`` (with a
plain import for type checkers); the first attribute access loads it.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name``, loaded when an attribute of it is first used (at once if already loaded)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
