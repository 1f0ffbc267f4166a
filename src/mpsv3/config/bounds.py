"""How much of a file mpsv3 reads: the one limit on configs and env files, and a reader that
keeps to it.

Why a module of its own: reading is where hostile input first arrives (issue 15), and the
plan cache reads the config too, before any YAML is parsed: it must stop at the same limit
(``up -c /dev/zero`` refused at once, not read until memory runs out) without importing the
YAML parser that a cached plan exists to skip.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: The largest config (and env file) mpsv3 reads: a config of several thousand services.
MAX_CONFIG_BYTES = 1 << 20


class TooLarge(Exception):
    """A file is larger than the limit; nothing past the limit was read."""


def read_bounded(path: Path | str, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of ``path``, refused past ``limit`` before reading (a regular file's size)
    and while reading (a device, a pipe: ``/dev/zero``), so at most ``limit + 1`` bytes are read.

    Raises:
        TooLarge: the file is larger than ``limit``.
        OSError: it cannot be opened or read.
    """
    with open(path, "rb") as stream:
        info = os.fstat(stream.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise TooLarge
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge
    return data


def size_text(limit: int = MAX_CONFIG_BYTES) -> str:
    """``1 MiB``, ``256 KiB``: a limit as a reader says it."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if limit % (1 << shift) == 0:
            return f"{limit >> shift} {unit}"
    return f"{limit} bytes"
