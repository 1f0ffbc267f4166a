"""The version-1 schema of ``services.yaml``: every key, every default, in one place.

Why one module: the contract says defaults live in one place, and ``mpsv3 check --explain``
prints exactly what these models fill in. Nothing else in the package invents a default for
a config field. The models are pure data (pydantic v2, ``extra="forbid"`` so that a typo is an
error with a did-you-mean, never a silently ignored key). Line numbers and interpolation are
the loader's job (``config.loader``); cross-service rules (unknown dependency, cycles) are
``config.checks``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from mpsv3.config.schema_export import ServiceExportSpec, StackExportSpec

SERVICE_ID = re.compile(r"^[a-z0-9_-]+$")
#: Most replicas one service may ask for (``replicas:`` and ``mpsv3 scale``).
MAX_REPLICAS = 1000

#: Signal names accepted in ``stop.signal`` and ``on_change: signal:NAME``. A fixed list, not
#: ``signal.Signals``, so that a config validates the same on every platform.
SIGNAL_NAMES = (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM",
    "SIGCONT", "SIGSTOP", "SIGWINCH", "SIGBREAK",
)



def _not_a_bool(value: Any) -> Any:
    """YAML's ``true`` is not the number 1: refuse it where a number is expected."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


PortNumber = Annotated[int, BeforeValidator(_not_a_bool), Field(ge=1, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class Model(BaseModel):
    """Base for every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _split_command(value: Any) -> Any:
    """Accept ``cmd`` as an argv list or as a string split the way a shell would (no shell runs)."""
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:  # unbalanced quotes
            raise ValueError(f"cannot split command {value!r}: {exc}") from exc
        if not parts:
            raise ValueError("command is empty")
        return parts
    return value


def _nonempty_argv(value: list[str]) -> list[str]:
    if not value or not value[0]:
        raise ValueError("command is empty")
    return value


# ---------------------------------------------------------------------------------- probes


class TcpCheck(Model):
    """Pass when a TCP connection to host:port is accepted."""

    host: str = "127.0.0.1"
    port: PortNumber


class HttpGetCheck(Model):
    """Pass when GET url answers ``expect_status``."""

    url: str
    expect_status: Annotated[int, Field(ge=100, le=599)] = 200

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, url: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad URL {url!r}: expected http://HOST[:PORT]/PATH")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as exc:
            raise ValueError(f"bad URL {url!r}: {exc}") from exc
        return url


class ExecCheck(Model):
    """Pass when the command exits 0."""

    cmd: list[str]

    _split = field_validator("cmd", mode="before")(classmethod(lambda cls, v: _split_command(v)))
    _nonempty = field_validator("cmd")(classmethod(lambda cls, v: _nonempty_argv(v)))


class RedisPingCheck(Model):
    """Pass when a Redis-protocol server answers PING with PONG."""

    host: str = "127.0.0.1"
    port: PortNumber = 6379


class LogCheck(Model):
    """Pass when a line of the service's output matches ``pattern`` (a regular expression)."""

    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
        return pattern


PROBE_KINDS = ("tcp", "http_get", "exec", "redis_ping", "log", "notify")
LIVENESS_KINDS = ("tcp", "http_get", "exec", "redis_ping")


class _ProbeKinds(Model):
    tcp: TcpCheck | None = None
    http_get: HttpGetCheck | None = None
    exec: ExecCheck | None = None
    redis_ping: RedisPingCheck | None = None

    def kind(self) -> str:
        """The name of the one probe kind that is set."""
        for name in PROBE_KINDS:
            if getattr(self, name, None) not in (None, False):
                return name
        raise AssertionError("validated probe without a kind")

    def check(self) -> Any:
        """The settings of the one probe kind that is set."""
        return getattr(self, self.kind())

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> _ProbeKinds:
        allowed = [k for k in PROBE_KINDS if k in type(self).model_fields]
        chosen = [k for k in allowed if getattr(self, k) not in (None, False)]
        if len(chosen) != 1:
            got = ", ".join(chosen) if chosen else "none"
            raise ValueError(f"needs exactly one probe kind of {', '.join(allowed)} (got {got})")
        return self


class ReadinessSpec(_ProbeKinds):
    """The gate: dependents start only after it passes. Polled from spawn until it passes."""

    log: LogCheck | None = None
    notify: bool = False
    timeout_s: PositiveSeconds = 30.0
    period_ms: Annotated[int, Field(ge=1)] = 100
    attempt_timeout_s: PositiveSeconds = 2.0


class LivenessSpec(_ProbeKinds):
    """Health after ready: ``failure_threshold`` consecutive failures restart the service."""

    interval_s: PositiveSeconds = 30.0
    timeout_s: PositiveSeconds = 5.0
    failure_threshold: Annotated[int, Field(ge=1)] = 3


# ------------------------------------------------------------------------ restart and stop


class BackoffSpec(Model):
    """Delay before restart attempt n (1-based): ``base_ms * factor**(n-1)``, capped, jittered."""

    base_ms: Annotated[int, Field(ge=0)] = 1000
    factor: Annotated[float, Field(ge=1)] = 2.0
    max_ms: Annotated[int, Field(ge=0)] = 60000
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.0


class RestartSpec(Model):
    policy: Literal["always", "on-failure", "never"] = "on-failure"
    backoff: BackoffSpec = BackoffSpec()
    max_retries: Annotated[int, Field(ge=1)] = 10
    reset_after_s: Annotated[float, Field(ge=0)] = 60.0


class StopSpec(Model):
    signal: str = "SIGTERM"
    grace_s: Annotated[float, Field(ge=0)] = 10.0

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, name: str) -> str:
        return _signal_name(name)


def _signal_name(name: str) -> str:
    normal = name.upper()
    if not normal.startswith("SIG"):
        normal = "SIG" + normal
    if normal not in SIGNAL_NAMES:
        raise ValueError(f"unknown signal {name!r}: use one of {', '.join(SIGNAL_NAMES)}")
    return normal


class WatchSpec(Model):
    """Files whose change restarts (or signals) the service; globs relative to the config file."""

    paths: Annotated[list[str], Field(min_length=1)]
    debounce_ms: Annotated[int, Field(ge=0)] = 200
    on_change: str = "restart"
    restart_dependents: bool = False
    signal_to: Literal["main", "group"] = "main"

    @field_validator("on_change")
    @classmethod
    def _known_action(cls, action: str) -> str:
        if action in ("restart", "none"):
            return action
        if action.startswith("signal:"):
            return "signal:" + _signal_name(action.removeprefix("signal:"))
        raise ValueError(f"unknown on_change {action!r}: use restart, none or signal:NAME")

    @property
    def signal(self) -> str | None:
        """The signal name when ``on_change`` is ``signal:NAME``."""
        return self.on_change.removeprefix("signal:") if self.on_change.startswith("signal:") else None


class LimitsSpec(Model):
    """Resource limits, enforced by restarting the service (reason ``memory``)."""

    memory_mb: Annotated[int, BeforeValidator(_not_a_bool), Field(ge=1)]


# ------------------------------------------------------------------------------- services


class ServiceSpec(Model):
    """One supervised service. ``cwd`` is made absolute by the loader."""

    id: str
    cmd: list[str]
    shell: bool = False
    cwd: str = "."
    env: dict[str, str] = {}
    requires: list[str] = []
    criticality: Literal["critical", "core", "optional"] = "core"
    ports: list[PortNumber] = []
    readiness: ReadinessSpec | None = None
    liveness: LivenessSpec | None = None
    restart: RestartSpec = RestartSpec()
    stop: StopSpec = StopSpec()
    watch: WatchSpec | None = None
    kind: Literal["service", "task"] = "service"
    user: str | None = None
    group: str | None = None
    env_file: list[str] = []
    replicas: Annotated[int, BeforeValidator(_not_a_bool), Field(ge=1, le=MAX_REPLICAS)] | None = None
    enabled: bool = True
    profiles: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]] = []
    limits: LimitsSpec | None = None
    export: ServiceExportSpec | None = None

    _split = field_validator("cmd", mode="before")(classmethod(lambda cls, v: _split_command(v)))
    _nonempty = field_validator("cmd")(classmethod(lambda cls, v: _nonempty_argv(v)))

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not SERVICE_ID.match(value):
            raise ValueError(f"bad service id {value!r}: use lowercase letters, digits, _ and -")
        return value

    @model_validator(mode="before")
    @classmethod
    def _shell_keeps_string(cls, data: Any) -> Any:
        """With ``shell: true`` a string command goes to the shell as written, quotes included."""
        if isinstance(data, dict) and data.get("shell") is True and isinstance(data.get("cmd"), str):
            return {**data, "cmd": [data["cmd"]]}
        return data

    def argv(self) -> list[str]:
        """The argv to execute: ``cmd`` itself, or a POSIX shell running it when ``shell`` is set."""
        if self.shell:
            return ["/bin/sh", "-c", self.cmd[0] if len(self.cmd) == 1 else shlex.join(self.cmd)]
        return list(self.cmd)


