"""Unit tests of ``mpsv3 export compose``: each setting lands in its Compose key, as configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from export_support import make_config, unmapped, warned_once, warning_params

from mpsv3.config.schema import Config
from mpsv3.errors import EXIT_USAGE
from mpsv3.export import compose
from mpsv3.export.model import ExportError


def services_of(config: Config, **options: Any) -> dict[str, Any]:
    options.setdefault("default_image", "example/app:1")
    result = compose.export(config, **options)
    assert list(result.files) == ["compose.yaml"]
    document = yaml.safe_load(result.files["compose.yaml"])
    assert list(document) == ["services"]
    services: dict[str, Any] = document["services"]
    return services


def service_of(tmp_path: Path, service: dict[str, Any]) -> dict[str, Any]:
    return services_of(make_config(tmp_path, [{"id": "a", "cmd": ["/bin/app"], **service}]))["a"]


# ------------------------------------------------------------------------ round trips

ROUND_TRIPS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "command",
        {"cmd": ["/bin/app", "--port", "80"]},
        {"entrypoint": ["/bin/app", "--port", "80"]},
    ),
    (
        "shell command",
        {"cmd": "serve && wait", "shell": True},
        {"entrypoint": ["/bin/sh", "-c", "serve && wait"]},
    ),
    ("ports", {"ports": [8000, 9000]}, {"ports": ["8000:8000", "9000:9000"]}),
    ("policy always", {"restart": {"policy": "always"}}, {"restart": "always"}),
    ("policy on-failure", {"restart": {"max_retries": 5}}, {"restart": "on-failure:4"}),
    ("quarantine at once", {"restart": {"max_retries": 1}}, {"restart": "no"}),
    ("policy never", {"restart": {"policy": "never"}}, {"restart": "no"}),
    (
        "stop",
        {"stop": {"signal": "SIGQUIT", "grace_s": 2.5}},
        {"stop_signal": "SIGQUIT", "stop_grace_period": "2500ms"},
    ),
    ("default stop", {}, {"stop_signal": "SIGTERM", "stop_grace_period": "10s"}),
    (
        "http readiness",
        {
            "readiness": {
                "http_get": {"url": "http://127.0.0.1:8000/ping", "expect_status": 204},
                "timeout_s": 30,
                "period_ms": 250,
                "attempt_timeout_s": 3,
            }
        },
        {
            "healthcheck": {
                "test": [
                    "CMD-SHELL",
                    "test \"$$(curl -s -o /dev/null -w '%{http_code}' --max-time 3"
                    ' http://127.0.0.1:8000/ping)" = 204',
                ],
                "interval": "30s",  # no liveness: Docker's default, never the poll period
                "timeout": "3s",
                "retries": 3,
                "start_period": "30s",
            }
        },
    ),
    (
        "exec readiness",
        {"readiness": {"exec": {"cmd": ["pg_isready", "-h", "$HOST"]}, "period_ms": 1000}},
        {
            "healthcheck": {
                "test": ["CMD", "pg_isready", "-h", "$$HOST"],
                "interval": "30s",
                "timeout": "2s",
                "retries": 3,
                "start_period": "30s",
            }
        },
    ),
    (
        "tcp liveness only",
        {
            "liveness": {
                "tcp": {"port": 5432},
                "interval_s": 15,
                "timeout_s": 4,
                "failure_threshold": 5,
            }
        },
        {
            "healthcheck": {
                "test": [
                    "CMD-SHELL",
                    "nc -z -w 4 127.0.0.1 5432 2>/dev/null"
                    " || timeout 4 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5432'",
                ],
                "interval": "15s",
                "timeout": "4s",
                "retries": 5,
            }
        },
    ),
    (
        "redis readiness",
        {"readiness": {"redis_ping": {"port": 6380}}},
        {
            "healthcheck": {
                "test": [
                    "CMD-SHELL",
                    "timeout 2 redis-cli -h 127.0.0.1 -p 6380 ping | grep -qx PONG",
                ],
                "interval": "30s",
                "timeout": "2s",
                "retries": 3,
                "start_period": "30s",
            }
        },
    ),
]


@pytest.mark.parametrize(
    ("service", "expected"),
    [pytest.param(service, expected, id=name) for name, service, expected in ROUND_TRIPS],
)
def test_settings_land_in_their_compose_keys(
    tmp_path: Path, service: dict[str, Any], expected: dict[str, Any]
) -> None:
    exported = service_of(tmp_path, service)
    for key, value in expected.items():
        assert exported[key] == value, key


@pytest.mark.parametrize("readiness", [None, {"notify": True}, {"log": {"pattern": "listening"}}])
def test_no_runnable_gate_means_no_healthcheck(
    tmp_path: Path, readiness: dict[str, Any] | None
) -> None:
    assert "healthcheck" not in service_of(tmp_path, {"readiness": readiness})


def test_dependencies_wait_for_health_only_where_there_is_a_gate(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [
            {"id": "db", "cmd": "db", "readiness": {"tcp": {"port": 5432}}},
            {"id": "queue", "cmd": "queue", "readiness": {"log": {"pattern": "up"}}},
            {"id": "cache", "cmd": "cache"},
            {"id": "probe_only_alive", "cmd": "x", "liveness": {"tcp": {"port": 1}}},
            {"id": "api", "cmd": "api", "requires": ["db", "queue", "cache", "probe_only_alive"]},
        ],
    )
    assert services_of(config)["api"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "queue": {"condition": "service_started"},
        "cache": {"condition": "service_started"},
        "probe_only_alive": {"condition": "service_started"},
    }
    assert "depends_on" not in services_of(config)["db"]


def test_environment_merges_global_then_service_and_escapes_dollars(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [{"id": "a", "cmd": ["/bin/app", "$PWD"], "env": {"SHARED": "mine", "P": "a$b ${c}"}}],
        env={"G": "1", "SHARED": "global"},
    )
    service = services_of(config)["a"]
    assert service["environment"] == {"G": "1", "SHARED": "mine", "P": "a$$b $${c}"}
    assert service["entrypoint"] == ["/bin/app", "$$PWD"]


def test_images_by_id_and_default(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"id": "db", "cmd": "db"}, {"id": "api", "cmd": "api"}])
    services = services_of(config, images={"db": "postgres:16"}, default_image="example/api:2")
    assert services["db"]["image"] == "postgres:16"
    assert "build" not in services["db"] and "entrypoint" not in services["db"]
    assert services["api"]["image"] == "example/api:2"
    assert services["api"]["build"] == {"context": ".", "dockerfile": "Containerfile"}


def test_one_service_builds_the_project_image_the_others_name_it(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [{"id": "db", "cmd": "db"}, {"id": "api", "cmd": "api"}, {"id": "web", "cmd": "web"}],
        export={"image": "registry/mind:2", "base": "debian:12"},
    )
    result = compose.export(config, build_context="../proj")
    assert result.project_image == "registry/mind:2"
    services = yaml.safe_load(result.files["compose.yaml"])["services"]
    assert [s["image"] for s in services.values()] == ["registry/mind:2"] * 3
    assert services["db"]["build"] == {"context": "../proj", "dockerfile": "Containerfile"}
    assert "build" not in services["api"] and "build" not in services["web"]
    assert services["api"]["working_dir"] == "/app"


def test_the_default_project_image_is_named_after_the_stack(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"id": "a", "cmd": "a"}], name="Mind.Protocol")
    assert compose.export(config).project_image == "mind.protocol:latest"


def test_an_image_for_an_unknown_service_is_a_usage_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"id": "db", "cmd": "db"}, {"id": "api", "cmd": "api"}])
    with pytest.raises(ExportError) as caught:
        compose.export(config, images={"dbx": "postgres:16"}, default_image="x")
    assert caught.value.exit_code == EXIT_USAGE
    assert "no service 'dbx'" in str(caught.value)


def test_service_export_keys_image_cmd_volumes_env(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [
            {
                "id": "db",
                "cmd": "db",
                "env": {"DATA": "here"},
                "export": {
                    "image": "falkordb/falkordb:v4",
                    "cmd": "redis-server --dir /data",
                    "volumes": ["db-data:/data", "seed:/seed:ro"],
                    "env": {"DATA": "/data"},
                },
            }
        ],
        export={"env": {"BIND_HOST": "0.0.0.0"}},
    )
    result = compose.export(config)
    document = yaml.safe_load(result.files["compose.yaml"])
    db = document["services"]["db"]
    assert db["image"] == "falkordb/falkordb:v4"
    assert db["entrypoint"] == ["redis-server", "--dir", "/data"]
    assert db["volumes"] == ["db-data:/data", "seed:/seed:ro"]
    assert db["environment"] == {"DATA": "/data", "BIND_HOST": "0.0.0.0"}
    assert "working_dir" not in db
    assert document["volumes"] == {"db-data": {}, "seed": {}}
    assert result.project_image is None


def test_a_host_path_that_would_leak_is_an_error_naming_the_service(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [
            {"id": "ok", "cmd": ["python3", "-m", "app"], "env": {"TOOL": "/usr/bin/x"}},
            {"id": "venv", "cmd": ["/home/me/.venv/bin/python", "-m", "app"]},
            {"id": "data", "cmd": "app", "env": {"DATA": f"{tmp_path}/data"}},
        ],
    )
    with pytest.raises(ExportError) as caught:
        compose.export(config, host_paths=["/home/me"])
    message = str(caught.value)
    assert caught.value.exit_code == 1
    assert 'service "venv": the command names the host path /home/me' in message
    assert f'service "data": env DATA names the host path {tmp_path}' in message
    assert '"ok"' not in message


def test_a_loopback_peer_address_is_warned(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, [{"id": "a", "cmd": "a", "env": {"DB_URL": "redis://127.0.0.1:6379"}}]
    )
    warnings = compose.export(config).warnings
    assert any(w.startswith('service "a": env DB_URL=') and "loopback" in w for w in warnings)


def test_production_keys_map_to_compose(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [
            {"id": "migrate", "cmd": "migrate", "kind": "task"},
            {
                "id": "worker",
                "cmd": "work",
                "requires": ["migrate"],
                "replicas": 3,
                "user": "app",
                "group": "app",
                "limits": {"memory_mb": 256},
                "profiles": ["jobs"],
            },
            {"id": "debug", "cmd": "dbg", "enabled": False},
        ],
    )
    services = services_of(config)
    assert services["migrate"]["restart"] == "no"
    assert services["worker"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"}
    }
    assert services["worker"]["deploy"] == {"replicas": 3}
    assert services["worker"]["user"] == "app:app"
    assert services["worker"]["mem_limit"] == "256m"
    assert services["worker"]["profiles"] == ["jobs"]
    assert services["debug"]["profiles"] == ["disabled"]


# ---------------------------------------------------------------------------- warnings

WARNINGS: list[tuple[str, dict[str, Any], str]] = [
    *unmapped("Compose", "watch", "log readiness", "notify readiness", "cwd"),
    (
        "liveness beside readiness",
        {"readiness": {"tcp": {"port": 1}}, "liveness": {"http_get": {"url": "http://h/"}}},
        'service "a": liveness (http_get) is not its own healthcheck in Compose',
    ),
    (
        "liveness alone",
        {"liveness": {"tcp": {"port": 1}}},
        'service "a": an unhealthy container is marked, not restarted',
    ),
    ("backoff", {}, 'service "a": restart backoff (1s x2 up to 60s) has no equivalent in Compose'),
    (
        "max_retries under always",
        {"restart": {"policy": "always", "max_retries": 3}},
        'service "a": max_retries 3 under policy always has no equivalent',
    ),
]


@pytest.mark.parametrize(("extra", "line"), warning_params(WARNINGS))
def test_what_cannot_be_mapped_is_warned_once(tmp_path: Path, extra: dict[str, Any], line: str) -> None:
    config = make_config(tmp_path, [{"id": "a", "cmd": ["/bin/app"], **extra}])
    warnings = compose.export(config, default_image="x").warnings
    assert warned_once(warnings, line), warnings


def test_exit_code_semantics_are_warned_for_the_stack(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"id": "a", "cmd": "a", "restart": {"policy": "never"}}])
    assert compose.export(config, default_image="x").warnings == [
        "exit code 99 (hot reload) has no equivalent in Compose; the engine treats it as a crash",
        "exit code 78 (self-quarantine) has no equivalent in Compose; the engine restarts it"
        " like a crash",
    ]
