"""Load ``services.yaml``: read, parse, interpolate, validate, check, expand, resolve.

Why this shape: the contract promises every problem of a config at once, each as
``FILE:LINE: message``, and never a traceback. So the loader is a pipeline that collects
``ConfigError`` values at each step and raises one ``ConfigInvalid`` at the end; no other
exception type escapes for bad input. The steps live in their own modules (``document``:
bounded reading and YAML with lines; ``interpolate``; ``schema`` and ``schema_text``;
``checks`` and ``rules``; ``replicas``; ``resolve``; ``advice`` for warnings); this module
only runs them in order. Everything it reads is bounded (issue 15): the file's size, the
YAML's nesting and aliases, the interpolation's depth and output, the number of processes.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mpsv3.config.advice import dependency_warnings
from mpsv3.config.bounds import MAX_CONFIG_BYTES, TooLarge, read_bounded, size_text
from mpsv3.config.checks import partial_stack, run_checks
from mpsv3.config.document import SourceMap, build, env_numbers_as_text
from mpsv3.config.interpolate import (
    Budget,
    DocumentInterpolator,
    parse_overrides,
)
from mpsv3.config.replicas import ReplicaExpander, replica_sources
from mpsv3.config.resolve import Resolver
from mpsv3.config.rules import nul_problems
from mpsv3.config.schema import REPLICA_VARIABLE, Config, Provenance, StackSpec
from mpsv3.config.schema_text import schema_errors
from mpsv3.config.source import Path_, Source
from mpsv3.errors import ConfigError, ConfigInvalid

__all__ = ["builtin_variables", "load_config", "load_config_text", "parse_overrides", "read_config"]


def load_config(
    path: Path | str,
    overrides: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
) -> Config:
    """Read, validate and resolve a config file.

    Args:
        path: the config file, as the user gave it (errors name it this way).
        overrides: ``--set`` variables; they win over the environment and ``env:``.
        environ: the variables of the supervisor's environment (default ``os.environ``).
        replicas: template id -> replica count, overriding ``replicas:`` (``mpsv3 scale``).

    Returns:
        The validated config, every relative path resolved against the file's folder.

    Raises:
        ConfigInvalid: with every problem found, each located by line.
    """
    text = read_config(path)
    return load_config_text(text, path, overrides, environ=environ, replicas=replicas)


def read_config(path: Path | str) -> str:
    """The text of a config file, read at most ``MAX_CONFIG_BYTES`` far.

    Raises:
        ConfigInvalid: it cannot be read, is too large, or is not UTF-8 (one error).
    """
    shown = str(path)
    try:
        raw = read_bounded(path)
    except TooLarge:
        raise ConfigInvalid([_too_large(shown)]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = " (use -c FILE)" if isinstance(exc, FileNotFoundError) else ""
        raise ConfigInvalid(
            [ConfigError(shown, 0, f"cannot read config: {reason}{hint}")]
        ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"cannot read config: not UTF-8 text (byte 0x{raw[exc.start]:02x})"
        raise ConfigInvalid([ConfigError(shown, line, message)]) from None


def load_config_text(
    text: str,
    path: Path | str,
    overrides: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
) -> Config:
    """Validate and resolve a config given as text; ``path`` locates it (errors, relative paths).

    Same contract as :func:`load_config`; used by it, by ``reload`` and by the tests.
    """
    shown = str(path)
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigInvalid([_too_large(shown)])
    with _without_cycle_collection():
        return _load_text(text, path, shown, overrides, environ, replicas)


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while a config is built.

    Loading creates hundreds of thousands of small objects (YAML nodes, dicts, models) and
    no garbage cycles worth collecting; the collector, triggered by the allocations alone,
    took about 40 % of the time of a 1 MiB config. Reference counting still frees memory.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_text(
    text: str,
    path: Path | str,
    shown: str,
    overrides: Mapping[str, str] | None,
    environ: Mapping[str, str] | None,
    replicas: Mapping[str, int] | None,
) -> Config:
    document = build(text, shown)
    data = document.data
    if document.errors and data is None:
        raise ConfigInvalid(document.errors)
    if data is None:
        message = "the config is empty: expected a mapping with version: 1 and services:"
        raise ConfigInvalid([ConfigError(shown, 0, message)])
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the scalar {data!r}"[:80]
        message = f"the config must be a mapping (version: 1, services: ...), got {kind}"
        errors = [*document.errors, ConfigError(shown, document.lines.line(()), message)]
        raise ConfigInvalid(errors)
    base = {**(os.environ if environ is None else environ), **builtin_variables(data, path)}
    base.pop(REPLICA_VARIABLE, None)  # defined only inside a replicated service
    loading = _Loading(shown, Path(os.path.abspath(path)), document.lines, document.errors)
    return loading.run(data, base, overrides or {}, replicas or {})


def builtin_variables(data: dict[str, Any], path: Path | str) -> dict[str, str]:
    """Variables mpsv3 defines for interpolation (they win over the environment, not --set).

    ``MPSV3_PYTHON`` is the interpreter running mpsv3 (so a stack started from a virtualenv
    runs its Python services in it), ``MPSV3_CONFIG_DIR`` the config file's folder, and
    ``MPSV3_STATE_DIR`` the absolute state dir when it is written without variables.
    ``MPSV3_REPLICA`` (a replica's number) is defined inside a replicated service only.
    """
    root = Path(os.path.abspath(path)).parent
    variables = {"MPSV3_PYTHON": sys.executable, "MPSV3_CONFIG_DIR": str(root)}
    state_dir = data.get("state_dir", ".mpsv3")
    if isinstance(state_dir, str) and "$" not in state_dir and "\0" not in state_dir:
        variables["MPSV3_STATE_DIR"] = os.path.normpath(root / state_dir)
    return variables


_HINTS = {
    REPLICA_VARIABLE: "it is defined inside a service with replicas: only (its replica's number)"
}


def _too_large(shown: str) -> ConfigError:
    return ConfigError(
        shown, 0, f"cannot read config: larger than {size_text()}, the limit for a config file"
    )


class _Loading:
    """One load of one document: the steps after YAML, each adding to ``errors``."""

    def __init__(self, shown: str, path: Path, lines: SourceMap, errors: list[ConfigError]) -> None:
        self.shown = shown
        self.path = path
        self.lines = lines
        self.errors = list(errors)

    def run(
        self,
        data: dict[str, Any],
        environ: Mapping[str, str],
        overrides: Mapping[str, str],
        counts: Mapping[str, int],
    ) -> Config:
        sources = replica_sources(data)
        interpolator = DocumentInterpolator(environ, overrides, Budget(), _HINTS)
        variables = self._interpolate(data, interpolator, sorted(sources))
        stack = self._validate(data, interpolator)
        if self.errors or stack is None:
            raise ConfigInvalid(self.errors)
        source = Source(self.shown, self.lines, tuple(range(len(stack.services))))
        expander = ReplicaExpander(data, self.lines, source, interpolator, variables)
        expansion = expander.expand(stack, sources, counts)
        if expansion.errors:
            raise ConfigInvalid(expansion.errors)
        resolver = Resolver(stack, self.path, source)
        templates = [resolver.service(spec, n) for n, spec in enumerate(stack.services)]
        specs = [spec for spec, _ in templates]
        runnable = resolver.runnable(expansion.runnable, specs, set(expansion.texts))
        if resolver.errors:
            raise ConfigInvalid(resolver.errors)
        file_keys = {spec.id: keys for spec, keys in templates if keys}
        provenance = Provenance(env_file_keys=file_keys, replica_texts=expansion.texts)
        return Config(
            path=self.path,
            stack=resolver.stack_spec(specs),
            expanded=tuple(runnable),
            warnings=dependency_warnings(stack, source),
            provenance=provenance,
        )

    def _interpolate(
        self, data: dict[str, Any], interpolator: DocumentInterpolator, replicated: list[int]
    ) -> dict[str, str]:
        """Interpolate the document in place; return the variables service strings see."""
        variables = interpolator.env_layer(data)
        for key in data:
            if key not in ("env", "services"):
                data[key] = interpolator.walk(data[key], (key,), variables)
        services = data.get("services")
        if isinstance(services, list):
            first = {**variables, REPLICA_VARIABLE: "1"}  # a template validates as replica 1
            for n, item in enumerate(services):
                seen = first if n in replicated else variables
                services[n] = interpolator.walk(item, ("services", n), seen)
        elif "services" in data:
            data["services"] = interpolator.walk(services, ("services",), variables)
        self.errors += [
            ConfigError(self.shown, self.lines.value_line(where), message)
            for where, message in interpolator.problems
            if message is not None
        ]
        return variables

    def _validate(self, data: dict[str, Any], interpolator: DocumentInterpolator) -> StackSpec | None:
        """The schema and every check; None when the schema fails (the checks still run)."""
        failed: set[Path_] = {where for where, _ in interpolator.problems}
        for where, message in nul_problems(data):
            self.errors.append(ConfigError(self.shown, self.lines.value_line(where), message))
            failed.add(where)
        env_numbers_as_text(data.get("env"), ("env",), self.lines)
        services = data.get("services")
        for n, item in enumerate(services if isinstance(services, list) else []):
            if isinstance(item, dict):
                env_numbers_as_text(item.get("env"), ("services", n, "env"), self.lines)
        try:
            stack = StackSpec.model_validate(data)
        except ValidationError as exc:
            schema = schema_errors(exc, data, Source(self.shown, self.lines))
            self.errors += [error for loc, error in schema if not _under_any(loc, failed)]
            partial = partial_stack(data)
            if partial is not None:
                kept, indexes, declared = partial
                source = Source(self.shown, self.lines, tuple(indexes), frozenset(declared))
                self.errors += run_checks(kept, source)
            return None
        source = Source(self.shown, self.lines, tuple(range(len(stack.services))))
        self.errors += run_checks(stack, source)
        return stack


def _under_any(loc: Path_, failed: set[Path_]) -> bool:
    """An error at ``loc`` follows from a failed string at ``loc`` or above it."""
    return any(loc[:end] in failed for end in range(len(loc) + 1))
