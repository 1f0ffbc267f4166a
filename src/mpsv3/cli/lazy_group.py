"""A click group whose commands are imported only when they run.

Why: ``mpsv3 status`` must start fast (the issue's target: the bare interpreter plus 40 ms),
and registering every command up front would import the exporters (pydantic), the UI
(Textual) and the supervisor for a command that needs none of them. Each command is named
here by ``module:attribute``; ``--help`` lists them without importing them.
"""

from __future__ import annotations

import importlib
from typing import Any

import click


class LazyGroup(click.Group):
    """``commands`` maps a name to ``"module:attribute"`` (a click command) and a one-line help."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy and cmd_name not in self.commands:
            where, _ = self._lazy[cmd_name]
            module, attribute = where.split(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list in ``--help``, from the table: nothing is imported to show it."""
        eager = {name: cmd for name, cmd in self.commands.items() if name not in self._lazy}
        # As click's own groups do: the short help may use the width left beside the names.
        limit = formatter.width - 6 - max((len(name) for name in [*self._lazy, *eager]), default=0)
        rows = [(name, help_text) for name, (_, help_text) in sorted(self._lazy.items())]
        rows += [(name, cmd.get_short_help_str(limit)) for name, cmd in sorted(eager.items())]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))
