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

from pydantic import BeforeValidator, Field, field_validator, model_validator

from mpsv3.config.schema_base import (
    Model,
    PortNumber,
    nonempty_argv,
    not_a_bool,
    optional_entries,
    short,
    split_command,
)
from mpsv3.config.schema_export import ServiceExportSpec, StackExportSpec
from mpsv3.config.schema_probes import (
    LIVENESS_KINDS,
    PROBE_KINDS,
    ExecCheck,
    HttpGetCheck,
    LivenessSpec,
    LogCheck,
    ReadinessSpec,
    RedisPingCheck,
    TcpCheck,
)
from mpsv3.errors import ConfigError

__all__ = [
    "LIVENESS_KINDS",
    "MAX_ID_LENGTH",
    "MAX_REPLICAS",
    "PROBE_KINDS",
    "REPLICA_VARIABLE",
    "SIGNAL_NAMES",
    "BackoffSpec",
    "Config",
    "ExecCheck",
    "HttpGetCheck",
    "LimitsSpec",
    "LivenessSpec",
    "LogCheck",
    "LogsSpec",
    "MetricsSpec",
    "Model",
    "PortNumber",
    "Provenance",
    "ReadinessSpec",
    "RedisPingCheck",
    "RestartSpec",
    "RunnableService",
    "ServiceSpec",
    "StackSpec",
    "StopSpec",
    "TcpCheck",
    "WatchSpec",
]

SERVICE_ID = re.compile(r"[a-z0-9_-]+")
#: Ids whose log would be the supervisor's own file: ``logs/mpsv3.log``, ``logs/console.log``.
RESERVED_IDS = frozenset({"mpsv3", "console"})
INSTANCE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
#: Longest service id and instance name: they name files (``logs/ID.log.3``, the lease, the
#: socket), and a file name has at most 255 bytes; a replica adds ``-N`` to its template's id.
MAX_ID_LENGTH = 128
#: Most replicas one service may ask for (``replicas:`` and ``mpsv3 scale``).
MAX_REPLICAS = 1000
#: The variable that holds a replica's number (1 … N) in ``${...}`` and in its environment.
REPLICA_VARIABLE = "MPSV3_REPLICA"

def _file_name(value: str, shape: re.Pattern[str], what: str, letters: str, names: str) -> str:
    """A value that names files: made of ``letters``, and short enough for a file name."""
    if not shape.fullmatch(value):
        raise ValueError(f"bad {what} {short(value)}: use {letters}")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(
            f"{what} is {len(value)} characters long; at most {MAX_ID_LENGTH}, because it names {names}"
        )
    return value


#: Signal names accepted in ``stop.signal`` and ``on_change: signal:NAME``. A fixed list, not
#: ``signal.Signals``, so that a config validates the same on every platform.
SIGNAL_NAMES = (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM",
    "SIGCONT", "SIGSTOP", "SIGWINCH", "SIGBREAK",
)


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
        raise ValueError(f"unknown signal {short(name)}: use one of {', '.join(SIGNAL_NAMES)}")
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
        raise ValueError(f"unknown on_change {short(action)}: use restart, none or signal:NAME")

    @property
    def signal(self) -> str | None:
        """The signal name when ``on_change`` is ``signal:NAME``."""
        return self.on_change.removeprefix("signal:") if self.on_change.startswith("signal:") else None


