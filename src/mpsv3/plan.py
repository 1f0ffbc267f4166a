"""The validated stack as plain frozen dataclasses: what the running supervisor consumes.

Why not the pydantic models: the supervisor lives for months and should carry only what its
loop needs. Validation (YAML, interpolation, pydantic, checks) happens once, in the command
that loads the config; it compiles the result into this plan, which imports nothing but the
standard library, survives a round trip through JSON (``to_json``/``from_json``, so a front
process can hand it to the supervisor), and keeps the field names of the schema, so pure
policy such as the backoff formula reads either.

Replicas are already expanded here: ``worker`` with ``replicas: 3`` is three ``ServicePlan``
values (``worker-1`` … ``worker-3``) sharing ``template == "worker"``; ``requires`` keeps the
template ids as written, and :meth:`StackPlan.members` maps a template to its replicas.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

T = TypeVar("T")


@dataclass(frozen=True)
class CheckPlan:
    """One probe kind and its target: ``tcp``, ``http_get``, ``exec``, ``redis_ping``, ``log``, ``notify``."""

    kind: str
    host: str = "127.0.0.1"
    port: int = 0
    url: str = ""
    expect_status: int = 200
    cmd: tuple[str, ...] = ()
    pattern: str = ""

    def describe(self) -> str:
        """One line for status and events: ``http_get http://…``, ``tcp 127.0.0.1:6379``."""
        if self.kind in ("tcp", "redis_ping"):
            where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            return f"{self.kind} {where}"
        if self.kind == "http_get":
            suffix = "" if self.expect_status == 200 else f" (expect {self.expect_status})"
            return f"{self.kind} {self.url}{suffix}"
        if self.kind == "exec":
            import shlex

            return f"exec {shlex.join(self.cmd)}"
        if self.kind == "log":
            return f"log {self.pattern!r}"
        return self.kind


@dataclass(frozen=True)
class ReadinessPlan:
    check: CheckPlan
    timeout_s: float
    period_ms: int
    attempt_timeout_s: float


@dataclass(frozen=True)
class LivenessPlan:
    check: CheckPlan
    interval_s: float
    timeout_s: float
    failure_threshold: int


@dataclass(frozen=True)
class BackoffPlan:
    base_ms: int
    factor: float
    max_ms: int
    jitter: float


@dataclass(frozen=True)
class RestartPlan:
    policy: str
    backoff: BackoffPlan
    max_retries: int
    reset_after_s: float


@dataclass(frozen=True)
class StopPlan:
    signal: str
    grace_s: float


@dataclass(frozen=True)
class WatchPlan:
    paths: tuple[str, ...]
    debounce_ms: int
    on_change: str
    restart_dependents: bool
    signal_to: str

    @property
    def signal(self) -> str | None:
        """The signal name when ``on_change`` is ``signal:NAME``."""
        return self.on_change.removeprefix("signal:") if self.on_change.startswith("signal:") else None


@dataclass(frozen=True)
class ServicePlan:
    """One supervised process (one replica of a replicated service)."""

    id: str
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]
    restart: RestartPlan
    stop: StopPlan
    template: str = ""
    replica: int | None = None
    kind: str = "service"
    user: str | None = None
    group: str | None = None
    requires: tuple[str, ...] = ()
    criticality: str = "core"
    ports: tuple[int, ...] = ()
    readiness: ReadinessPlan | None = None
    liveness: LivenessPlan | None = None
    watch: WatchPlan | None = None
    memory_mb: int | None = None
    enabled: bool = True
    profiles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.template:
            object.__setattr__(self, "template", self.id)

    @property
    def is_task(self) -> bool:
        return self.kind == "task"


@dataclass(frozen=True)
class StackPlan:
    """A whole validated stack, every path absolute, every default filled in."""

    name: str
    config_path: str
    state_dir: str
    services: tuple[ServicePlan, ...]
    logs_max_bytes: int = 10 * 1024 * 1024
    logs_backups: int = 3
    legacy_locks: tuple[str, ...] = ()
    alert_cmd: tuple[str, ...] | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    #: sha256 of the config file's bytes, and its (size, mtime_ns): to tell when the file
    #: differs from what runs.
    digest: str = ""
    config_stat: tuple[int, ...] = (0, 0)
    #: ``--set`` values, kept for ``reload``; runtime replica counts (``mpsv3 scale``).
    overrides: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=dict)

    @property
    def root(self) -> str:
        """The config file's folder: relative paths and globs are resolved against it."""
        import os

        return os.path.dirname(self.config_path)

    def service(self, sid: str) -> ServicePlan:
        for spec in self.services:
            if spec.id == sid:
                return spec
        raise KeyError(sid)

    def members(self) -> dict[str, list[str]]:
        """Template id -> the ids of its replicas (a plain service maps to itself)."""
        found: dict[str, list[str]] = {}
        for spec in self.services:
            found.setdefault(spec.template, []).append(spec.id)
        return found

    def requires_ids(self, spec: ServicePlan) -> list[str]:
        """The service ids ``spec`` waits for: every replica of every template it requires."""
        members = self.members()
        return [member for template in spec.requires for member in members.get(template, [template])]


# ------------------------------------------------------------------------------ JSON


def to_json(plan: StackPlan) -> str:
    """The plan as one JSON document (tuples become lists)."""
    return json.dumps(dataclasses.asdict(plan), separators=(",", ":"))


def from_json(text: str) -> StackPlan:
    """The plan written by :func:`to_json`.

    Raises:
        ValueError: the text is not a plan of this version of mpsv3.
    """
    try:
        plan: StackPlan = _build(StackPlan, json.loads(text))
    except (TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"not a stack plan: {exc}") from None
    return plan


def _build(tp: Any, value: Any) -> Any:
    """Rebuild a value of type ``tp`` (a plan dataclass or a field type) from JSON data."""
    if value is None:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        return tp(**{f.name: _build(hints[f.name], value[f.name]) for f in dataclasses.fields(tp) if f.name in value})
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        inner = next(arg for arg in args if arg is not type(None))
        return _build(inner, value)
    if origin is tuple:
        return tuple(_build(args[0], item) for item in value)
    if origin is dict:
        return dict(value)
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(tp: type) -> dict[str, Any]:
    hints = _HINTS.get(tp)
    if hints is None:
        hints = _HINTS[tp] = typing.get_type_hints(tp)
    return hints
