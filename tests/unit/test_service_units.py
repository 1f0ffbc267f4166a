"""The units that run ``mpsv3 up`` at boot: systemd, launchd, the Windows task (pure text)."""

from __future__ import annotations

import plistlib
import shlex
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mpsv3.config.loader import load_config
from mpsv3.planner import compile_plan
from mpsv3.service_units import UnitSpec, installer, launchd, systemd, unit_spec, windows_task
from mpsv3.service_units.spec import STOP_MARGIN_S

TASK = "{http://schemas.microsoft.com/windows/2004/02/mit/task}"


def plan_in(folder: Path) -> object:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "services.yaml").write_text(textwrap.dedent("""
        version: 1
        name: shop
        services:
          - id: db
            cmd: ["sleep", "100"]
            stop: {grace_s: 10}
          - id: api
            cmd: ["sleep", "100"]
            requires: [db]
            stop: {grace_s: 5}
          - id: worker
            cmd: ["sleep", "100"]
            requires: [db]
            stop: {grace_s: 20.5}
    """).lstrip())
    return compile_plan(load_config(folder / "services.yaml", {}), {})


@pytest.fixture
def spec(tmp_path: Path) -> UnitSpec:
    return unit_spec(plan_in(tmp_path / "my stack 100%"), "user", assignments=["PORT=8000"], profiles=["debug"],  # type: ignore[arg-type]
                     python="/opt/py/bin/python")


