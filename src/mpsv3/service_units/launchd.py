"""The launchd property list that runs ``mpsv3 up`` for one stack on macOS (pure text).

A user agent (``~/Library/LaunchAgents``, at login) or a system daemon
(``/Library/LaunchDaemons``, at boot). ``RunAtLoad`` starts it; ``KeepAlive`` with
``SuccessfulExit: false`` brings back a supervisor that died (non-zero exit or a signal) and
leaves one that was told to stop (``mpsv3 down`` exits 0), like the systemd unit's
``RestartPreventExitStatus=0``. launchd sends SIGTERM to the process it started (the
supervisor, which stops the stack in order) and SIGKILL after ``ExitTimeOut``, which covers
every layer's longest ``stop.grace_s``. The console is not kept (launchd does not rotate
files; ``mpsv3 attach`` follows it live, ``mpsv3 logs`` reads the services' logs); what the
supervisor writes to its standard error goes to ``state_dir/logs/launchd.log``.
Typed and unit-tested here; not run on this machine (no macOS).
"""

from __future__ import annotations

import plistlib
from pathlib import Path

from mpsv3.service_units.spec import UnitSpec


def label(spec: UnitSpec) -> str:
    """``dev.mpsv3.<instance>``: launchd's name for the job."""
    return f"dev.mpsv3.{spec.instance}"


def render(spec: UnitSpec) -> str:
    """The property list's XML text."""
    job = {
        "Label": label(spec),
        "ProgramArguments": list(spec.up),
        "WorkingDirectory": spec.working_dir,
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": max(spec.restart_s, 1),
        "ExitTimeOut": spec.stop_timeout_s,
        "ProcessType": "Standard",
        "StandardOutPath": "/dev/null",
        "StandardErrorPath": str(Path(spec.state_dir) / "logs" / "launchd.log"),
    }
    return plistlib.dumps(job, sort_keys=False).decode("utf-8")
