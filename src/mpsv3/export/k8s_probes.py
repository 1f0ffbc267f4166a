"""The Kubernetes probes of a service: startup, readiness and liveness from mpsv3's two probes.

Why apart from ``kubernetes.py``: the probe mapping is the subtle part of the export and is
read (and tested) on its own. The kubelet runs every probe for the pod's whole life except the
startup probe, so:

* ``startupProbe``: the readiness check, polled every ``period_ms`` (at least 1 s) with a
  ``failureThreshold`` x ``periodSeconds`` that covers ``timeout_s``: a service not ready in
  time is restarted, as mpsv3 counts it a failed start;
* ``readinessProbe``: the same check, every liveness ``interval_s`` (10 s without liveness),
  never the readiness poll period;
* ``livenessProbe``: ``interval_s``, ``timeout_s``, ``failure_threshold``.

``http_get`` -> ``httpGet`` (exec of ``curl`` for a status outside 2xx/3xx, which ``httpGet``
cannot tell apart), ``tcp`` -> ``tcpSocket``, ``exec`` -> ``exec``, ``redis_ping`` -> an
``exec`` of ``redis-cli``. A loopback host means the pod itself, so it is left out (the kubelet
probes the pod's IP, which the service must listen on). Pure.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from mpsv3.config.schema import (
    ExecCheck,
    HttpGetCheck,
    LivenessSpec,
    ReadinessSpec,
    RedisPingCheck,
    ServiceSpec,
    TcpCheck,
)
from mpsv3.export.model import Warnings, probe_shell

__all__ = ["DEFAULT_READINESS_PERIOD_S", "LOOPBACK", "probes", "whole_seconds_warned"]

#: The readiness probe's period of a service without liveness (Kubernetes' own default).
DEFAULT_READINESS_PERIOD_S = 10
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def probes(spec: ServiceSpec, warn: Warnings) -> dict[str, Any]:
    """The container's ``startupProbe``, ``readinessProbe`` and ``livenessProbe`` fields.

    A probe's ``exec`` command is not expanded by Kubernetes (only a container's command,
    args and env are), so it is written as it is.

    Args:
        spec: the service.
        warn: collects roundings and dropped readiness kinds.
    """
    fields: dict[str, Any] = {}
    gate, live = spec.readiness, spec.liveness
    if gate is not None and (gate.notify or gate.log is not None):
        kind = "notify" if gate.notify else "log"
        warn.dropped(spec.id, f"{kind} readiness", "dropped (the pod is ready once it starts)")
    elif gate is not None:
        check = _handler(gate)
        attempt = whole_seconds_warned(
            spec, "readiness attempt timeout", gate.attempt_timeout_s, warn
        )
        poll = whole_seconds_warned(spec, "readiness period", gate.period_ms / 1000, warn)
        every = (
            whole_seconds_warned(spec, "liveness interval", live.interval_s, warn)
            if live is not None
            else DEFAULT_READINESS_PERIOD_S
        )
        fields["startupProbe"] = {
            **check,
            "periodSeconds": poll,
            "timeoutSeconds": attempt,
            "failureThreshold": max(1, math.ceil(gate.timeout_s / poll)),
        }
        fields["readinessProbe"] = {**check, "periodSeconds": every, "timeoutSeconds": attempt}
    if live is not None:
        fields["livenessProbe"] = {
            **_handler(live),
            "periodSeconds": whole_seconds_warned(spec, "liveness interval", live.interval_s, warn),
            "timeoutSeconds": whole_seconds_warned(spec, "liveness timeout", live.timeout_s, warn),
            "failureThreshold": live.failure_threshold,
        }
    return fields


def _handler(probe: ReadinessSpec | LivenessSpec) -> dict[str, Any]:
    """The probe's check as a Kubernetes handler (``httpGet``, ``tcpSocket`` or ``exec``)."""
    check = probe.check()
    if isinstance(check, HttpGetCheck):
        return _http_get(check, probe)
    if isinstance(check, TcpCheck):
        socket: dict[str, Any] = {"port": check.port}
        if check.host not in LOOPBACK:
            socket["host"] = check.host
        return {"tcpSocket": socket}
    if isinstance(check, ExecCheck):
        return {"exec": {"command": list(check.cmd)}}
    assert isinstance(check, RedisPingCheck)
    return {"exec": {"command": ["sh", "-c", probe_shell(check, _attempt_s(probe))]}}


def _http_get(check: HttpGetCheck, probe: ReadinessSpec | LivenessSpec) -> dict[str, Any]:
    """``httpGet`` passes on any 2xx/3xx: exact for mpsv3's status in that range, else curl."""
    if not 200 <= check.expect_status < 400:
        return {"exec": {"command": ["sh", "-c", probe_shell(check, _attempt_s(probe))]}}
    parts = urlsplit(check.url)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    get: dict[str, Any] = {
        "path": path,
        "port": parts.port or (443 if parts.scheme == "https" else 80),
        "scheme": parts.scheme.upper(),
    }
    if parts.hostname not in LOOPBACK:
        get["host"] = parts.hostname
    return {"httpGet": get}


def _attempt_s(probe: ReadinessSpec | LivenessSpec) -> float:
    return probe.attempt_timeout_s if isinstance(probe, ReadinessSpec) else probe.timeout_s


def whole_seconds_warned(
    spec: ServiceSpec, what: str, seconds: float, warn: Warnings, *, minimum: int = 1
) -> int:
    """Whole seconds for a Kubernetes field (probes take at least 1), warning when rounded."""
    whole = max(minimum, math.ceil(seconds))
    if whole != seconds:
        warn.service(
            spec.id, f"{what} {seconds:g}s becomes {whole}s (Kubernetes counts whole seconds)"
        )
    return whole
