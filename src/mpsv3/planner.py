"""Compile a validated config (pydantic models) into the plain plan the supervisor runs.

Why a step of its own: everything that validates (YAML, interpolation, pydantic, the checks)
stays on the command's side; the supervisor gets :class:`mpsv3.plan.StackPlan`, which holds
the same facts with every default filled in, replicas expanded and commands resolved, and
imports nothing heavy. This is the one place that knows both shapes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mpsv3.config.schema import Config, LivenessSpec, ReadinessSpec, ServiceSpec
from mpsv3.control.instances import config_stat
from mpsv3.plan import (
    BackoffPlan,
    CheckPlan,
    LivenessPlan,
    ReadinessPlan,
    RestartPlan,
    ServicePlan,
    StackPlan,
    StopPlan,
    WatchPlan,
)


def compile_plan(
    config: Config,
    overrides: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
) -> StackPlan:
    """The plan of a validated config.

    Args:
        config: the loader's result.
        overrides: the ``--set`` values it was loaded with (kept for ``reload``).
        replicas: the run-time replica counts it was loaded with (``mpsv3 scale``).
    """
    stack = config.stack
    metrics = stack.metrics
    return StackPlan(
        name=config.name,
        config_path=str(config.path),
        state_dir=str(config.state_dir),
        services=tuple(_service(spec, template, replica) for spec, template, replica in _runnable(config)),
        logs_max_bytes=stack.logs.max_bytes,
        logs_backups=stack.logs.backups,
        legacy_locks=tuple(stack.legacy_locks),
        alert_cmd=tuple(stack.alert_cmd) if stack.alert_cmd else None,
        metrics_host=metrics.host if metrics is not None else "127.0.0.1",
        metrics_port=metrics.port if metrics is not None else None,
        digest=file_digest(config.path),
        config_stat=config_stat(config.path),
        overrides=dict(overrides or {}),
        replicas=dict(replicas or {}),
    )


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes ('' when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _runnable(config: Config) -> list[tuple[ServiceSpec, str, int | None]]:
    """(expanded spec, template id, replica) for every process the stack runs."""
    return [(item.spec, item.template, item.replica) for item in config.runnable()]


def _service(spec: ServiceSpec, template: str, replica: int | None) -> ServicePlan:
    restart = spec.restart
    backoff = restart.backoff
    watch = spec.watch
    return ServicePlan(
        id=spec.id,
        template=template,
        replica=replica,
        kind=spec.kind,
        argv=tuple(spec.argv()),
        cwd=spec.cwd,
        env=dict(spec.env),
        user=spec.user,
        group=spec.group,
        requires=tuple(spec.requires),
        criticality=spec.criticality,
        ports=tuple(spec.ports),
        readiness=_readiness(spec.readiness),
        liveness=_liveness(spec.liveness),
        restart=RestartPlan(
            policy=restart.policy,
            backoff=BackoffPlan(backoff.base_ms, backoff.factor, backoff.max_ms, backoff.jitter),
            max_retries=restart.max_retries,
            reset_after_s=restart.reset_after_s,
        ),
        stop=StopPlan(spec.stop.signal, spec.stop.grace_s),
        watch=None
        if watch is None
        else WatchPlan(tuple(watch.paths), watch.debounce_ms, watch.on_change, watch.restart_dependents, watch.signal_to),
        memory_mb=spec.limits.memory_mb if spec.limits is not None else None,
        enabled=spec.enabled,
        profiles=tuple(spec.profiles),
    )


def check_plan(spec: ReadinessSpec | LivenessSpec) -> CheckPlan:
    """The probe of a readiness or liveness section."""
    kind = spec.kind()
    settings: Any = spec.check()
    if kind in ("tcp", "redis_ping"):
        return CheckPlan(kind, host=settings.host, port=settings.port)
    if kind == "http_get":
        return CheckPlan(kind, url=settings.url, expect_status=settings.expect_status)
    if kind == "exec":
        return CheckPlan(kind, cmd=tuple(settings.cmd))
    if kind == "log":
        return CheckPlan(kind, pattern=settings.pattern)
    return CheckPlan(kind)


def _readiness(spec: ReadinessSpec | None) -> ReadinessPlan | None:
    if spec is None:
        return None
    return ReadinessPlan(check_plan(spec), spec.timeout_s, spec.period_ms, spec.attempt_timeout_s)


def _liveness(spec: LivenessSpec | None) -> LivenessPlan | None:
    if spec is None:
        return None
    return LivenessPlan(check_plan(spec), spec.interval_s, spec.timeout_s, spec.failure_threshold)
