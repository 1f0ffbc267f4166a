"""Unit tests of ``mpsv3 export kubernetes``: each setting lands in its object field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from export_support import make_config, unmapped, warned_once, warning_params

from mpsv3.config.schema import Config
from mpsv3.errors import EXIT_FAILURE
from mpsv3.export import kubernetes
from mpsv3.export.kubernetes import object_name
from mpsv3.export.model import ExportError


def objects_of(config: Config, **options: Any) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """File name -> (Deployment, Service)."""
    options.setdefault("default_image", "example/app:1")
    result = kubernetes.export(config, **options)
    objects = {}
    for name, text in result.files.items():
        deployment, service = yaml.safe_load_all(text)
        assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
        objects[name] = (deployment, service)
    return objects


def kubernetes_expand(text: str, variables: dict[str, str] | None = None) -> str:
    """What the kubelet makes of a command word or env value (its ``$(VAR)`` expansion)."""
    variables = variables or {}
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(" and ")" in text[i + 2 :]:
            end = text.index(")", i + 2)
            name = text[i + 2 : end]
            out.append(variables.get(name, text[i : end + 1]))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize(
    "word",
    ["plain", "$(HOME)", "$$", "$$(x)", "$", "a$", "$5", "$((1+2))", "$(a)$(b)", "x$$$(y)z"],
)
def test_dollar_escaping_survives_kubernetes_expansion(tmp_path: Path, word: str) -> None:
    config = make_config(tmp_path, [{"id": "a", "cmd": ["/bin/app", word], "env": {"V": word}}])
    deployment, _ = objects_of(config)["a.yaml"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    everything = {"HOME": "/root", "x": "X", "a": "A", "b": "B", "y": "Y"}
    assert kubernetes_expand(container["command"][1], everything) == word
    assert kubernetes_expand(container["env"][0]["value"], everything) == word


def container_of(tmp_path: Path, service: dict[str, Any]) -> dict[str, Any]:
    deps = [{"id": dep, "cmd": "dep"} for dep in service.get("requires", [])]
    config = make_config(tmp_path, [*deps, {"id": "a", "cmd": ["/bin/app"], **service}])
    deployment, _ = objects_of(config)["a.yaml"]
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def pod_of(tmp_path: Path, service: dict[str, Any]) -> dict[str, Any]:
    deps = [{"id": dep, "cmd": "dep"} for dep in service.get("requires", [])]
    config = make_config(tmp_path, [*deps, {"id": "a", "cmd": ["/bin/app"], **service}])
    pod: dict[str, Any] = objects_of(config)["a.yaml"][0]["spec"]["template"]["spec"]
    return pod


# ------------------------------------------------------------------------------ probes

HANDLERS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "http loopback",
        {"http_get": {"url": "http://127.0.0.1:8000/api/ping"}},
        {"httpGet": {"path": "/api/ping", "port": 8000, "scheme": "HTTP"}},
    ),
    (
        "https with query and host",
        {"http_get": {"url": "https://api.internal/health?deep=1", "expect_status": 301}},
        {
            "httpGet": {
                "path": "/health?deep=1",
                "port": 443,
                "scheme": "HTTPS",
                "host": "api.internal",
            }
        },
    ),
    (
        "http without path",
        {"http_get": {"url": "http://localhost"}},
        {"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}},
    ),
    (
        "http status outside 2xx/3xx",
        {"http_get": {"url": "http://127.0.0.1:8000/auth", "expect_status": 401}},
        {
            "exec": {
                "command": [
                    "sh",
                    "-c",
                    "test \"$(curl -s -o /dev/null -w '%{http_code}' --max-time 2"
                    ' http://127.0.0.1:8000/auth)" = 401',
                ]
            }
        },
    ),
    ("tcp loopback", {"tcp": {"port": 5432}}, {"tcpSocket": {"port": 5432}}),
    (
        "tcp remote",
        {"tcp": {"host": "db.internal", "port": 5432}},
        {"tcpSocket": {"port": 5432, "host": "db.internal"}},
    ),
    ("exec", {"exec": {"cmd": "pg_isready -q"}}, {"exec": {"command": ["pg_isready", "-q"]}}),
    (
        "redis",
        {"redis_ping": {"port": 6380}},
        {
            "exec": {
                "command": [
                    "sh",
                    "-c",
                    "timeout 2 redis-cli -h 127.0.0.1 -p 6380 ping | grep -qx PONG",
                ]
            }
        },
    ),
]


@pytest.mark.parametrize(
    ("check", "handler"), [pytest.param(c, h, id=name) for name, c, h in HANDLERS]
)
def test_probe_kinds_map_to_handlers(
    tmp_path: Path, check: dict[str, Any], handler: dict[str, Any]
) -> None:
    container = container_of(
        tmp_path,
        {
            "readiness": {**check, "timeout_s": 30, "period_ms": 2000},
            "liveness": {**check, "timeout_s": 2},
        },
    )
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        kind = next(iter(handler))
        assert {kind: container[probe][kind]} == handler, probe


@pytest.mark.parametrize(
    ("readiness", "ready", "startup"),
    [
        (
            {"period_ms": 2000, "timeout_s": 30, "attempt_timeout_s": 3},
            {"periodSeconds": 10, "timeoutSeconds": 3},  # not the poll period: 10 s (no liveness)
            {"periodSeconds": 2, "timeoutSeconds": 3, "failureThreshold": 15},
        ),
        (
            {"period_ms": 5000, "timeout_s": 12},
            {"periodSeconds": 10, "timeoutSeconds": 2},
            {"periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
        ),
        (
            {"period_ms": 100, "timeout_s": 10},
            {"periodSeconds": 10, "timeoutSeconds": 2},
            {"periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 10},
        ),
    ],
)
def test_readiness_timing_becomes_readiness_and_startup_probes(
    tmp_path: Path, readiness: dict[str, Any], ready: dict[str, Any], startup: dict[str, Any]
) -> None:
    container = container_of(tmp_path, {"readiness": {"tcp": {"port": 80}, **readiness}})
    assert {k: container["readinessProbe"][k] for k in ready} == ready
    assert "failureThreshold" not in container["readinessProbe"]
    assert {k: container["startupProbe"][k] for k in startup} == startup


def test_the_readiness_probe_runs_every_liveness_interval(tmp_path: Path) -> None:
    container = container_of(
        tmp_path,
        {
            "readiness": {"tcp": {"port": 80}, "period_ms": 100},
            "liveness": {"tcp": {"port": 80}, "interval_s": 20},
        },
    )
    assert container["readinessProbe"]["periodSeconds"] == 20
    assert container["startupProbe"]["periodSeconds"] == 1


def test_liveness_timing(tmp_path: Path) -> None:
    container = container_of(
        tmp_path,
        {
            "liveness": {
                "tcp": {"port": 80},
                "interval_s": 20,
                "timeout_s": 4,
                "failure_threshold": 6,
            }
        },
    )
    assert container["livenessProbe"] == {
        "tcpSocket": {"port": 80},
        "periodSeconds": 20,
        "timeoutSeconds": 4,
        "failureThreshold": 6,
    }
    assert "readinessProbe" not in container and "startupProbe" not in container


@pytest.mark.parametrize("readiness", [{"notify": True}, {"log": {"pattern": "up"}}])
def test_unmappable_gates_leave_no_probe(tmp_path: Path, readiness: dict[str, Any]) -> None:
    container = container_of(tmp_path, {"readiness": readiness})
    assert "readinessProbe" not in container and "startupProbe" not in container


# ------------------------------------------------------------------ container and pod


def test_container_command_env_and_ports(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [
            {
                "id": "a",
                "cmd": ["/bin/app", "$(HOME)", "$$", "cost $5"],
                "env": {"SHARED": "mine", "REF": "$(OTHER)"},
                "ports": [8000, 8001],
            }
        ],
        env={"G": "1", "SHARED": "global"},
    )
    deployment, service = objects_of(config, default_image="example/a:3")["a.yaml"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example/a:3"
    # Kubernetes reads $$ as $ and expands $(VAR): a $ before "(" or "$" is doubled.
    assert container["command"] == ["/bin/app", "$$(HOME)", "$$$", "cost $5"]
    assert [kubernetes_expand(word) for word in container["command"]] == [
        "/bin/app",
        "$(HOME)",
        "$$",
        "cost $5",
    ]
    assert container["env"] == [
        {"name": "G", "value": "1"},
        {"name": "SHARED", "value": "mine"},
        {"name": "REF", "value": "$$(OTHER)"},
    ]
    assert container["ports"] == [{"containerPort": 8000}, {"containerPort": 8001}]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [
        {"name": "port-8000", "port": 8000, "targetPort": 8000},
        {"name": "port-8001", "port": 8001, "targetPort": 8001},
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == service["spec"]["selector"]


def test_one_init_container_waits_for_each_dependency(tmp_path: Path) -> None:
    pod = pod_of(tmp_path, {"requires": ["falkor_db", "ws_api"]})
    waits = pod["initContainers"]
    assert [w["name"] for w in waits] == ["wait-falkor-db", "wait-ws-api"]
    assert {w["image"] for w in waits} == {"example/app:1"}  # the project image by default
    for wait, name in zip(waits, ["falkor-db", "ws-api"], strict=True):
        assert wait["command"][:2] == ["sh", "-c"]
        script = wait["command"][2]
        assert f'host="{name}${{ns:+.$ns.svc.cluster.local}}"' in script
        assert 'until getent hosts "$host"' in script and 'nslookup "$host"' in script
        assert "$(" not in script and "$$" not in script  # the same in Kubernetes and podman


def test_the_wait_image_is_busybox_when_no_service_runs_the_project_image(
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path, [{"id": "db", "cmd": "db"}, {"id": "a", "cmd": "a", "requires": ["db"]}]
    )
    result = kubernetes.export(config, images={"db": "db:1", "a": "a:1"})
    deployment = next(yaml.safe_load_all(result.files["a.yaml"]))
    assert deployment["spec"]["template"]["spec"]["initContainers"][0]["image"] == "busybox:1.36"
    assert result.project_image is None


def test_volumes_become_claims_and_mounts(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [
            {"id": "db", "cmd": "db", "export": {"volumes": ["db_data:/data"]}},
            {"id": "reader", "cmd": "r", "export": {"volumes": ["db_data:/data:ro"]}},
        ],
    )
    result = kubernetes.export(config, default_image="x")
    claim, deployment, _ = yaml.safe_load_all(result.files["db.yaml"])
    assert claim["kind"] == "PersistentVolumeClaim" and claim["metadata"]["name"] == "db-data"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "db-data", "persistentVolumeClaim": {"claimName": "db-data"}}
    ]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "db-data", "mountPath": "/data"}]
    kinds = [d["kind"] for d in yaml.safe_load_all(result.files["reader.yaml"])]
    assert kinds == ["Deployment", "Service"]  # one claim, in the first file that mounts it
    assert any("volume db_data is shared" in w for w in result.warnings)


def test_a_task_is_a_job_and_production_keys_map(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [
            {"id": "migrate", "cmd": "m", "kind": "task", "restart": {"max_retries": 4}},
            {
                "id": "web",
                "cmd": "w",
                "requires": ["migrate"],
                "replicas": 3,
                "user": "1000",
                "group": "staff",
                "limits": {"memory_mb": 512},
            },
            {"id": "off", "cmd": "o", "enabled": False},
        ],
    )
    result = kubernetes.export(config, default_image="x")
    (job,) = yaml.safe_load_all(result.files["migrate.yaml"])
    assert job["kind"] == "Job" and job["spec"]["backoffLimit"] == 3
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    web = next(yaml.safe_load_all(result.files["web.yaml"]))
    pod = web["spec"]["template"]["spec"]
    assert web["spec"]["replicas"] == 3
    assert "initContainers" not in pod
    assert pod["securityContext"] == {"runAsUser": 1000}
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "512Mi"}}
    assert next(yaml.safe_load_all(result.files["off.yaml"]))["spec"]["replicas"] == 0
    assert 'service "web": does not wait for the task migrate (a Job) in Kubernetes' in (
        result.warnings
    )
    assert any(w.startswith("service \"web\": group 'staff'") for w in result.warnings)


def test_the_wait_image_is_an_option(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, [{"id": "db", "cmd": "db"}, {"id": "a", "cmd": "a", "requires": ["db"]}]
    )
    deployment, _ = objects_of(config, wait_image="registry.local/busybox:1")["a.yaml"]
    assert (
        deployment["spec"]["template"]["spec"]["initContainers"][0]["image"]
        == "registry.local/busybox:1"
    )


@pytest.mark.parametrize(("grace", "seconds"), [(10, 10), (0, 0), (2.5, 3)])
def test_stop_grace_is_the_termination_grace_period(
    tmp_path: Path, grace: float, seconds: int
) -> None:
    pod = pod_of(tmp_path, {"stop": {"grace_s": grace}})
    assert pod["terminationGracePeriodSeconds"] == seconds


def test_pod_and_deployment_shape(tmp_path: Path) -> None:
    deployment, _ = objects_of(make_config(tmp_path, [{"id": "a", "cmd": "a"}]))["a.yaml"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False
    assert deployment["metadata"]["labels"] == {
        "app.kubernetes.io/name": "a",
        "app.kubernetes.io/part-of": "demo",
    }


@pytest.mark.parametrize(
    ("service_id", "name"),
    [
        ("ws_api", "ws-api"),
        ("falkordb", "falkordb"),
        ("9lives", "svc-9lives"),
        ("_x_", "x"),
        ("a-b", "a-b"),
    ],
)
def test_object_names_are_dns_labels(service_id: str, name: str) -> None:
    assert object_name(service_id) == name


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["ws_api", "ws-api"], "both become the Kubernetes name 'ws-api'"),
        (["a" * 64], "longer than 63 characters"),
    ],
)
def test_unusable_names_are_refused(tmp_path: Path, ids: list[str], message: str) -> None:
    config = make_config(tmp_path, [{"id": i, "cmd": "x"} for i in ids])
    with pytest.raises(ExportError) as caught:
        kubernetes.export(config, default_image="x")
    assert caught.value.exit_code == EXIT_FAILURE
    assert message in str(caught.value)


def test_yaml_has_no_anchors(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"id": "a", "cmd": "a", "readiness": {"tcp": {"port": 1}}}])
    text = kubernetes.export(config, default_image="x").files["a.yaml"]
    assert "&id" not in text and "*id" not in text


# ---------------------------------------------------------------------------- warnings

WARNINGS: list[tuple[str, dict[str, Any], str]] = [
    *unmapped("Kubernetes", "watch", "log readiness", "notify readiness", "cwd"),
    (
        "policy on-failure",
        {},
        'service "a": restart policy on-failure has no equivalent in Kubernetes',
    ),
    (
        "policy never",
        {"restart": {"policy": "never"}},
        'service "a": restart policy never has no equivalent',
    ),
    (
        "backoff",
        {},
        'service "a": restart backoff (base 1000ms x2 up to 60000ms, quarantine after 10)',
    ),
    (
        "stop signal",
        {"stop": {"signal": "SIGINT"}},
        'service "a": stop signal SIGINT has no equivalent',
    ),
    (
        "rounded period",
        {"readiness": {"tcp": {"port": 1}, "period_ms": 250}},
        'service "a": readiness period 0.25s becomes 1s',
    ),
    (
        "rounded liveness timeout",
        {"liveness": {"tcp": {"port": 1}, "timeout_s": 1.5}},
        'service "a": liveness timeout 1.5s becomes 2s',
    ),
]


@pytest.mark.parametrize(("extra", "line"), warning_params(WARNINGS))
def test_what_cannot_be_mapped_is_warned_once(tmp_path: Path, extra: dict[str, Any], line: str) -> None:
    config = make_config(tmp_path, [{"id": "a", "cmd": ["/bin/app"], **extra}])
    warnings = kubernetes.export(config, default_image="x").warnings
    assert warned_once(warnings, line), warnings


def test_an_always_service_with_whole_seconds_warns_only_about_backoff_and_exit_codes(
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path,
        [
            {
                "id": "a",
                "cmd": "a",
                "restart": {"policy": "always"},
                "readiness": {"tcp": {"port": 1}, "period_ms": 1000},
            }
        ],
    )
    warnings = kubernetes.export(config, default_image="x").warnings
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith('service "a": restart backoff')
    assert warnings[1].startswith("exit code 99 (hot reload) has no equivalent in Kubernetes")
    assert warnings[2].startswith("exit code 78 (self-quarantine) has no equivalent in Kubernetes")
