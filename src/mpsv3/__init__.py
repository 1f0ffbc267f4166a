"""mpsv3: a supervisor for a stack of long-running services on one machine."""

__version__ = "0.1.0"