def fields(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_the_spec_runs_up_with_this_interpreter_and_an_absolute_config(spec: UnitSpec) -> None:
    assert spec.name == "mpsv3-shop"
    assert spec.up[:4] == ("/opt/py/bin/python", "-m", "mpsv3", "up")
    assert Path(spec.up[5]).is_absolute() and spec.up[5].endswith("my stack 100%/services.yaml")
    assert spec.up[6:] == ("--set=PORT=8000", "--profile=debug")
    assert spec.reload[3:] == ("reload", "-c", spec.config_path, "--set=PORT=8000")
    # db stops alone (10 s), then api and worker together (the longer: 20.5 s), plus the margin.
    assert spec.stop_timeout_s == 31 + STOP_MARGIN_S


def test_systemd_unit(spec: UnitSpec) -> None:
    unit = systemd.render(spec)
    found = fields(unit)
    for key, value in {
        "Type": "notify", "NotifyAccess": "all", "Restart": "always", "KillMode": "mixed",
        "WatchdogSec": "30s", "TimeoutStopSec": f"{spec.stop_timeout_s}s", "TimeoutStartSec": "infinity",
        "RestartPreventExitStatus": "0 78", "Delegate": "yes", "WantedBy": "default.target",
    }.items():
        assert found[key] == [value], key
    assert "After" not in found  # a user manager has no network-online.target
    words = shlex.split(found["ExecStart"][0].replace("%%", "%"))
    assert words == list(spec.up)
    assert '"' in found["ExecStart"][0] and "100%%" in found["ExecStart"][0]  # quoted, % escaped
    assert found["WorkingDirectory"] == [spec.working_dir.replace("%", "%%")]
    assert shlex.split(found["ExecReload"][0].replace("%%", "%")) == list(spec.reload)


def test_a_system_unit_waits_for_the_network_and_starts_at_boot(spec: UnitSpec) -> None:
    system = UnitSpec(**{**spec.__dict__, "scope": "system"})
    found = fields(systemd.render(system))
    assert found["WantedBy"] == ["multi-user.target"]
    assert found["After"] == ["network-online.target"] and found["Wants"] == ["network-online.target"]


def test_launchd_plist(spec: UnitSpec) -> None:
    job = plistlib.loads(launchd.render(spec).encode())
    assert job["Label"] == "dev.mpsv3.shop"
    assert job["ProgramArguments"] == list(spec.up)
    assert job["WorkingDirectory"] == spec.working_dir
    assert job["RunAtLoad"] is True and job["KeepAlive"] == {"SuccessfulExit": False}
    assert job["ExitTimeOut"] == spec.stop_timeout_s
    assert job["StandardErrorPath"].endswith("/logs/launchd.log")


@pytest.mark.parametrize("scope", ["user", "system"])
def test_windows_task(spec: UnitSpec, scope: str) -> None:
    task_spec = UnitSpec(**{**spec.__dict__, "scope": scope})
    text = windows_task.render(task_spec, "HOST\\ada")
    root = ET.fromstring(text.encode("utf-16"))
    command = root.find(f"{TASK}Actions/{TASK}Exec/{TASK}Command")
    arguments = root.find(f"{TASK}Actions/{TASK}Exec/{TASK}Arguments")
    assert command is not None and command.text == spec.up[0]
    assert arguments is not None and arguments.text is not None
    assert f'"{spec.config_path}"' in arguments.text  # a path with a space is quoted
    assert root.find(f"{TASK}Settings/{TASK}ExecutionTimeLimit").text == "PT0S"  # type: ignore[union-attr]
    assert root.find(f"{TASK}RegistrationInfo/{TASK}URI").text == "\\mpsv3-shop"  # type: ignore[union-attr]
    principal = root.find(f"{TASK}Principals/{TASK}Principal/{TASK}UserId")
    if scope == "user":
        assert root.find(f"{TASK}Triggers/{TASK}LogonTrigger/{TASK}UserId").text == "HOST\\ada"  # type: ignore[union-attr]
        assert principal is not None and principal.text == "HOST\\ada"
    else:
        assert root.find(f"{TASK}Triggers/{TASK}BootTrigger") is not None
        assert principal is not None and principal.text == "S-1-5-18"


def test_where_each_unit_goes(spec: UnitSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    home = tmp_path / "home"
    system = UnitSpec(**{**spec.__dict__, "scope": "system"})
    assert installer.unit_path("systemd", spec, home) == home / ".config/systemd/user/mpsv3-shop.service"
    assert installer.unit_path("systemd", system, home) == Path("/etc/systemd/system/mpsv3-shop.service")
    assert installer.unit_path("launchd", spec, home) == home / "Library/LaunchAgents/dev.mpsv3.shop.plist"
    assert installer.unit_path("launchd", system, home) == Path("/Library/LaunchDaemons/dev.mpsv3.shop.plist")
    assert installer.unit_path("windows-task", spec, home) == Path(spec.state_dir) / "run" / "mpsv3-shop.xml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert installer.unit_path("systemd", spec, home) == tmp_path / "cfg/systemd/user/mpsv3-shop.service"


class Manager:
    """A fake service manager: records each command; ``fail`` names one that fails."""

    def __init__(self, fail: str | None = None) -> None:
        self.ran: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: object) -> tuple[int, str]:
        words = list(argv)  # type: ignore[call-overload]
        self.ran.append(words)
        return (1, "Failed to connect to bus") if self.fail and self.fail in words else (0, "")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return tmp_path / "home"


@pytest.mark.skipif(sys.platform == "win32", reason="HOME")
def test_install_runs_systemctl_when_systemd_runs(spec: UnitSpec, home: Path) -> None:
    manager = Manager()
    outcome = installer.install("systemd", spec, run=manager, managed=True)
    assert outcome.ok and not outcome.todo
    assert outcome.path.read_text() == systemd.render(spec)
    assert manager.ran == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "--no-block", "mpsv3-shop.service"],
    ]
    manager.ran.clear()
    gone = installer.uninstall("systemd", spec, run=manager, managed=True)
    assert gone.ok and not outcome.path.exists()
    assert manager.ran == [
        ["systemctl", "--user", "disable", "--now", "mpsv3-shop.service"],
        ["systemctl", "--user", "daemon-reload"],
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="HOME")
def test_a_failing_step_is_reported_with_what_is_left(spec: UnitSpec, home: Path) -> None:
    outcome = installer.install("systemd", spec, run=Manager(fail="daemon-reload"), managed=True)
    assert not outcome.ok
    assert outcome.todo[0].startswith("`systemctl --user daemon-reload` failed (exit 1): Failed to connect to bus")
    assert outcome.todo[1] == "systemctl --user enable --now --no-block mpsv3-shop.service"
    assert outcome.path.exists()  # written all the same


@pytest.mark.skipif(sys.platform == "win32", reason="HOME")
def test_without_the_manager_it_says_what_to_run(spec: UnitSpec, home: Path) -> None:
    manager = Manager()
    outcome = installer.install("systemd", spec, run=manager, managed=False)
    assert manager.ran == []
    assert outcome.ok and outcome.todo[0].startswith("systemd is not running on this machine")
    assert outcome.todo[1:] == [
        "systemctl --user daemon-reload", "systemctl --user enable --now --no-block mpsv3-shop.service",
    ]


def test_launchd_and_schtasks_commands(spec: UnitSpec, home: Path) -> None:
    manager = Manager(fail="bootout")  # nothing to take back yet: tolerated
    outcome = installer.install("launchd", spec, run=manager, managed=True)
    assert outcome.ok
    assert manager.ran[1][:3] == ["launchctl", "bootstrap", manager.ran[0][2].rsplit("/", 1)[0]]
    manager = Manager()
    outcome = installer.install("windows-task", spec, run=manager, managed=True)
    assert manager.ran == [
        ["schtasks", "/Create", "/TN", "mpsv3-shop", "/XML", str(outcome.path), "/F"],
        ["schtasks", "/Run", "/TN", "mpsv3-shop"],
    ]
    assert outcome.path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")  # UTF-16, as schtasks reads it
