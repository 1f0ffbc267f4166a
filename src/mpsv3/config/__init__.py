"""Config: the schema, its loader (YAML with line numbers, interpolation) and its checks."""

from mpsv3.config.schema import Config, ServiceSpec, StackSpec

__all__ = ["Config", "ServiceSpec", "StackSpec"]