class MetricsSpec(Model):
    """Prometheus endpoint; loopback unless the operator says otherwise."""

    port: PortNumber
    host: str = "127.0.0.1"


class LogsSpec(Model):
    """Per-service log files under ``state_dir/logs``, rotated by size."""

    max_bytes: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    backups: Annotated[int, Field(ge=0)] = 3


class StackSpec(Model):
    """A whole ``services.yaml``. ``name`` and ``state_dir`` are resolved by the loader."""

    version: Annotated[Literal[1], BeforeValidator(_not_a_bool)]
    name: str | None = None
    state_dir: str = ".mpsv3"
    env: dict[str, str] = {}
    legacy_locks: list[str] = []
    alert_cmd: list[str] | None = None
    metrics: MetricsSpec | None = None
    logs: LogsSpec = LogsSpec()
    export: StackExportSpec | None = None
    services: Annotated[list[ServiceSpec], Field(min_length=1)]

    _split = field_validator("alert_cmd", mode="before")(
        classmethod(lambda cls, v: None if v is None else _split_command(v))
    )

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9_.-]+$", value):
            raise ValueError(f"bad instance name {value!r}: use letters, digits, '.', '_' and '-'")
        return value

    def service(self, service_id: str) -> ServiceSpec:
        for spec in self.services:
            if spec.id == service_id:
                return spec
        raise KeyError(service_id)


class Config(Model):
    """A validated stack plus where it came from: what every other module consumes."""

    path: Path
    stack: StackSpec

    @property
    def root(self) -> Path:
        """The config file's folder: relative paths and globs are resolved against it."""
        return self.path.parent

    @property
    def name(self) -> str:
        assert self.stack.name is not None  # the loader always fills it in
        return self.stack.name

    @property
    def state_dir(self) -> Path:
        return Path(self.stack.state_dir)

    @property
    def services(self) -> list[ServiceSpec]:
        return self.stack.services
