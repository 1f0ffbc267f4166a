"""Unit tests of ``mpsv3 export compose``: each setting lands in its Compose key, as configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mpsv3.config.schema import Config, StackSpec
from mpsv3.errors import EXIT_USAGE
from mpsv3.export import compose
from mpsv3.export.model import ExportError


def make_config(tmp_path: Path, services: list[dict[str, Any]], **top: Any) -> Config:
    data = {"version": 1, "name": "demo", **top, "services": services}
    return Config(path=tmp_path / "services.yaml", stack=StackSpec.model_validate(data))


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
                "interval": "250ms",
                "timeout": "3s",
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
                "interval": "1s",
                "timeout": "2s",
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
                "interval": "100ms",
                "timeout": "2s",
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
    assert services["api"]["image"] == "example/api:2"


@pytest.mark.parametrize(
    ("images", "default", "message"),
    [
        ({"db": "postgres:16"}, None, "--image ID=IMAGE for api"),
        ({}, None, "for db, api"),
        ({"dbx": "postgres:16"}, "x", "no service 'dbx'"),
    ],
)
def test_a_missing_or_unknown_image_is_a_usage_error(
    tmp_path: Path, images: dict[str, str], default: str | None, message: str
) -> None:
    config = make_config(tmp_path, [{"id": "db", "cmd": "db"}, {"id": "api", "cmd": "api"}])
    with pytest.raises(ExportError) as caught:
        compose.export(config, images=images, default_image=default)
    assert caught.value.exit_code == EXIT_USAGE
    assert message in str(caught.value)


# ---------------------------------------------------------------------------- warnings

WARNINGS: list[tuple[str, dict[str, Any], str]] = [
    (
        "watch",
        {"watch": {"paths": ["*.py"]}},
        'service "a": watch has no equivalent in Compose; dropped',
    ),
    (
        "log readiness",
        {"readiness": {"log": {"pattern": "up"}}},
        'service "a": log readiness has no equivalent in Compose',
    ),
    (
        "notify readiness",
        {"readiness": {"notify": True}},
        'service "a": notify readiness has no equivalent',
    ),
    (
        "liveness beside readiness",
        {"readiness": {"tcp": {"port": 1}}, "liveness": {"tcp": {"port": 1}}},
        'service "a": liveness (tcp) has no equivalent in Compose',
    ),
    (
        "liveness alone",
        {"liveness": {"tcp": {"port": 1}}},
        'service "a": liveness becomes the healthcheck, but Docker does not restart',
    ),
    ("backoff", {}, 'service "a": restart backoff (1s x2 up to 60s) has no equivalent in Compose'),
    ("cwd", {"cwd": "/srv/app"}, 'service "a": cwd /srv/app has no equivalent in Compose'),
    (
        "max_retries under always",
        {"restart": {"policy": "always", "max_retries": 3}},
        'service "a": max_retries 3 under policy always has no equivalent',
    ),
]


@pytest.mark.parametrize(
    ("extra", "line"), [pytest.param(extra, line, id=name) for name, extra, line in WARNINGS]
)
def test_what_cannot_be_mapped_is_warned_once(
    tmp_path: Path, extra: dict[str, Any], line: str
) -> None:
    config = make_config(tmp_path, [{"id": "a", "cmd": ["/bin/app"], **extra}])
    result = compose.export(config, default_image="x")
    assert sum(w.startswith(line) for w in result.warnings) == 1, result.warnings


def test_exit_code_semantics_are_warned_for_the_stack(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"id": "a", "cmd": "a", "restart": {"policy": "never"}}])
    assert compose.export(config, default_image="x").warnings == [
        f'service "a": cwd {tmp_path} has no equivalent in Compose; the image\'s working'
        " directory applies",
        "exit code 99 (hot reload) has no equivalent in Compose; Docker treats it as a crash",
        "exit code 78 (self-quarantine) has no equivalent in Compose; Docker restarts it like a crash",
    ]
