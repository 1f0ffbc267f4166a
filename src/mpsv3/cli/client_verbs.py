"""The client verbs of ``mpsv3``: status, logs, restart, stop, start, release, reload, down.

Why apart from ``cli.py``: these commands never supervise anything; they find the running
supervisor of a config (``-c``) through its control socket and print its answers (``logs``
reads the log files directly). Failures are raised as ``MpsvError`` / ``ConfigInvalid`` and
printed once by ``cli.main`` with their exit codes (3 when no supervisor runs).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mpsv3.control.protocol import InstanceRef
from mpsv3.errors import EXIT_CONFIG, ConfigInvalid, MpsvError

__all__ = ["Target", "locate", "register"]

#: The supervisor instance a client command talks to.
Target = InstanceRef


def locate(config_path: Path, assignments: Sequence[str]) -> Target:
    """Find the instance of a config file.

    First in the index of running instances (no parsing at all: fast, and it works while the
    file on disk does not validate; a warning says when the file changed since it was
    loaded). Else from the file: a config that no longer validates still names its instance
    when ``name`` and ``state_dir`` are plain; the client then warns and goes on.

    Raises:
        ConfigInvalid: the config is invalid and does not even name its instance.
    """
    from mpsv3.config.interpolate import parse_overrides
    from mpsv3.control.instances import find

    indexed = find(config_path, parse_overrides(assignments))
    if indexed is not None:
        if indexed.file_changed():
            click.echo(
                f"mpsv3: note: {config_path} changed since instance '{indexed.ref.name}' loaded it "
                "(`mpsv3 reload` applies it)", err=True,
            )
        return indexed.ref
    from mpsv3.config.loader import load_config

    try:
        config = load_config(config_path, parse_overrides(assignments))
    except ConfigInvalid as exc:
        from mpsv3.config.instance import locate_instance

        loose = locate_instance(config_path)  # an invalid config may still name its instance
        if loose is None:
            raise
        click.echo(
            f"mpsv3: warning: {config_path} has {len(exc.errors)} error(s) "
            f"(first: {exc.errors[0]}); using instance '{loose.name}' anyway",
            err=True,
        )
        return loose
    return Target(
        config.name, Path(config.state_dir), config.path, tuple(item.spec.id for item in config.runnable())
    )


def _ask(target: Target, message: dict[str, Any], timeout_s: float = 30.0) -> Any:
    """One request; the ``result`` of an ok reply, else ``MpsvError`` with the supervisor's error."""
    from mpsv3.control.sync_client import request_sync

    reply = request_sync(target, message, timeout_s)
    if not reply["ok"]:
        raise MpsvError(str(reply.get("error") or "the supervisor refused the request"))
    return reply.get("result")


_config_option = click.option(
    "-c",
    "--config",
    "config_path",
    default="services.yaml",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The stack's services.yaml (it names the instance).",
)
_set_option = click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="VAR=VALUE",
    help="Set a variable for ${VAR} interpolation, as given to `up`.",
)


# --------------------------------------------------------------------------------- status


@click.command()
@_config_option
@_set_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print the status as JSON (docs/status.schema.json)."
)
@click.option("--watch", is_flag=True, help="Refresh the table every second until Ctrl-C.")
@click.option("-w", "--wide", is_flag=True, help="Every column, reasons uncut.")
def status(config_path: Path, assignments: tuple[str, ...], as_json: bool, watch: bool, wide: bool) -> None:
    """Show every service: state, pid, uptime, restarts, last exit, next restart, reason."""
    if as_json and watch:
        raise click.UsageError("--watch shows the table; it cannot be combined with --json")
    from mpsv3.cli.status_view import output_width, render_status
    from mpsv3.cli.status_watch import watch_status

    target = locate(config_path, assignments)
    tty = sys.stdout.isatty()
    colour = tty and "NO_COLOR" not in os.environ
    if watch:
        try:
            watch_status(
                lambda: _ask(target, {"cmd": "status"}), sys.stdout, interval=1.0, is_tty=tty, wide=wide, colour=colour
            )
        except KeyboardInterrupt:
            return
        return
    result = _ask(target, {"cmd": "status"})
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    sys.stdout.write(render_status(result, time.time(), width=output_width(sys.stdout), wide=wide, colour=colour))


# ------------------------------------------------------------------- one-service verbs