class LimitsSpec(Model):
    """Resource limits, enforced by restarting the service (reason ``memory``)."""

    memory_mb: Annotated[int, BeforeValidator(not_a_bool), Field(ge=1)]


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
    env_file: Annotated[list[str], BeforeValidator(optional_entries)] = []
    replicas: Annotated[int, BeforeValidator(not_a_bool), Field(ge=1, le=MAX_REPLICAS)] | None = None
    enabled: bool = True
    profiles: list[str] = []
    limits: LimitsSpec | None = None
    export: ServiceExportSpec | None = None

    _split = field_validator("cmd", mode="before")(classmethod(lambda cls, v: split_command(v)))
    _nonempty = field_validator("cmd")(classmethod(lambda cls, v: nonempty_argv(v)))

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if value in RESERVED_IDS:
            raise ValueError(
                f'service id "{value}" is reserved: logs/{value}.log is the supervisor\'s own '
                "log; choose another id"
            )
        return _file_name(
            value, SERVICE_ID, "service id", "lowercase letters, digits, _ and -",
            "the service's files (logs/ID.log)",
        )  # fmt: skip

    @field_validator("env_file")
    @classmethod
    def _env_file_names(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry.removeprefix("?"):
                raise ValueError(f"env_file entry {short(entry)} names no file")
        return value

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not INSTANCE_NAME.fullmatch(name):
                raise ValueError(
                    f"bad profile name {short(name)}: use letters, digits, '.', '_' and '-'"
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _shell_keeps_string(cls, data: Any) -> Any:
        """With ``shell: true`` a string command goes to the shell as written, quotes included."""
        if isinstance(data, dict) and data.get("shell") is True and isinstance(data.get("cmd"), str):
            return {**data, "cmd": [data["cmd"]]}
        return data

    def replica(self, number: int) -> ServiceSpec:
        """Replica ``number`` of this template, for a template that does not vary per replica:
        id ``ID-number``, ``MPSV3_REPLICA`` in its env, no ``replicas`` of its own."""
        return self.model_copy(
            update={
                "id": f"{self.id}-{number}",
                "env": {**self.env, REPLICA_VARIABLE: str(number)},
                "replicas": None,
            }
        )

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

    version: Annotated[Literal[1], BeforeValidator(not_a_bool)]
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
        classmethod(lambda cls, v: None if v is None else split_command(v))
    )

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return _file_name(
            value, INSTANCE_NAME, "instance name", "letters, digits, '.', '_' and '-'",
            "the lease and the control socket",
        )  # fmt: skip

    def service(self, service_id: str) -> ServiceSpec:
        for spec in self.services:
            if spec.id == service_id:
                return spec
        raise KeyError(service_id)


class RunnableService(Model):
    """One process the engine runs: a service as written, or one replica of a replicated one.

    Attributes:
        spec: the resolved spec it runs (a replica's id is ``worker-2``, its env holds
            ``MPSV3_REPLICA``, and every ``${MPSV3_REPLICA}`` in it is its number).
        template: the id written in the config (``worker``); ``requires:`` names it.
        replica: the replica's number (1 … N), or None for a service without ``replicas:``.
    """

    spec: ServiceSpec
    template: str
    replica: int | None = None


class Provenance(Model):
    """What ``--explain`` needs that the resolved stack no longer says (the loader's record).

    Attributes:
        env_file_keys: template id -> the env keys whose value came from its ``env_file``
            (printed as the file, not as the secret it holds).
        replica_texts: template id -> ``(path in the service, text)`` for each value written
            with ``${MPSV3_REPLICA}``: every other variable substituted, that one kept.
    """

    env_file_keys: dict[str, list[str]] = {}
    replica_texts: dict[str, list[tuple[tuple[str | int, ...], str]]] = {}


class Config(Model):
    """A validated stack plus where it came from: what every other module consumes.

    ``stack.services`` are the services as written (a replicated one once, as its template,
    with replica 1's values where it uses ``${MPSV3_REPLICA}``); :meth:`runnable` is what the
    engine runs. ``warnings`` are problems that do not stop a start (``check`` prints them).
    """

    path: Path
    stack: StackSpec
    expanded: tuple[RunnableService, ...] | None = None
    warnings: list[ConfigError] = []
    provenance: Provenance = Provenance()

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

    def runnable(self) -> list[RunnableService]:
        """Every process to run, in config order, each replica of a template in turn.

        The loader fills this in (interpolating ``${MPSV3_REPLICA}`` per replica, and with a
        ``replicas`` override of ``mpsv3 scale``); a config built by hand derives it from
        ``stack.services`` (each replica a copy of its template).
        """
        if self.expanded is not None:
            return list(self.expanded)
        result: list[RunnableService] = []
        for spec in self.stack.services:
            if spec.replicas is None:
                result.append(RunnableService(spec=spec, template=spec.id))
            else:
                result += [
                    RunnableService(spec=spec.replica(k), template=spec.id, replica=k)
                    for k in range(1, spec.replicas + 1)
                ]
        return result

    def members(self, service_id: str) -> list[str]:
        """The ids the engine runs for a written id: its replicas, or the service itself.

        Raises:
            KeyError: no service of this config has that id.
        """
        found = [item.spec.id for item in self.runnable() if item.template == service_id]
        if not found:
            raise KeyError(service_id)
        return found
