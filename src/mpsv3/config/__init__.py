"""Config: the schema, its loader (YAML with line numbers, interpolation) and its checks.

The names below are loaded on first use, so that importing a pydantic-free part of the
package (``mpsv3.config.patterns``, which the engine uses at run time) does not load the
schema and pydantic with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpsv3.config.schema import Config, RunnableService, ServiceSpec, StackSpec

__all__ = ["Config", "RunnableService", "ServiceSpec", "StackSpec"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mpsv3.config import schema

        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
