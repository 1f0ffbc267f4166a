"""``mpsv3 export systemd``: one ``.service`` unit per service and one ``.target`` for the stack.

Every mapping from a validated ``Config`` to systemd unit settings lives here, so that what
carries over (and what does not) can be read in one place; ``docs/export.md`` describes it for
users. The function is pure: it builds text, the command writes it.

The mapping, service by service:

* ``requires`` -> ``Requires=`` + ``After=`` on the dependencies' units; a unit whose readiness
  can be expressed is "started" only once its gate passed, so ``After=`` waits for readiness,
  not for the spawn: ``notify`` -> ``Type=notify`` (``NotifyAccess=all``, as mpsv3 accepts
  ``READY=1`` from any process of the service), the polled probes -> an ``ExecStartPost=`` loop
  that runs the probe every ``period_ms``; ``timeout_s`` -> ``TimeoutStartSec=``.
* ``restart.policy`` -> ``Restart=``; the backoff -> ``RestartSec=`` (base), ``RestartSteps=``
  and ``RestartMaxDelaySec=`` (systemd >= 254 grows the delay geometrically from base to max in
  that many steps: the step count nearest to ``factor`` is chosen); ``max_retries`` ->
  ``StartLimitBurst=`` within a ``StartLimitIntervalSec=`` long enough for that many failed runs
  (the backoff delays plus ``reset_after_s`` per run); exit 78 -> ``RestartPreventExitStatus=``,
  exit 99 -> ``RestartForceExitStatus=``.
* ``stop`` -> ``KillMode=control-group``, ``KillSignal=``, ``TimeoutStopSec=`` (then SIGKILL to
  the whole cgroup, as mpsv3 does to the process group).
* ``env`` (global then the service's, already interpolated) -> ``Environment=``; ``cwd`` ->
  ``WorkingDirectory=``; ``cmd`` -> ``ExecStart=`` with a bare program name resolved by the
  ``which`` seam (systemd only searches its own fixed ``PATH``).
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable

from mpsv3.config.schema import Config, ExecCheck, ServiceSpec
from mpsv3.export.model import (
    ExportResult,
    Warnings,
    exec_shell,
    probe_shell,
    service_cwd,
    service_env,
    stack_name,
    whole_seconds,
)
from mpsv3.policy.backoff import EXIT_HOT_RELOAD, EXIT_SELF_QUARANTINE, BackoffPolicy

__all__ = ["export", "target_name", "unit_name"]

TARGET = "systemd"

#: Signals systemd cannot send (``SIGBREAK`` exists on Windows only).
_FOREIGN_SIGNALS = ("SIGBREAK",)

Which = Callable[[str], str | None]


def unit_name(stack: str, service_id: str) -> str:
    """The unit of a service: ``<stack>-<id>.service`` (both are valid unit-name characters)."""
    return f"{stack}-{service_id}.service"


def target_name(stack: str) -> str:
    """The unit that starts and stops the whole stack: ``<stack>.target``."""
    return f"{stack}.target"


def export(config: Config, *, which: Which | None = None) -> ExportResult:
    """The systemd units of a stack.

    Args:
        config: the validated config.
        which: resolves a bare program name (``python3``) to an absolute path, as the
            exporting user's ``PATH`` would; the command passes ``shutil.which``. Without it, or
            when it finds nothing, the bare name is kept and systemd searches its own ``PATH``.

    Returns:
        ``<stack>-<id>.service`` per service and ``<stack>.target``; the warnings.
    """
    warn = Warnings(TARGET)
    stack = stack_name(config)
    files: dict[str, str] = {}
    for spec in config.services:
        files[unit_name(stack, spec.id)] = _service_unit(config, spec, stack, warn, which)
    files[target_name(stack)] = _target_unit(config, stack)
    warn.stack(
        f"exit code {EXIT_HOT_RELOAD} (hot reload) has no equivalent in systemd; it restarts"
        " (RestartForceExitStatus=) after RestartSec= like a crash and counts toward"
        " StartLimitBurst="
    )
    if config.stack.alert_cmd:
        warn.stack(
            "alert_cmd has no equivalent in systemd; dropped (an OnFailure= unit can run it)"
        )
    return ExportResult(files=files, warnings=warn.lines)


# ---------------------------------------------------------------------------------- units


def _service_unit(
    config: Config, spec: ServiceSpec, stack: str, warn: Warnings, which: Which | None
) -> str:
    deps = [unit_name(stack, dep) for dep in spec.requires]
    unit: list[tuple[str, str]] = [
        ("Description", _specifiers(f"mpsv3 stack {stack}: {spec.id}")),
        ("PartOf", target_name(stack)),
    ]
    unit += [("Requires", dep) for dep in deps]
    unit += [("After", dep) for dep in deps]
    unit += [
        ("StartLimitIntervalSec", _span(_start_limit_window_s(spec))),
        ("StartLimitBurst", str(spec.restart.max_retries)),
    ]

    cwd = service_cwd(config, spec)
    service: list[tuple[str, str]] = []
    service += _readiness(spec, warn)
    service.append(("ExecStart", exec_line(_resolve_argv(spec.argv(), cwd, spec.id, warn, which))))
    service += _readiness_gate(spec)
    service.append(("WorkingDirectory", _specifiers(cwd)))
    service += [
        ("Environment", _env_assignment(k, v)) for k, v in service_env(config, spec).items()
    ]
    service += _restart(spec, warn)
    service += _stop(spec, warn)

    if spec.liveness is not None:
        warn.dropped(
            spec.id,
            f"liveness ({spec.liveness.kind()})",
            "dropped (systemd restarts a unit only when its main process exits)",
        )
    if spec.ports:
        warn.dropped(
            spec.id,
            f"the check of {_port_list(spec.ports)} before start",
            "dropped (a port held by another process makes the service fail instead)",
        )
    if spec.watch is not None:
        warn.dropped(spec.id, "watch")

    install = [("WantedBy", target_name(stack))]
    return _render(config, [("Unit", unit), ("Service", service), ("Install", install)])


def _port_list(ports: list[int]) -> str:
    """``port 8000`` or ``ports 8000, 8001``."""
    return ("port " if len(ports) == 1 else "ports ") + ", ".join(str(port) for port in ports)


def _target_unit(config: Config, stack: str) -> str:
    units = " ".join(unit_name(stack, spec.id) for spec in config.services)
    unit = [("Description", _specifiers(f"mpsv3 stack {stack}")), ("Wants", units)]
    install = [("WantedBy", "multi-user.target")]
    return _render(config, [("Unit", unit), ("Install", install)])


def _render(config: Config, sections: list[tuple[str, list[tuple[str, str]]]]) -> str:
    lines = [f"# Generated by mpsv3 export systemd from {config.path}; edit the config instead."]
    for title, entries in sections:
        lines.append("")
        lines.append(f"[{title}]")
        lines += [f"{key}={value}" for key, value in entries]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ settings


def _readiness(spec: ServiceSpec, warn: Warnings) -> list[tuple[str, str]]:
    """``Type=`` and the start timeout: what makes the unit "started" for its dependents."""
    gate = spec.readiness
    if gate is None:
        return [("Type", "exec")]  # ready once spawned, as in mpsv3
    timeout = [("TimeoutStartSec", _span(gate.timeout_s))]
    if gate.notify:
        return [("Type", "notify"), ("NotifyAccess", "all"), *timeout]
    if gate.log is not None:
        warn.dropped(
            spec.id, "log readiness", "dropped (the unit is ready once its process is spawned)"
        )
        return [("Type", "exec")]
    return [("Type", "exec"), *timeout]


def _readiness_gate(spec: ServiceSpec) -> list[tuple[str, str]]:
    """A polled readiness probe as an ``ExecStartPost=`` loop; the unit is up when it ends."""
    gate = spec.readiness
    if gate is None or gate.notify or gate.log is not None:
        return []
    check = gate.check()
    if isinstance(check, ExecCheck):
        probe = f"timeout {whole_seconds(gate.attempt_timeout_s)} {exec_shell(check)}"
    else:
        probe = probe_shell(check, gate.attempt_timeout_s)
    loop = f"until {probe}; do sleep {_decimal(gate.period_ms / 1000)}; done"
    return [("ExecStartPost", exec_line(["/bin/sh", "-c", loop]))]


def _restart(spec: ServiceSpec, warn: Warnings) -> list[tuple[str, str]]:
    restart = spec.restart
    backoff = restart.backoff
    policy = {"always": "always", "on-failure": "on-failure", "never": "no"}[restart.policy]
    settings = [("Restart", policy), ("RestartSec", _span(backoff.base_ms / 1000))]
    steps = restart_steps(backoff.base_ms, backoff.factor, backoff.max_ms)
    if steps:
        settings += [
            ("RestartSteps", str(steps)),
            ("RestartMaxDelaySec", _span(backoff.max_ms / 1000)),
        ]
    settings += [
        ("RestartPreventExitStatus", str(EXIT_SELF_QUARANTINE)),
        ("RestartForceExitStatus", str(EXIT_HOT_RELOAD)),
    ]
    if backoff.jitter:
        warn.dropped(spec.id, f"backoff jitter {backoff.jitter:g}", "dropped (delays are exact)")
    return settings


def restart_steps(base_ms: int, factor: float, max_ms: int) -> int:
    """``RestartSteps=`` for a backoff: how many geometric steps from base to max.

    0 means a fixed delay (no growth: factor 1, base 0, or max not above base).
    """
    if factor <= 1 or base_ms <= 0 or max_ms <= base_ms:
        return 0
    return max(1, round(math.log(max_ms / base_ms) / math.log(factor)))


def _start_limit_window_s(spec: ServiceSpec) -> float:
    """A window that holds ``max_retries`` failed runs: the delays plus a short run each.

    mpsv3 counts *consecutive* failures and forgets them after ``reset_after_s`` of health;
    systemd counts starts within a sliding window. Runs shorter than ``reset_after_s`` are
    the failing ones, so the window is the sum of the backoff delays plus that much per run.
    """
    policy = BackoffPolicy.from_spec(spec.restart)
    retries = spec.restart.max_retries
    delays = sum(policy.nominal_delay(n) for n in range(1, retries + 1))
    return max(1.0, math.ceil(delays + retries * spec.restart.reset_after_s))


def _stop(spec: ServiceSpec, warn: Warnings) -> list[tuple[str, str]]:
    signal = spec.stop.signal
    if signal in _FOREIGN_SIGNALS:
        warn.dropped(spec.id, f"stop signal {signal}", "SIGTERM is sent instead")
        signal = "SIGTERM"
    # TimeoutStopSec=0 would mean "wait forever": a zero grace is the shortest span instead.
    grace = _span(spec.stop.grace_s) if spec.stop.grace_s > 0 else "1ms"
    return [("KillMode", "control-group"), ("KillSignal", signal), ("TimeoutStopSec", grace)]


def _resolve_argv(
    argv: list[str], cwd: str, service_id: str, warn: Warnings, which: Which | None
) -> list[str]:
    """``ExecStart=`` needs an absolute program path (or a name systemd finds in its PATH)."""
    program = argv[0]
    if program.startswith("/"):
        return argv
    if "/" in program:  # relative to the service's cwd, as the kernel resolves it for mpsv3
        return [posixpath.normpath(posixpath.join(cwd, program)), *argv[1:]]
    found = which(program) if which is not None else None
    if found is None:
        if which is not None:
            warn.service(
                service_id,
                f"program {program!r} is not on this PATH; systemd searches its own fixed PATH",
            )
        return argv
    return [found, *argv[1:]]


# ------------------------------------------------------------------------------- quoting


def exec_line(argv: list[str]) -> str:
    """An argv as a systemd command line: each word quoted as needed, ``%`` and ``$`` escaped.

    systemd splits ``ExecStart=`` like a shell without running one, expands ``%`` specifiers
    and ``$VAR``: a literal ``%`` is ``%%``, a literal ``$`` is ``$$``.
    """
    return " ".join(_exec_word(word) for word in argv)


def _exec_word(word: str) -> str:
    word = _specifiers(word).replace("$", "$$")
    if word == ";":
        return "\\;"  # a lone ";" separates commands in older systemd
    if word and not any(c in word for c in " \t\n\"'\\"):
        return word
    return _c_quote(word)


def _env_assignment(key: str, value: str) -> str:
    """One ``Environment=`` assignment, quoted as a whole (``$`` is not expanded there)."""
    return _c_quote(_specifiers(f"{key}={value}"))


def _c_quote(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _specifiers(text: str) -> str:
    return text.replace("%", "%%")


def _span(seconds: float) -> str:
    """A time span: whole seconds as ``10s``, anything else in milliseconds (``1500ms``)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def _decimal(seconds: float) -> str:
    """A number of seconds for ``sleep``: ``0.1``, ``2``."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") or "0"
