"""``env_file:``: dotenv files read at load time, located, bounded, and checked like ``env:``.

Why here and not in the engine: a missing file, an unreadable one or a line that is not
``KEY=VALUE`` is a config error the operator must see from ``check`` (at the entry's line, or
at the dotenv file's own line), not a service that fails to start later. The parser is
``python-dotenv``'s (the format people already write: ``export``, quotes, ``#`` comments,
multi-line quoted values); values are taken literally, without interpolation. A line with a
key and no ``=`` sets nothing, as with ``python-dotenv``'s own loader.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from dotenv.parser import parse_stream

from mpsv3.config.bounds import TooLarge, read_bounded, size_text
from mpsv3.config.rules import env_key_problem
from mpsv3.config.wording import show
from mpsv3.errors import ConfigError

#: The largest env file read: hundreds of times a real one, and parsed in well under a second.
MAX_ENV_FILE_BYTES = 256 << 10

#: Bad lines reported one by one per file; the rest are counted in one more line.
MAX_LINE_ERRORS = 100


@dataclass(frozen=True)
class EnvFile:
    """One ``env_file`` entry, resolved.

    Attributes:
        path: the file, absolute.
        shown: the file as messages name it (beside the config path as the user gave it).
        optional: written with a leading ``?``: a missing file is skipped.
    """

    path: Path
    shown: str
    optional: bool

    @classmethod
    def of(cls, entry: str, root: Path, shown_config: str) -> EnvFile:
        """The entry ``entry`` (``.env`` or ``?.env.local``) of a config in folder ``root``."""
        optional = entry.startswith("?")
        name = entry.removeprefix("?")
        path = Path(os.path.normpath(root / name))
        shown = os.path.normpath(os.path.join(os.path.dirname(shown_config), name))
        return cls(path, shown, optional)

    def written(self) -> str:
        """The entry made absolute, as ``--explain`` prints it (``?`` kept)."""
        return ("?" if self.optional else "") + str(self.path)


@dataclass(frozen=True)
class EnvFileResult:
    """What one file gave: its variables, or why it gave none.

    Attributes:
        values: the variables, in file order (a later line wins).
        problem: why the file cannot be used (reported at the ``env_file`` entry's line).
        errors: problems of single lines, located in the dotenv file itself.
    """

    values: dict[str, str]
    problem: str | None = None
    errors: tuple[ConfigError, ...] = ()


def read_env_file(env_file: EnvFile) -> EnvFileResult:
    """Read and parse one dotenv file (at most ``MAX_CONFIG_BYTES``)."""
    try:
        raw = read_bounded(env_file.path, MAX_ENV_FILE_BYTES)
    except FileNotFoundError:
        if env_file.optional:
            return EnvFileResult({})
        hint = f" (write ?{env_file.shown} if it may be missing)"
        return EnvFileResult({}, f"env file {env_file.shown} does not exist{hint}")
    except TooLarge:
        limit = size_text(MAX_ENV_FILE_BYTES)
        return EnvFileResult({}, f"env file {env_file.shown} is larger than {limit}: refused")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return EnvFileResult({}, f"cannot read env file {env_file.shown}: {reason}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        error = ConfigError(env_file.shown, line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")
        return EnvFileResult({}, None, (error,))
    return parse_env_text(text, env_file.shown)


def parse_env_text(text: str, shown: str) -> EnvFileResult:
    """The variables of a dotenv text; each bad line is an error at its own line."""
    values: dict[str, str] = {}
    errors: list[ConfigError] = []
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            errors.append(ConfigError(shown, line, "cannot parse this line: expected KEY=VALUE"))
            continue
        if binding.key is None or binding.value is None:
            continue  # a blank line, a comment, or a key without "=" (sets nothing)
        problem = env_key_problem(binding.key)
        if problem is None and "\0" in binding.key + binding.value:
            problem = "contains a NUL character (\\0): no environment variable can hold one"
        if problem:
            errors.append(ConfigError(shown, line, f"{show(binding.key)}: {problem}"))
            continue
        values[binding.key] = binding.value
    if len(errors) > MAX_LINE_ERRORS:
        more = len(errors) - MAX_LINE_ERRORS
        last = ConfigError(shown, errors[MAX_LINE_ERRORS].line, f"and {more} more bad lines")
        errors = [*errors[:MAX_LINE_ERRORS], last]
    return EnvFileResult(values, None, tuple(errors))
