"""``mpsv3 logs [ID ...] [-f] [-n N] [--since 10m]``: one log, or several merged in time order.

Why merged by stamp: every line of a service log starts with the time the supervisor read it
(``2026-12-01T15:04:05.123Z``), so the logs of several services (or every service, with no
ID) interleave into one stream in the order things happened, each line prefixed with its
source. ``--since`` keeps the lines from a moment on (``10m``, ``2h``, ``1d``, ``30s``, or an
ISO time). Reads the files directly: no supervisor needed.
"""

from __future__ import annotations

import heapq
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import click

from mpsv3.errors import EXIT_USAGE, MpsvError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
STAMP_LEN = 25


def parse_since(text: str, now: float) -> str:
    """The stamp (``2026-12-01T15:04:05.000Z``) from which lines are kept.

    Raises:
        MpsvError: neither a duration (``10m``) nor an ISO time (exit 2).
    """
    match = _DURATION.match(text.strip())
    if match:
        moment = now - float(match.group(1)) * _UNITS[match.group(2)]
    else:
        try:
            parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise MpsvError(f"--since {text!r}: expected a duration (30s, 10m, 2h, 1d) or an ISO time", EXIT_USAGE) from None
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()
        moment = parsed.timestamp()
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _key(line: str) -> str:
    return line[: STAMP_LEN - 1] if len(line) >= STAMP_LEN and line[STAMP_LEN - 2] == "Z" else ""


def whole_log(path: Path) -> list[str]:
    """Every line of a log and its rotated files, oldest first."""
    files = [*sorted(path.parent.glob(path.name + ".*"), key=lambda p: -_index(p)), path]
    lines: list[str] = []
    for file in files:
        if file.exists():
            with open(file, "rb") as handle:
                lines += [raw.decode("utf-8", "replace") for raw in handle.read().split(b"\n") if raw]
    return lines


def _index(path: Path) -> int:
    suffix = path.name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def merged(sources: dict[str, list[str]], count: int | None, since: str | None) -> list[str]:
    """The lines of every source in stamp order (stable), filtered and cut to the last ``count``.

    With more than one source, each line is prefixed ``<id> | ``.
    """
    prefix = len(sources) > 1
    width = max(map(len, sources), default=0)
    streams = []
    for sid, lines in sources.items():
        kept = [line for line in lines if since is None or _key(line) >= since]
        label = f"{sid:<{width}} | " if prefix else ""
        streams.append([(_key(line), label + line) for line in kept])
    out = [text for _, text in heapq.merge(*streams, key=lambda item: item[0])]
    return out if count is None else out[-count:] if count else []


def follow(paths: dict[str, Path], prefix: bool) -> Iterator[str]:
    """New lines of every log as they are written (across rotation), until Ctrl-C."""
    import watchfiles

    from mpsv3.cli.logview import LogFollower

    width = max(map(len, paths), default=0)
    followers = {sid: LogFollower(path) for sid, path in paths.items()}
    folder = next(iter(paths.values())).parent
    if not folder.is_dir():
        raise MpsvError(f"no logs yet: {folder} does not exist")
    for _ in watchfiles.watch(folder, debounce=100, step=30, rust_timeout=2000, yield_on_timeout=True, recursive=False):
        batch = []
        for sid, follower in followers.items():
            label = f"{sid:<{width}} | " if prefix else ""
            batch += [(_key(line), label + line) for line in follower.read_new()]
        yield from (text for _, text in sorted(batch, key=lambda item: item[0]))


@click.command()
@click.argument("service_ids", metavar="[ID]...", nargs=-1)
@click.option("-c", "--config", "config_path", default="services.yaml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The stack's services.yaml.")
@click.option("--set", "assignments", multiple=True, metavar="VAR=VALUE", help="As given to `up`.")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", "count", type=click.IntRange(min=0), default=None,
              help="How many lines to show first [default: 100, or all with --since].")
@click.option("--since", metavar="WHEN", help="Only lines from then on: 10m, 2h, 1d, 30s or an ISO time.")
def logs(config_path: Path, assignments: tuple[str, ...], service_ids: tuple[str, ...], follow_: bool,
         count: int | None, since: str | None) -> None:
    """Print logs: one service's, several merged, or (no ID) every service's, in time order."""
    from mpsv3.cli.client_verbs import locate
    from mpsv3.cli.logview import log_path, tail_lines

    target = locate(config_path, assignments)
    ids = _resolve(service_ids, target.service_ids)
    paths = {sid: log_path(target.state_dir, sid) for sid in ids}
    cut = since if since is None else parse_since(since, time.time())
    if count is None:
        count = None if cut is not None else 100
    try:
        missing = not any(p.exists() or p.with_name(p.name + ".1").exists() for p in paths.values())
        if len(ids) == 1 and missing and not follow_:
            raise MpsvError(f"no log for {ids[0]!r} yet ({paths[ids[0]]})")
        read = whole_log if cut is not None else (lambda path: tail_lines(path, count or 0))
        for line in merged({sid: read(path) for sid, path in paths.items()}, count, cut):
            click.echo(line)
        if follow_:
            for line in follow(paths, prefix=len(ids) > 1):
                click.echo(line)
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # `mpsv3 logs | head`: the reader left, that is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _resolve(asked: Sequence[str], known: Iterable[str]) -> list[str]:
    """The ids to show: all, or the named ones (a replicated service names its replicas)."""
    known = list(known)
    if not asked:
        return known
    chosen: list[str] = []
    for sid in asked:
        members = [k for k in known if k == sid or re.fullmatch(re.escape(sid) + r"-\d+", k)]
        if not members:
            raise MpsvError(f"unknown service {sid!r} (valid: {', '.join(known) or 'none'})")
        chosen += [m for m in members if m not in chosen]
    return chosen
