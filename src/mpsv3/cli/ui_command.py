"""``mpsv3 ui``: open the operator's screen on the running supervisor of a config.

Why a first status request before the screen opens: with no supervisor running, the command
says so in one line and exits 3 like every client command, instead of opening a screen with
nothing to show. Once open, the UI rides out a supervisor restart (it retries every second).
Textual is imported only here, so other commands never pay for it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from mpsv3.cli.client_verbs import _config_option, _set_option, locate
from mpsv3.errors import MpsvError

__all__ = ["ui"]


@click.command()
@_config_option
@_set_option
@click.option(
    "--refresh",
    "refresh_s",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.2, max=60),
    help="Seconds between two status requests.",
)
def ui(config_path: Path, assignments: tuple[str, ...], refresh_s: float) -> None:
    """Interactive screen: every service, its figures and its log; keys restart, stop, scale ...

    Quitting (q) never stops anything.
    """
    from mpsv3.control.client import request

    target = locate(config_path, assignments)
    reply = asyncio.run(request(target, {"cmd": "status"}, 10.0))
    if not reply["ok"]:
        raise MpsvError(str(reply.get("error") or "the supervisor refused the status request"))
    try:
        from mpsv3.ui.app import MpsvUi
    except ImportError as exc:  # a broken install: say what is missing, in one line
        raise MpsvError(f"the UI needs Textual (pip install textual): {exc}") from None
    MpsvUi(target, refresh_s=refresh_s).run()
