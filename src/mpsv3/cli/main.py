"""The ``mpsv3`` command: parses arguments, runs one verb, prints errors once, exits.

Only ``main`` calls ``sys.exit``: every failure below it is an ``MpsvError`` or a
``ConfigInvalid`` value, printed here as one line per problem with its documented exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from mpsv3 import __version__
from mpsv3.cli.lazy_group import LazyGroup
from mpsv3.errors import EXIT_CONFIG, EXIT_USAGE, ConfigInvalid, MpsvError

CONFIG_OPTION = click.option(
    "-c", "--config", "config_path", default="services.yaml", show_default=True,
    type=click.Path(dir_okay=False, path_type=Path), help="The stack's services.yaml.",
)
SET_OPTION = click.option(
    "--set", "assignments", multiple=True, metavar="VAR=VALUE",
    help="Set a variable for ${VAR} interpolation (wins over the environment and env:).",
)


#: Commands imported only when they run (``cli/lazy_group.py``): each pulls in what a client
#: command must not pay for (pydantic for export, Textual, asyncio).
LAZY_COMMANDS = {
    "export": ("mpsv3.export.cli:export_command", "Export the stack to systemd units, a compose.yaml, or Kubernetes objects."),
    "ui": ("mpsv3.cli.ui_command:ui", "Interactive screen: every service, its figures and its log."),
    "attach": ("mpsv3.cli.attach_command:attach", "Follow the running supervisor's console; Ctrl-C detaches."),
    "service": ("mpsv3.cli.service_command:service", "Run this stack at boot: a systemd unit, launchd, a Windows task."),
}


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mpsv3")
def main_group() -> None:
    """mpsv3: supervise a stack of services (dependency order, readiness, backoff, hot reload)."""


def load(config_path: Path, assignments: Sequence[str]):  # type: ignore[no-untyped-def]
    from mpsv3.config.loader import load_config, parse_overrides

    return load_config(config_path, parse_overrides(assignments))


@main_group.command()
@CONFIG_OPTION
@click.option("--explain", is_flag=True, help="Print the effective config with every default filled in.")
@SET_OPTION
def check(config_path: Path, explain: bool, assignments: tuple[str, ...]) -> None:
    """Validate the config and print the start order in layers."""
    from mpsv3.config.explain import explain as explain_config
    from mpsv3.policy.graph import DependencyGraph

    config = load(config_path, assignments)
    graph = DependencyGraph.from_services(config.services)
    _warn([str(warning) for warning in config.warnings])
    click.echo(f"{config_path}: ok, instance '{config.name}', {len(config.services)} services")
    click.echo("start order (services of a layer start in parallel):")
    for index, layer in enumerate(graph.layers(), 1):
        click.echo(f"  {index}. {', '.join(layer)}")
    if explain:
        click.echo("")
        click.echo(explain_config(config), nl=False)


@main_group.command()
@CONFIG_OPTION
@SET_OPTION
@click.option("--only", "only", multiple=True, metavar="ID", help="Start only these services and their dependencies.")
@click.option("--profile", "profiles", multiple=True, metavar="NAME", help="Also start the services of this profile.")
@click.option("--quiet", is_flag=True, help="Do not echo service output on the console (it still goes to the log files).")
@click.option("-v", "--verbose", is_flag=True, help="Show every supervisor line on the console, not the digest.")
@click.option(
    "-d", "--detach", is_flag=True,
    help="Run in the background; return once every service is ready (1 naming the first that failed).",
)
@click.option(
    "--wait-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
    help="With -d: how long to wait for the stack (default: the largest readiness timeout + 30 s; 0: do not wait).",
)
def up(
    config_path: Path, assignments: tuple[str, ...], only: tuple[str, ...], profiles: tuple[str, ...],
    quiet: bool, verbose: bool, detach: bool, wait_timeout: float | None,
) -> None:
    """Run the stack in the foreground until Ctrl-C, SIGTERM or `mpsv3 down` (or detached: -d)."""
    from mpsv3.cli.plans import load_plan
    from mpsv3.cli.up_command import run_up

    if wait_timeout is not None and not detach:
        raise click.UsageError("--wait-timeout goes with -d/--detach")
    plan, warnings = load_plan(config_path, assignments)
    _warn(warnings)
    if detach:
        from mpsv3.cli.detach import UpOptions, run_detached
        from mpsv3.cli.up_command import check_up

        check_up(plan, only, profiles)
        options = UpOptions(assignments, only, profiles, quiet, verbose)
        sys.exit(run_detached(plan, options, wait_timeout))
    sys.exit(run_up(plan, only=only, profiles=profiles, quiet=quiet, verbose=verbose))


def _warn(warnings: Sequence[str]) -> None:
    """A config's warnings (it loads and runs, but see): one line each, on stderr."""
    for warning in warnings:
        click.echo(warning, err=True)


def _register_extensions() -> None:
    from mpsv3.cli.client_verbs import register

    register(main_group)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``mpsv3`` console script and ``python -m mpsv3``."""
    _register_extensions()
    code = reported(lambda: _run(argv))
    if code:
        sys.exit(code)


def _run(argv: Sequence[str] | None) -> int:
    main_group.main(args=list(argv) if argv is not None else None, prog_name="mpsv3", standalone_mode=False)
    return 0


def reported(command: Callable[[], int]) -> int:
    """Run ``command``; a failure is printed once, as one line per problem; the exit code.

    The one place that turns errors into output and exit codes (``up``'s supervisor, which
    runs in a child of the keeper, reports through it too).
    """
    try:
        return command()
    except ConfigInvalid as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        return EXIT_CONFIG
    except MpsvError as exc:
        click.echo(f"mpsv3: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("mpsv3: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # the state dir or a log file cannot be written, and the like
        where = f" ({exc.filename})" if exc.filename else ""
        click.echo(f"mpsv3: {exc.strerror or exc}{where}", err=True)
        return 1
