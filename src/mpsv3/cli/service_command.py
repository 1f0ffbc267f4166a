"""``mpsv3 service install|uninstall``: run this stack at boot under the OS's service manager.

A systemd unit on Linux, a launchd agent or daemon on macOS, a scheduled task on Windows
(``--kind`` picks another, for ``--print``). ``--user`` (the default) installs for the
current user; ``--system`` for the machine (needs root / an administrator). ``--print``
shows the file and touches nothing. The unit runs ``mpsv3 up`` with this install's
interpreter and the config's absolute path; see ``docs/unattended.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from mpsv3.errors import MpsvError

if TYPE_CHECKING:
    from mpsv3.service_units import UnitSpec
    from mpsv3.service_units.installer import Outcome

_config = click.option(
    "-c", "--config", "config_path", default="services.yaml", show_default=True,
    type=click.Path(dir_okay=False, path_type=Path), help="The stack's services.yaml.",
)
_scope = click.option(
    "--user/--system", "user", default=True, show_default=True,
    help="The user's service manager (at login; systemd: at boot with lingering) or the machine's (at boot).",
)
_kind = click.option(
    "--kind", type=click.Choice(["systemd", "launchd", "windows-task"]), default=None,
    help="The service manager (default: this OS's).",
)


@click.group()
def service() -> None:
    """Run this stack at boot: a systemd unit, a launchd agent or a Windows logon task."""


@service.command()
@_config
@_scope
@_kind
@click.option("--set", "assignments", multiple=True, metavar="VAR=VALUE", help="Passed to `up` in the unit.")
@click.option("--profile", "profiles", multiple=True, metavar="NAME", help="Passed to `up` in the unit.")
@click.option("--print", "print_only", is_flag=True, help="Show the unit and where it would go; write nothing.")
def install(
    config_path: Path, user: bool, kind: str | None, assignments: tuple[str, ...], profiles: tuple[str, ...],
    print_only: bool,
) -> None:
    """Write the unit for this config and enable it (start now and at boot)."""
    from mpsv3.service_units import installer

    spec = _spec(config_path, user, assignments, profiles)
    chosen = cast(installer.Kind, kind or installer.default_kind())
    if print_only:
        click.echo(f"# {installer.unit_path(chosen, spec)}", err=True)
        click.echo(installer.render(chosen, spec), nl=False)
        return
    outcome = installer.install(chosen, spec)
    _report(outcome, installer.hints(chosen, spec) if outcome.ok and not outcome.todo else [])
    if not outcome.ok:
        raise MpsvError(f"{spec.name} is written but not enabled; see above")


@service.command()
@_config
@_scope
@_kind
def uninstall(config_path: Path, user: bool, kind: str | None) -> None:
    """Stop and disable this config's unit, then remove its file."""
    from mpsv3.service_units import installer

    spec = _spec(config_path, user, (), ())
    outcome = installer.uninstall(cast(installer.Kind, kind or installer.default_kind()), spec)
    _report(outcome, [])
    if not outcome.ok:
        raise MpsvError(f"{spec.name} could not be taken back; see above")


def _spec(config_path: Path, user: bool, assignments: tuple[str, ...], profiles: tuple[str, ...]) -> UnitSpec:
    from mpsv3.config.loader import load_config, parse_overrides
    from mpsv3.planner import compile_plan
    from mpsv3.service_units import unit_spec

    overrides = parse_overrides(assignments)
    plan = compile_plan(load_config(config_path, overrides), overrides)
    return unit_spec(plan, "user" if user else "system", assignments=assignments, profiles=profiles)


def _report(outcome: Outcome, hints: list[str]) -> None:
    for line in outcome.done:
        click.echo(f"mpsv3: {line}")
    if outcome.todo:
        click.echo("mpsv3: left to do:")
        for line in outcome.todo:
            click.echo(f"  {line}")
    for line in hints:
        click.echo(f"mpsv3: {line}")
