"""``mpsv3 status --watch``: the status table, frame after frame.

Why apart from the table: the table is a pure function of a status document; this is the
loop around it that talks to a terminal (redraw in place, hide the cursor) or to a pipe (one
whole frame per interval, so ``status --watch | tee`` records them).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from mpsv3.cli.status_view import output_width, render_status

_HIDE_CURSOR, _SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def _fit_height(frame: str, height: int) -> str:
    """At most ``height - 1`` lines (a terminal scrolls otherwise), saying how many are hidden."""
    lines = frame.splitlines()
    if height < 3 or len(lines) < height:
        return frame
    kept = lines[: height - 2]
    return "".join(f"{line}\n" for line in kept) + f"… {len(lines) - len(kept)} more lines (-w, or a taller terminal)\n"


def _redraw(previous_lines: int, frame: str) -> str:
    """Cursor back to the first line of the previous frame, each line rewritten and cleared."""
    up = f"\x1b[{previous_lines}F" if previous_lines else ""
    body = "".join(f"{line}\x1b[K\n" for line in frame.splitlines())
    return f"{up}{body}\x1b[J"


def watch_status(
    fetch: Callable[[], Mapping[str, Any]],
    stream: TextIO,
    *,
    interval: float = 1.0,
    is_tty: bool,
    wide: bool = False,
    colour: bool = False,
    size: Callable[[], tuple[int, int]] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    frames: int | None = None,
) -> None:
    """``status --watch``: a frame every ``interval`` until Ctrl-C, ``fetch`` fails or the reader goes.

    On a terminal the frame is redrawn in place (no scrolling, the last frame stays on screen
    when it ends); to a pipe each frame is printed whole, followed by a blank line, so
    ``status --watch | tee`` records one frame per interval.

    Args:
        fetch: returns the status document; its exceptions (the supervisor went away) end
            the watch and reach the caller.
        stream: where frames go (text, e.g. ``sys.stdout``).
        is_tty: redraw in place (True) or print frame after frame (False).
        size: the terminal's (columns, lines) each frame; default: :func:`output_width` and
            the terminal's height (80 columns and no height limit for a pipe).
        frames: stop after this many frames (tests); None: until interrupted.
    """
    measure = size or (lambda: (output_width(stream), _height(stream)))
    shown = 0
    drawn = 0
    try:
        if is_tty:
            stream.write(_HIDE_CURSOR)
        while frames is None or drawn < frames:
            columns, lines = measure()
            frame = render_status(fetch(), clock(), width=columns, wide=wide, colour=colour)
            shown = _draw(stream, frame, shown, lines if is_tty else None)
            drawn += 1
            if frames is None or drawn < frames:
                sleep(interval)
    except BrokenPipeError:  # `status --watch | head`: the reader left, that is fine
        _silence(stream)
        return
    finally:
        if is_tty:
            with contextlib.suppress(OSError, ValueError):
                stream.write(_SHOW_CURSOR)
                stream.flush()


def _draw(stream: TextIO, frame: str, shown: int, height: int | None) -> int:
    """Write one frame (in place when ``height`` is given); the lines now on screen."""
    if height is None:
        stream.write(frame + "\n")
        stream.flush()
        return 0
    frame = _fit_height(frame, height)
    stream.write(_redraw(shown, frame))
    stream.flush()
    return len(frame.splitlines())


def _height(stream: Any) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).lines if stream.isatty() else 1 << 16
    except (AttributeError, OSError, ValueError):
        return 1 << 16


def _silence(stream: Any) -> None:
    """Point a broken stream's descriptor at /dev/null so that its last flush cannot fail."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
