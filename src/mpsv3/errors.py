"""Errors as values, and the exit codes the CLI turns them into.

Why here: every module reports a user's mistake the same way (``FILE:LINE: message``), and
only ``cli.main()`` turns them into output and an exit code, so the codes live in one table.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Exit codes of the ``mpsv3`` command (documented in the README).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3  # a client command found no supervisor for this config
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: the instance is already supervised
EXIT_CONFIG = 78  # EX_CONFIG: the config is invalid


@dataclass(frozen=True, order=True)
class ConfigError:
    """One problem in a config file, located by line (1-based; 0 when no line applies)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


class ConfigInvalid(Exception):
    """Raised by the loader with every problem found, never just the first."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class MpsvError(Exception):
    """A failure to report as one line and an exit code (never a traceback)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
