"""Loading a valid config: schema values, interpolation order, resolution, explain, --set."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from mpsv3.config.explain import explain
from mpsv3.config.loader import load_config, load_config_text, parse_overrides
from mpsv3.config.schema import (
    Config,
    ExecCheck,
    HttpGetCheck,
    LogCheck,
    RedisPingCheck,
    ServiceSpec,
    TcpCheck,
)
from mpsv3.errors import EXIT_USAGE, ConfigInvalid, MpsvError
from mpsv3.policy.graph import DependencyGraph
from support import MIND_SERVICES

STACK7 = Path(__file__).parent / "configs" / "stack7.yaml"


@pytest.fixture
def stack7(tmp_path: Path) -> Path:
    path = tmp_path / "mind" / "services.yaml"
    path.parent.mkdir()
    shutil.copy(STACK7, path)
    return path


def _load(text: str, tmp_path: Path) -> Config:
    return load_config_text(textwrap.dedent(text), tmp_path / "services.yaml", environ={})


ONE_SERVICE = "version: 1\nservices:\n  - id: s\n    cmd: run\n"


def _spec(keys: str, tmp_path: Path) -> ServiceSpec:
    """The one service ``s`` (``cmd: run``) with more ``keys`` (YAML, as under the service)."""
    return _load(ONE_SERVICE + textwrap.indent(textwrap.dedent(keys), "    "), tmp_path).services[0]


def test_seven_service_stack(stack7: Path) -> None:
    config = load_config(stack7, environ={})
    root = stack7.parent
    assert config.path == stack7
    assert config.root == root
    assert config.name == "mind-protocol"
    assert config.state_dir == root / ".mpsv3"
    assert tuple(s.id for s in config.services) == MIND_SERVICES
    assert config.stack.legacy_locks == [".launcher.lock", ".locks/*.pid"]
    assert config.stack.alert_cmd == ["notify-send", "mpsv3 alert"]
    assert config.stack.metrics is not None and config.stack.metrics.port == 9464
    _check_falkordb(config)
    _check_ws_api(config, root)
    _check_the_other_five(config)
    kinds = {s.readiness.kind() for s in config.services if s.readiness}
    kinds |= {s.liveness.kind() for s in config.services if s.liveness}
    assert kinds == {"tcp", "http_get", "exec", "redis_ping", "log", "notify"}


def _check_falkordb(config: Config) -> None:
    falkordb = config.stack.service("falkordb")
    assert falkordb.cmd == ["falkordb-server", "--port", "6379"]
    assert falkordb.ports == [6379]
    assert falkordb.criticality == "critical"
    assert falkordb.readiness is not None and falkordb.readiness.check() == RedisPingCheck(
        port=6379
    )
    assert falkordb.readiness.timeout_s == 20
    assert falkordb.liveness is not None and falkordb.liveness.check() == TcpCheck(port=6379)


def _check_ws_api(config: Config, root: Path) -> None:
    ws_api = config.stack.service("ws_api")
    assert ws_api.cmd == ["python", "-m", "app.ws_api", "--port", "8000"]
    assert ws_api.cwd == str(root / "backend")
    assert ws_api.ports == [8000]
    assert ws_api.env == {
        "WS_PORT": "8000",
        "REDIS_PORT": "6379",
        "API_URL": "http://127.0.0.1:8000",
        "PYTHONUNBUFFERED": "0",  # the service's own value wins over the global one
        "PORT": "8000",
    }
    assert ws_api.readiness is not None and ws_api.readiness.kind() == "http_get"
    assert ws_api.readiness.check() == HttpGetCheck(url="http://127.0.0.1:8000/api/ping")
    assert ws_api.liveness is not None and ws_api.liveness.failure_threshold == 3
    assert ws_api.restart.backoff.jitter == 0.1
    assert ws_api.watch is not None
    assert ws_api.watch.paths == ["backend/app/**/*.py", "!backend/app/tests/**"]


def _check_the_other_five(config: Config) -> None:
    dashboard = config.stack.service("dashboard")
    assert dashboard.readiness is not None and dashboard.readiness.check() == LogCheck(
        pattern=r"ready in \d+ ms"
    )
    assert dashboard.restart.policy == "always"
    assert dashboard.env["PYTHONUNBUFFERED"] == "1"  # a number in env: is the text written

    watcher = config.stack.service("conversation_watcher")
    assert watcher.readiness is not None and watcher.readiness.kind() == "notify"
    assert watcher.watch is not None and watcher.watch.signal == "SIGHUP"

    injection = config.stack.service("stimulus_injection")
    assert injection.readiness is not None
    assert injection.readiness.check() == ExecCheck(cmd=["python", "-c", "import sys; sys.exit(0)"])
    assert injection.stop.signal == "SIGINT"

    collector = config.stack.service("signals_collector")
    assert collector.liveness is not None and collector.liveness.kind() == "exec"
    assert collector.readiness is None

    orchestrator = config.stack.service("autonomy_orchestrator")
    assert orchestrator.argv()[-1].endswith("--url ${NOT_INTERPOLATED}")
    assert orchestrator.shell and orchestrator.argv()[:2] == ["/bin/sh", "-c"]
    assert orchestrator.readiness is not None
    assert orchestrator.readiness.check() == TcpCheck(host="localhost", port=8000)


def test_seven_service_stack_start_layers(stack7: Path) -> None:
    config = load_config(stack7, environ={})
    assert DependencyGraph.from_services(config.services).layers() == [
        ["falkordb"],
        ["ws_api", "signals_collector"],
        ["dashboard", "conversation_watcher", "stimulus_injection", "autonomy_orchestrator"],
    ]


def test_environment_then_env_keys_then_overrides(stack7: Path) -> None:
    config = load_config(stack7, environ={"WS_PORT": "8100", "REDIS_PORT": "6400"})
    ws_api = config.stack.service("ws_api")
    assert ws_api.ports == [8100]
    assert ws_api.env["API_URL"] == "http://127.0.0.1:8100"
    assert config.stack.service("falkordb").ports == [6400]

    config = load_config(stack7, {"WS_PORT": "9000"}, environ={"WS_PORT": "8100"})
    ws_api = config.stack.service("ws_api")
    assert ws_api.ports == [9000]
    assert ws_api.env["WS_PORT"] == "9000"
    assert ws_api.env["API_URL"] == "http://127.0.0.1:9000"  # later env keys see the override
    assert ws_api.readiness is not None
    assert ws_api.readiness.check() == HttpGetCheck(url="http://127.0.0.1:9000/api/ping")


def test_env_keys_are_interpolated_in_order(tmp_path: Path) -> None:
    text = """\
        version: 1
        env:
          A: "${HOME_DIR:-/srv}/a"
          B: "${A}/b"
        services:
          - id: s
            cmd: ["run", "${B}"]
        """
    config = _load(text, tmp_path)
    assert config.services[0].cmd == ["run", "/srv/a/b"]
    with pytest.raises(ConfigInvalid) as caught:
        _load(text.replace('"${A}/b"', '"${C}/b"'), tmp_path)
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path / 'services.yaml'}:4: undefined variable ${{C}} "
        "(set it in the environment, in env:, or with --set C=...)"
    ]


def test_a_later_env_key_is_not_visible_to_an_earlier_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        _load(
            """\
            version: 1
            env:
              A: "${B}"
              B: x
            services: [{id: s, cmd: run}]
            """,
            tmp_path,
        )
    assert [e.line for e in caught.value.errors] == [3]


def test_numbers_written_as_interpolated_strings_validate(tmp_path: Path) -> None:
    spec = _spec(
        """\
        ports: ["${P:-6379}"]
        readiness:
          tcp: {port: "${P:-6379}"}
          timeout_s: "${T:-2.5}"
        restart: {max_retries: "${R:-4}"}
        """,
        tmp_path,
    )
    assert spec.ports == [6379]
    assert spec.readiness is not None and spec.readiness.timeout_s == 2.5
    assert spec.restart.max_retries == 4


def test_non_string_scalars_are_left_alone(tmp_path: Path) -> None:
    spec = _spec("shell: false\nstop: {grace_s: 2.5}\n", tmp_path)
    assert spec.shell is False and spec.stop.grace_s == 2.5


def test_defaults_and_resolution(tmp_path: Path) -> None:
    folder = tmp_path / "my stack!"
    folder.mkdir()
    (folder / "services.yaml").write_text("version: 1\nservices: [{id: s, cmd: run}]\n")
    config = load_config(folder / "services.yaml", environ={})
    assert config.name == "my_stack_"
    assert config.state_dir == folder / ".mpsv3"
    spec = config.services[0]
    assert spec.cwd == str(folder)
    assert spec.env == {}
    assert spec.criticality == "core"
    assert spec.restart.policy == "on-failure"
    assert spec.stop.signal == "SIGTERM"


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "services.yaml").write_text(
        "version: 1\nstate_dir: ../state\nservices: [{id: s, cmd: run, cwd: ../work}]\n"
    )
    monkeypatch.chdir(tmp_path)
    config = load_config("sub/services.yaml", environ={})
    assert config.path == tmp_path / "sub" / "services.yaml"
    assert config.path.is_absolute()
    assert config.state_dir == tmp_path / "state"
    assert config.services[0].cwd == str(tmp_path / "work")


def test_os_environ_is_the_default_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPSV3_TEST_LOADER_PORT", "8123")
    config = load_config_text(
        'version: 1\nservices: [{id: s, cmd: run, ports: ["${MPSV3_TEST_LOADER_PORT}"]}]\n',
        tmp_path / "services.yaml",
    )
    assert config.services[0].ports == [8123]
    assert "MPSV3_TEST_LOADER_PORT" not in config.services[0].env  # only env: keys go to services


def test_yaml_merge_keys(tmp_path: Path) -> None:
    config = _load(
        """\
        version: 1
        services:
          - id: a
            cmd: run
            restart: &restart {policy: always, max_retries: 3}
          - id: b
            cmd: run
            restart:
              <<: *restart
              max_retries: 5
        """,
        tmp_path,
    )
    a, b = config.services
    assert (a.restart.policy, a.restart.max_retries) == ("always", 3)
    assert (b.restart.policy, b.restart.max_retries) == ("always", 5)


def test_error_inside_a_merged_mapping_points_at_the_anchor(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        _load(
            """\
            version: 1
            services:
              - id: a
                cmd: run
                restart: &restart
                  policy: sometimes
              - id: b
                cmd: run
                restart: {<<: *restart}
            """,
            tmp_path,
        )
    assert [e.line for e in caught.value.errors] == [6, 6]


def test_dates_stay_text(tmp_path: Path) -> None:
    config = _load(
        "version: 1\nenv: {RELEASE: 2024-01-01, BAD: 2024-13-45}\nservices: [{id: s, cmd: run}]\n",
        tmp_path,
    )
    assert config.services[0].env == {"RELEASE": "2024-01-01", "BAD": "2024-13-45"}


def test_explain_fills_every_default_and_loads_back(stack7: Path) -> None:
    config = load_config(stack7, environ={})
    text = explain(config)
    assert text.startswith(f"# effective config of {stack7}\n")
    data = yaml.safe_load(text)
    ws_api = data["services"][1]
    assert ws_api["stop"] == {"signal": "SIGTERM", "grace_s": 10.0}
    assert ws_api["readiness"] == {
        "http_get": {"url": "http://127.0.0.1:8000/api/ping", "expect_status": 200},
        "timeout_s": 30.0,
        "period_ms": 100,
        "attempt_timeout_s": 2.0,
    }
    assert data["services"][3]["readiness"]["notify"] is True
    assert data["services"][6]["cmd"][-1].endswith("$${NOT_INTERPOLATED}")
    assert data["logs"] == {"max_bytes": 10 * 1024 * 1024, "backups": 3}
    assert data["name"] == "mind-protocol"
    again = load_config_text(text, stack7, environ={})
    assert again == config


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], {}),
        (["WS_PORT=9000"], {"WS_PORT": "9000"}),
        (["A=1", "B=", "A=x=y"], {"A": "x=y", "B": ""}),
    ],
)
def test_parse_overrides(pairs: list[str], expected: dict[str, str]) -> None:
    assert parse_overrides(pairs) == expected


@pytest.mark.parametrize("pair", ["WS_PORT", "=1", "1A=2", "A-B=3", " A=1"])
def test_parse_overrides_rejects(pair: str) -> None:
    with pytest.raises(MpsvError) as caught:
        parse_overrides([pair])
    assert caught.value.exit_code == EXIT_USAGE
    assert str(caught.value).startswith(f"--set {pair!r}: expected VAR=VALUE")


def test_unreadable_file(tmp_path: Path) -> None:
    if os.name != "posix" or os.geteuid() == 0:
        pytest.skip("needs POSIX permissions and a non-root user")
    path = tmp_path / "services.yaml"
    path.write_text("version: 1\n")
    path.chmod(0)
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    assert [e.message for e in caught.value.errors] == ["cannot read config: Permission denied"]
