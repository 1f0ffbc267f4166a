"""``mpsv3 service install --user`` for real: the unit passes ``systemd-analyze verify`` and its
``ExecStart=`` line, run as systemd would run it (``Type=notify``, ``KillMode=mixed``), starts
the stack and stops it on SIGTERM.

systemd is installed here but is not PID 1: ``install`` writes the unit and says what is left
to do, and the test plays the manager (a notify socket, the unit's working directory and
environment, SIGTERM to the main process only).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support import MPSV3, py

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="systemd units")


def verify(unit: Path, runtime: Path, *, user: bool) -> tuple[int, list[str]]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    runtime.mkdir(mode=0o700, exist_ok=True)
    proc = subprocess.run(
        [analyze, *(["--user"] if user else []), "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_LEVEL": "info", "SYSTEMD_LOG_COLOR": "0"},
    )
    return proc.returncode, [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


def unit_settings(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found[key] = value
    return found


def exec_words(line: str) -> list[str]:
    """Split an ``ExecStart=`` line as systemd does for what ``exec_line`` writes."""
    return [word.replace("%%", "%").replace("$$", "$") for word in shlex.split(line)]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def cli(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "NOTIFY_SOCKET")}
    return subprocess.run([*MPSV3, *args], cwd=cwd, env={**env, "HOME": str(home)}, capture_output=True,
                          text=True, timeout=60)


def test_the_installed_unit_verifies_and_its_execstart_runs_the_stack(make_stack: Any, home: Path, tmp_path: Path) -> None:
    stack = make_stack(f"""
        version: 1
        services:
          - id: api
            cmd: {py("import time; time.sleep(0.5); print('listening', flush=True); time.sleep(600)")}
            readiness: {{log: {{pattern: "listening"}}}}
            stop: {{grace_s: 7}}
    """)
    name = stack.config_path.read_text().split("name: ", 1)[1].split()[0]
    shown = cli(["service", "install", "--user", "--print", "-c", str(stack.config_path)], stack.root, home)
    assert shown.returncode == 0 and "Type=notify" in shown.stdout
    assert not home.exists(), "--print wrote something"

    result = cli(["service", "install", "--user", "-c", str(stack.config_path)], stack.root, home)
    assert result.returncode == 0, result.stderr
    unit = home / ".config" / "systemd" / "user" / f"mpsv3-{name}.service"
    assert f"wrote {unit}" in result.stdout
    assert "systemd is not running on this machine" in result.stdout
    assert f"systemctl --user enable --now --no-block mpsv3-{name}.service" in result.stdout

    for user in (True, False):
        code, lines = verify(unit, tmp_path / "runtime", user=user)
        assert code == 0 and lines == [], lines
    damaged = tmp_path / "damaged" / unit.name
    damaged.parent.mkdir()
    damaged.write_text(unit.read_text().replace("KillMode=mixed", "KillMode=mixd"))
    assert any("kill mode" in line for line in verify(damaged, tmp_path / "runtime", user=True)[1])

    settings = unit_settings(unit.read_text())
    assert settings["Type"] == "notify" and settings["KillMode"] == "mixed"
    notify = tmp_path / "notify.sock"
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(str(notify))
    manager.settimeout(30)
    env = {**stack.env, "NOTIFY_SOCKET": str(notify)}
    key, value = settings["Environment"].split("=", 1)
    env[key] = value
    main = subprocess.Popen(
        exec_words(settings["ExecStart"]), cwd=settings["WorkingDirectory"], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        said: list[str] = []
        while "READY=1" not in said:
            said += manager.recv(65536).decode().splitlines()
        assert "STATUS=1/1 ready" in said
        assert stack.service("api")["state"] == "ready"
        assert stack.status()["supervisor"]["pid"] == main.pid  # the unit's main process: the keeper
        main.send_signal(signal.SIGTERM)  # KillMode=mixed: the main process only
        assert main.wait(timeout=30) == 0  # RestartPreventExitStatus=0: not restarted
        while "STOPPING=1" not in said:
            said += manager.recv(65536).decode().splitlines()
        assert stack.count("stopped", "api") == 1
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
        manager.close()

    gone = cli(["service", "uninstall", "--user", "-c", str(stack.config_path)], stack.root, home)
    assert gone.returncode == 0 and f"removed {unit}" in gone.stdout
    assert not unit.exists()
