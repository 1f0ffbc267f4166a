"""Python 3.10 support: ``TaskGroup`` and ``timeout`` are in asyncio from 3.11 on.

The rest of the package imports them from here so that only this file knows the version.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup, timeout
else:  # pragma: no cover - exercised on 3.10 only
    from taskgroup import TaskGroup, timeout

__all__ = ["TaskGroup", "timeout"]
