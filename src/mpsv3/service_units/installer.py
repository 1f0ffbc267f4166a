"""Write a stack's unit and hand it to the service manager; or take it back.

Why apart from the renderers: this is the only part that touches the machine. It writes the
file where the manager looks (or prints it, ``--print``), then runs the manager's own
commands when that manager is running here (``systemctl daemon-reload`` and
``enable --now``; ``launchctl bootstrap``; ``schtasks /Create``), and otherwise says plainly
what is left to do, for example in a container where systemd is installed but not running.
Every command's failure is reported with its own words, never hidden.
"""

from __future__ import annotations

import getpass
import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mpsv3.platform.host import ServiceManager, service_manager, service_manager_running
from mpsv3.service_units import launchd, systemd, windows_task
from mpsv3.service_units.spec import UnitSpec

Kind = ServiceManager
KINDS: tuple[Kind, ...] = ("systemd", "launchd", "windows-task")
#: Runs one manager command: argv -> (exit code, what it printed).
Runner = Callable[[Sequence[str]], "tuple[int, str]"]
COMMAND_TIMEOUT_S = 120.0


@dataclass
class Outcome:
    """What an install or uninstall did, and what the operator still has to do."""

    path: Path
    done: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    ok: bool = True


def default_kind() -> Kind:
    """The service manager of this OS."""
    return service_manager()


def render(kind: Kind, spec: UnitSpec) -> str:
    if kind == "launchd":
        return launchd.render(spec)
    if kind == "windows-task":
        return windows_task.render(spec, _windows_account())
    return systemd.render(spec)


def unit_path(kind: Kind, spec: UnitSpec, home: Path | None = None) -> Path:
    """Where the manager looks for it (``home``: the user's home, default ``~``)."""
    home = home or Path.home()
    if kind == "launchd":
        folder = home / "Library" / "LaunchAgents" if spec.scope == "user" else Path("/Library/LaunchDaemons")
        return folder / f"{launchd.label(spec)}.plist"
    if kind == "windows-task":
        return Path(spec.state_dir) / "run" / f"{windows_task.task_name(spec)}.xml"
    if spec.scope == "system":
        return Path("/etc/systemd/system") / systemd.unit_file_name(spec)
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config_home) / "systemd" / "user" / systemd.unit_file_name(spec)


def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Run a manager command; its exit code and output (a missing program is code 127)."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"no answer within {COMMAND_TIMEOUT_S:g} s"
    return done.returncode, (done.stdout + done.stderr).strip()


def install(kind: Kind, spec: UnitSpec, *, run: Runner = run_command, managed: bool | None = None) -> Outcome:
    """Write the unit and enable it (``managed``: the manager runs here; default: detected)."""
    path = unit_path(kind, spec)
    text = render(kind, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "windows-task":
        path.write_text(text, encoding="utf-16")
    else:
        path.write_text(text, encoding="utf-8")
    outcome = Outcome(path, done=[f"wrote {path}"])
    steps = _install_steps(kind, spec, path)
    if managed is None:
        managed = _manager_here(kind)
    return _carry_out(outcome, steps, managed, kind, run=run)


def uninstall(kind: Kind, spec: UnitSpec, *, run: Runner = run_command, managed: bool | None = None) -> Outcome:
    """Stop and disable the unit, then remove its file."""
    path = unit_path(kind, spec)
    outcome = Outcome(path)
    if managed is None:
        managed = _manager_here(kind)
    outcome = _carry_out(outcome, _uninstall_steps(kind, spec, path), managed, kind, run=run)
    if path.exists():
        path.unlink()
        outcome.done.append(f"removed {path}")
    else:
        outcome.done.append(f"{path} was not there")
    if kind == "systemd" and managed:
        _carry_out(outcome, [_systemctl(spec, "daemon-reload")], True, kind, run=run)
    return outcome


def _manager_here(kind: Kind) -> bool:
    return kind == service_manager() and service_manager_running()


def _carry_out(
    outcome: Outcome, steps: list[list[str]], managed: bool, kind: Kind, *, run: Runner = run_command
) -> Outcome:
    if not managed:
        outcome.todo.append(_not_running(kind))
        outcome.todo += [shlex.join(step) for step in steps]
        return outcome
    for index, step in enumerate(steps):
        code, said = run(step)
        if code != 0 and not _tolerated(step):
            outcome.ok = False
            outcome.todo.append(f"`{shlex.join(step)}` failed (exit {code}): {said or 'no message'}")
            outcome.todo += [shlex.join(rest) for rest in steps[index + 1 :]]
            return outcome
        outcome.done.append(f"ran {shlex.join(step)}")
    return outcome


def _tolerated(step: list[str]) -> bool:
    """Steps that may fail: taking back what is not there."""
    return step[:2] in (["launchctl", "bootout"], ["schtasks", "/End"])


def _not_running(kind: Kind) -> str:
    if kind == "systemd":
        return "systemd is not running on this machine (no /run/systemd/system, e.g. a container); where it runs:"
    return f"{kind} is not this machine's service manager; on the machine it runs on:"


def _systemctl(spec: UnitSpec, *args: str) -> list[str]:
    return ["systemctl", *(["--user"] if spec.scope == "user" else []), *args]


def _install_steps(kind: Kind, spec: UnitSpec, path: Path) -> list[list[str]]:
    if kind == "systemd":
        unit = systemd.unit_file_name(spec)
        return [_systemctl(spec, "daemon-reload"), _systemctl(spec, "enable", "--now", "--no-block", unit)]
    if kind == "launchd":
        domain = _launchd_domain(spec)
        return [["launchctl", "bootout", f"{domain}/{launchd.label(spec)}"], ["launchctl", "bootstrap", domain, str(path)]]
    name = windows_task.task_name(spec)
    return [["schtasks", "/Create", "/TN", name, "/XML", str(path), "/F"], ["schtasks", "/Run", "/TN", name]]


def _uninstall_steps(kind: Kind, spec: UnitSpec, path: Path) -> list[list[str]]:
    if kind == "systemd":
        return [_systemctl(spec, "disable", "--now", systemd.unit_file_name(spec))]
    if kind == "launchd":
        return [["launchctl", "bootout", f"{_launchd_domain(spec)}/{launchd.label(spec)}"]]
    name = windows_task.task_name(spec)
    return [["schtasks", "/End", "/TN", name], ["schtasks", "/Delete", "/TN", name, "/F"]]


def _launchd_domain(spec: UnitSpec) -> str:
    getuid = getattr(os, "getuid", None)
    return "system" if spec.scope == "system" or getuid is None else f"gui/{getuid()}"


def _windows_account() -> str:
    domain = os.environ.get("USERDOMAIN")
    user = os.environ.get("USERNAME") or getpass.getuser()
    return f"{domain}\\{user}" if domain else user


def hints(kind: Kind, spec: UnitSpec) -> list[str]:
    """What an operator should know once it is installed."""
    if kind != "systemd":
        return []
    flag = " --user" if spec.scope == "user" else ""
    found = [f"status: systemctl{flag} status {spec.name}; logs: journalctl{flag} -u {spec.name}"]
    if spec.scope == "user":
        found.append(f"to start it at boot without a login: loginctl enable-linger {getpass.getuser()}")
    return found