def _service_verb(verb: str, summary: str) -> click.Command:
    @click.command(name=verb, help=summary)
    @click.argument("service_id", metavar="ID")
    @_config_option
    @_set_option
    def command(config_path: Path, assignments: tuple[str, ...], service_id: str) -> None:
        result = _ask(locate(config_path, assignments), {"cmd": verb, "id": service_id})
        click.echo(_message(result))

    return command


def _message(result: Any) -> str:
    if isinstance(result, dict) and isinstance(result.get("message"), str):
        return str(result["message"])
    return result if isinstance(result, str) else json.dumps(result)


restart = _service_verb("restart", "Restart a service now.")
stop = _service_verb("stop", "Stop a service; it stays down until `start`.")
start = _service_verb(
    "start", "Start a stopped, exited or quarantined service (and what it requires)."
)
release = _service_verb("release", "Release a quarantined service: it starts again.")


@click.command(name="signal")
@click.argument("service_id", metavar="ID")
@click.argument("signame", metavar="SIGNAL")
@click.option("--group", is_flag=True, help="Signal the whole process group, not only the main process.")
@_config_option
@_set_option
def signal_(config_path: Path, assignments: tuple[str, ...], service_id: str, signame: str, group: bool) -> None:
    """Send SIGNAL (HUP, USR1, SIGTERM ...) to a service's main process (or its group)."""
    result = _ask(locate(config_path, assignments), {"cmd": "signal", "id": service_id, "signal": signame, "group": group})
    click.echo(_message(result))


@click.command()
@click.argument("service_id", metavar="ID")
@click.argument("replicas", metavar="N", type=click.IntRange(min=1))
@_config_option
@_set_option
def scale(config_path: Path, assignments: tuple[str, ...], service_id: str, replicas: int) -> None:
    """Run N replicas of a service with ``replicas:`` (until the supervisor restarts)."""
    result = _ask(locate(config_path, assignments), {"cmd": "scale", "id": service_id, "replicas": replicas})
    click.echo(_message(result))


# ------------------------------------------------------------------------- reload, down


@click.command()
@_config_option
@_set_option
def reload(config_path: Path, assignments: tuple[str, ...]) -> None:
    """Re-read the config and apply the difference (an invalid config changes nothing)."""
    from mpsv3.control.sync_client import request_sync

    target = locate(config_path, assignments)
    reply = request_sync(target, {"cmd": "reload"})
    if not reply["ok"]:
        raise MpsvError(str(reply.get("error") or "reload rejected"), EXIT_CONFIG)
    result = reply.get("result") or {}
    shown = False
    for key in ("added", "removed", "changed"):
        ids = result.get(key) if isinstance(result, dict) else None
        if ids:
            click.echo(f"{key}: {', '.join(map(str, ids))}")
            shown = True
    if not shown:
        click.echo("no changes")


@click.command()
@_config_option
@_set_option
def down(config_path: Path, assignments: tuple[str, ...]) -> None:
    """Stop every service in reverse order, then the supervisor; wait until it has exited."""
    import psutil

    from mpsv3.control.protocol import NotRunning

    target = locate(config_path, assignments)
    pid = int(_ask(target, {"cmd": "status"})["supervisor"]["pid"])
    try:
        supervisor: psutil.Process | None = psutil.Process(pid)
    except psutil.NoSuchProcess:
        supervisor = None
    try:
        _ask(target, {"cmd": "down"})
    except MpsvError as exc:
        # NotRunning: it went away between the two requests. Anything else is a refusal,
        # unless the supervisor exits anyway (it cut the connection on its way out).
        gone = isinstance(exc, NotRunning) or (supervisor is not None and _exits_within(supervisor, 5.0))
        if not gone:
            raise
    if supervisor is not None:
        click.echo(f"waiting for the supervisor (PID {pid}) to stop its services...", err=True)
        _exits_within(supervisor, None)
    click.echo("stopped")


def _exits_within(process: Any, timeout_s: float | None) -> bool:
    """Whether ``process`` exits within ``timeout_s`` (None: however long it takes).

    A zombie counts as exited: the supervisor is usually not our child, and its parent
    may reap it late (psutil's own ``wait`` would wait for that reaping forever).
    """
    import time

    import psutil

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
            process.wait(timeout=0.05)
            return True
        except psutil.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                return False
        except psutil.NoSuchProcess:
            return True


def register(group: click.Group) -> None:
    """Add the client verbs to the ``mpsv3`` group."""
    from mpsv3.cli.logs_command import logs

    for command in (status, logs, restart, stop, start, release, signal_, scale, reload, down):
        group.add_command(command)
