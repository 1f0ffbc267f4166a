"""The systemd unit that runs ``mpsv3 up`` for one stack (pure text).

Every line is there for a reason an operator can check:

- ``Type=notify`` and ``NotifyAccess=all``: ``up`` says ``READY=1`` once every service is
  ready, from the supervisor's process, which is a child of the unit's main process (the
  keeper that ``ExecStart=`` runs); ``STATUS=`` lines show in ``systemctl status``.
- ``TimeoutStartSec=infinity``: the unit stays "activating" while a service is not ready
  (its ``STATUS=`` says which); systemd must not kill the healthy rest of the stack for it.
- ``WatchdogSec=``: the supervisor pings at half of it from its event loop; a wedged loop
  stops the pings and systemd restarts the unit.
- ``Restart=always`` with ``RestartPreventExitStatus=0 78``: a supervisor that died (a crash,
  a signal, the watchdog) comes back; one that was told to stop (``mpsv3 down``, a SIGTERM)
  exits 0 and stays down, and a config error (78) waits for the operator.
- ``KillMode=mixed``: SIGTERM reaches only the keeper, which hands it to the supervisor,
  which stops the services in reverse dependency order with their own signals and grace;
  SIGKILL to everything left only after ``TimeoutStopSec=``, which covers every layer's
  longest ``stop.grace_s``.
- ``Delegate=yes``: the supervisor may make a cgroup per service under the unit's own.
"""

from __future__ import annotations

from mpsv3.export.systemd import exec_line
from mpsv3.service_units.spec import UnitSpec


def unit_file_name(spec: UnitSpec) -> str:
    return f"{spec.name}.service"


def render(spec: UnitSpec) -> str:
    """The unit file's text."""
    unit = [
        ("Description", f"mpsv3 stack {spec.instance} ({_text(spec.config_path)})"),
    ]
    if spec.scope == "system":
        unit += [("Wants", "network-online.target"), ("After", "network-online.target")]
    service = [
        ("Type", "notify"),
        ("NotifyAccess", "all"),
        ("ExecStart", exec_line(list(spec.up))),
        ("ExecReload", exec_line(list(spec.reload))),
        ("WorkingDirectory", _text(spec.working_dir)),
        ("Environment", "PYTHONUNBUFFERED=1"),
        ("Restart", "always"),
        ("RestartSec", f"{spec.restart_s}s"),
        ("RestartPreventExitStatus", "0 78"),
        ("TimeoutStartSec", "infinity"),
        ("TimeoutStopSec", f"{spec.stop_timeout_s}s"),
        ("WatchdogSec", f"{spec.watchdog_s}s"),
        ("KillMode", "mixed"),
        ("Delegate", "yes"),
    ]
    target = "multi-user.target" if spec.scope == "system" else "default.target"
    sections = [("Unit", unit), ("Service", service), ("Install", [("WantedBy", target)])]
    lines = [
        f"# Written by `mpsv3 service install --{spec.scope}` for {_comment(spec.config_path)}.",
        f"# `mpsv3 service uninstall --{spec.scope} -c ...` removes it; `systemctl{_flag(spec)} status {spec.name}` shows it.",
    ]
    for title, entries in sections:
        lines += ["", f"[{title}]", *(f"{key}={value}" for key, value in entries)]
    return "\n".join(lines) + "\n"


def _flag(spec: UnitSpec) -> str:
    return " --user" if spec.scope == "user" else ""


def _text(value: str) -> str:
    """A plain setting's value: ``%`` is a specifier, a newline would end the line."""
    return value.replace("%", "%%").replace("\n", " ")


def _comment(value: str) -> str:
    return value.replace("\n", " ")
