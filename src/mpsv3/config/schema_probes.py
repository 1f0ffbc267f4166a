"""Readiness and liveness probes: the kinds, their settings, and the one-kind rule.

Why apart from ``schema``: the probe engine (``engine.probes``) and the exporters read these
models on their own; the rule "exactly one probe kind" and the readiness-only kinds (``log``,
``notify``) live with them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from mpsv3.config.patterns import pattern_problem
from mpsv3.config.schema_base import (
    Model,
    PortNumber,
    PositiveSeconds,
    nonempty_argv,
    short,
    split_command,
)


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
            raise ValueError(f"bad URL {short(url)}: expected http://HOST[:PORT]/PATH")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as exc:
            raise ValueError(f"bad URL {short(url)}: {exc}") from exc
        return url


class ExecCheck(Model):
    """Pass when the command exits 0."""

    cmd: list[str]

    _split = field_validator("cmd", mode="before")(classmethod(lambda cls, v: split_command(v)))
    _nonempty = field_validator("cmd")(classmethod(lambda cls, v: nonempty_argv(v)))


class RedisPingCheck(Model):
    """Pass when a Redis-protocol server answers PING with PONG."""

    host: str = "127.0.0.1"
    port: PortNumber = 6379


class LogCheck(Model):
    """Pass when a line of the service's output matches ``pattern``.

    The pattern is RE2 syntax (``config.patterns``): matched in time linear in the line, so a
    pattern cannot freeze the supervisor; what RE2 refuses (backreferences, lookaround) is a
    config error.
    """

    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        problem = pattern_problem(pattern)
        if problem:
            raise ValueError(f"bad regular expression {short(pattern)}: {problem}")
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
