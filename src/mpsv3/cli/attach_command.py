"""``mpsv3 attach``: follow a running supervisor's merged, prefixed console, live.

Why over the control socket and not by reading ``console.log``: a supervisor in the
foreground (another terminal, a tmux pane, a unit) has no such file, and the live console is
what the operator wants to see. The supervisor feeds this follower on its console thread
with a bounded buffer: a slow terminal here loses lines (and is told how many), it never
slows the stack. Ctrl-C (or the terminal going away) closes the connection and nothing else:
no signal reaches the supervisor or a service. Exit 0 on detach or when the supervisor ends.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any, BinaryIO

import click

from mpsv3.cli.client_verbs import locate

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@click.command()
@click.option(
    "-c", "--config", "config_path", default="services.yaml", show_default=True,
    type=click.Path(dir_okay=False, path_type=Path), help="The stack's services.yaml (it names the instance).",
)
@click.option("--set", "assignments", multiple=True, metavar="VAR=VALUE", help="As given to `up`.")
@click.option("--no-colour", "--no-color", "plain", is_flag=True, help="Strip colours (the default when not a terminal).")
def attach(config_path: Path, assignments: tuple[str, ...], plain: bool) -> None:
    """Follow the running supervisor's console; Ctrl-C detaches and stops nothing."""
    target = locate(config_path, assignments)
    out = sys.stdout.buffer
    strip = plain or not out.isatty()
    try:
        asyncio.run(_follow(target, out, strip))
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("\nmpsv3: detached; the stack keeps running", err=True)
        return
    click.echo("mpsv3: the supervisor ended", err=True)


async def _follow(target: Any, out: BinaryIO, strip: bool) -> None:
    from mpsv3.control.client import follow

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    # SIGHUP (the terminal closed) detaches like Ctrl-C: only this connection ends.
    if hasattr(signal, "SIGHUP"):
        loop.add_signal_handler(signal.SIGHUP, task.cancel)
    stream = follow(target, {"cmd": "attach"})
    try:
        header = await stream.__anext__()
        click.echo(
            f"mpsv3: attached to instance '{header.get('instance')}' (supervisor PID {header.get('pid')}); "
            "Ctrl-C detaches, the stack keeps running",
            err=True,
        )
        async for message in stream:
            text = message.get("text")
            if isinstance(text, str):
                _write(out, _ANSI.sub("", text) if strip else text)
    finally:
        await stream.aclose()


def _write(out: BinaryIO, text: str) -> None:
    try:
        out.write(text.encode("utf-8", "replace"))
        out.flush()
    except BrokenPipeError:  # `mpsv3 attach | head`: the reader left
        raise KeyboardInterrupt from None
