"""Unit tests of ``mpsv3 export systemd``: every setting lands in its unit key, as configured.

Units are parsed back here (repeated keys kept in order, command lines unquoted the way
systemd reads them), so each test states the configured value and the value systemd will see.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from export_support import make_config, unmapped, warned_once, warning_params

from mpsv3.config.schema import Config, StackSpec
from mpsv3.export import systemd
from mpsv3.export.systemd import exec_line, restart_steps

_C_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value of that key, in order (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def split_command(line: str) -> list[str]:
    """A command line as systemd splits it: quotes, C escapes, then ``%%`` and ``$$``."""
    words: list[str] = []
    i = 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        word: list[str] = []
        while i < len(line) and not line[i].isspace():
            char = line[i]
            if char in "\"'":
                i += 1
                while line[i] != char:
                    if line[i] == "\\":
                        i += 1
                        word.append(_C_ESCAPES[line[i]])
                    else:
                        word.append(line[i])
                    i += 1
                i += 1
            elif char == "\\":
                word.append(line[i + 1])
                i += 2
            else:
                word.append(char)
                i += 1
        words.append("".join(word).replace("%%", "%").replace("$$", "$"))
    return words


def unit_of(tmp_path: Path, service: dict[str, Any], **top: Any) -> dict[str, dict[str, list[str]]]:
    deps = [{"id": dep, "cmd": ["/bin/true"]} for dep in service.get("requires", [])]
    config = make_config(tmp_path, [*deps, {"cmd": ["/bin/true"], **service}], **top)
    result = systemd.export(config)
    return parse_unit(result.files[f"demo-{service['id']}.service"])


# ------------------------------------------------------------------------ round trips

ROUND_TRIPS: list[tuple[str, dict[str, Any], dict[str, dict[str, list[str]]]]] = [
    (
        "requires",
        {"id": "api", "requires": ["db", "cache"]},
        {
            "Unit": {
                "Requires": ["demo-db.service", "demo-cache.service"],
                "After": ["demo-db.service", "demo-cache.service"],
                "PartOf": ["demo.target"],
            }
        },
    ),
    (
        "policy always",
        {"id": "a", "restart": {"policy": "always"}},
        {"Service": {"Restart": ["always"]}},
    ),
    ("policy on-failure", {"id": "a"}, {"Service": {"Restart": ["on-failure"]}}),
    ("policy never", {"id": "a", "restart": {"policy": "never"}}, {"Service": {"Restart": ["no"]}}),
    (
        "default backoff",
        {"id": "a"},
        {
            "Service": {
                "RestartSec": ["1s"],
                "RestartSteps": ["6"],
                "RestartMaxDelaySec": ["60s"],
            },
            "Unit": {"StartLimitBurst": ["10"], "StartLimitIntervalSec": ["903s"]},
        },
    ),
    (
        "backoff factor 3",
        {"id": "a", "restart": {"backoff": {"base_ms": 500, "factor": 3, "max_ms": 13500}}},
        {
            "Service": {
                "RestartSec": ["500ms"],
                "RestartSteps": ["3"],
                "RestartMaxDelaySec": ["13500ms"],
            }
        },
    ),
    (
        "fixed delay",
        {"id": "a", "restart": {"backoff": {"base_ms": 2000, "factor": 1}}},
        {"Service": {"RestartSec": ["2s"]}},
    ),
    (
        "max_retries",
        {
            "id": "a",
            "restart": {
                "max_retries": 4,
                "reset_after_s": 10,
                "backoff": {"base_ms": 1000, "factor": 2, "max_ms": 4000},
            },
        },
        # delays 1+2+4+4 = 11 s, plus 4 runs of up to 10 s
        {"Unit": {"StartLimitBurst": ["4"], "StartLimitIntervalSec": ["51s"]}},
    ),
    (
        "stop",
        {"id": "a", "stop": {"signal": "INT", "grace_s": 2.5}},
        {
            "Service": {
                "KillMode": ["control-group"],
                "KillSignal": ["SIGINT"],
                "TimeoutStopSec": ["2500ms"],
            }
        },
    ),
    (
        "stop without grace",
        {"id": "a", "stop": {"grace_s": 0}},
        {"Service": {"TimeoutStopSec": ["1ms"]}},
    ),
    (
        "exit codes",
        {"id": "a"},
        {"Service": {"RestartPreventExitStatus": ["78"], "RestartForceExitStatus": ["99"]}},
    ),
    (
        "notify readiness",
        {"id": "a", "readiness": {"notify": True, "timeout_s": 45}},
        {"Service": {"Type": ["notify"], "NotifyAccess": ["all"], "TimeoutStartSec": ["45s"]}},
    ),
    ("no readiness", {"id": "a"}, {"Service": {"Type": ["exec"]}}),
    (
        "polled readiness",
        {"id": "a", "readiness": {"tcp": {"port": 5432}, "timeout_s": 12.5}},
        {"Service": {"Type": ["exec"], "TimeoutStartSec": ["12500ms"]}},
    ),
    (
        "log readiness",
        {"id": "a", "readiness": {"log": {"pattern": "up"}}},
        {"Service": {"Type": ["exec"]}},
    ),
    (
        "cwd",
        {"id": "a", "cwd": "/srv/my app/%h"},
        {"Service": {"WorkingDirectory": ["/srv/my app/%%h"]}},
    ),
    ("install", {"id": "a"}, {"Install": {"WantedBy": ["demo.target"]}}),
]


@pytest.mark.parametrize(
    ("service", "expected"),
    [pytest.param(service, expected, id=name) for name, service, expected in ROUND_TRIPS],
)
def test_settings_land_in_their_unit_keys(
    tmp_path: Path, service: dict[str, Any], expected: dict[str, dict[str, list[str]]]
) -> None:
    unit = unit_of(tmp_path, service)
    for section, keys in expected.items():
        for key, values in keys.items():
            assert unit[section].get(key) == values, (section, key)


@pytest.mark.parametrize(
    ("backoff", "absent"),
    [
        ({"base_ms": 2000, "factor": 1}, ["RestartSteps", "RestartMaxDelaySec"]),
        ({"base_ms": 0}, ["RestartSteps", "RestartMaxDelaySec"]),
        ({"base_ms": 5000, "max_ms": 5000}, ["RestartSteps", "RestartMaxDelaySec"]),
    ],
)
def test_a_backoff_that_never_grows_has_no_steps(
    tmp_path: Path, backoff: dict[str, Any], absent: list[str]
) -> None:
    unit = unit_of(tmp_path, {"id": "a", "restart": {"backoff": backoff}})
    for key in absent:
        assert key not in unit["Service"]


@pytest.mark.parametrize(
    ("base_ms", "factor", "max_ms", "steps"),
    [
        (1000, 2, 60000, 6),  # log2(60) = 5.9
        (1000, 2, 1024000, 10),
        (500, 3, 13500, 3),
        (100, 1.5, 150, 1),
        (1000, 2, 1000, 0),
        (1000, 1, 60000, 0),
        (0, 2, 60000, 0),
    ],
)
def test_restart_steps_follow_the_factor(
    base_ms: int, factor: float, max_ms: int, steps: int
) -> None:
    assert restart_steps(base_ms, factor, max_ms) == steps


def test_environment_has_global_then_service_values_escaped(tmp_path: Path) -> None:
    unit = unit_of(
        tmp_path,
        {"id": "a", "env": {"B": 'say "hi"\\now', "SHARED": "mine", "P": "100% $HOME"}},
        env={"A": "1", "SHARED": "global"},
    )
    assigned = [split_command(value)[0] for value in unit["Service"]["Environment"]]
    # Environment= does not expand $, so a $ stays single in the file.
    assert unit["Service"]["Environment"][-1] == '"P=100%% $HOME"'
    assert assigned == [
        "A=1",
        "SHARED=mine",
        'B=say "hi"\\now',
        "P=100% $HOME",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["/usr/bin/prog", "--flag", "value"],
        ["/usr/bin/prog", "two words", "tab\there"],
        ["/usr/bin/prog", 'quote "double"', "quote 'single'", "back\\slash"],
        ["/usr/bin/prog", "100%", "$HOME", "${X}", "$$"],
        ["/usr/bin/prog", "", ";", "line\nbreak"],
        ["/usr/bin/prog", "ünïcode", "a=b"],
    ],
)
def test_command_lines_split_back_to_the_same_argv(argv: list[str]) -> None:
    assert split_command(exec_line(argv)) == argv


def test_exec_start_runs_the_argv(tmp_path: Path) -> None:
    unit = unit_of(tmp_path, {"id": "a", "cmd": ["/usr/bin/env", "X=$Y", "50%"]})
    assert split_command(unit["Service"]["ExecStart"][0]) == ["/usr/bin/env", "X=$Y", "50%"]


def test_shell_commands_run_under_sh(tmp_path: Path) -> None:
    unit = unit_of(tmp_path, {"id": "a", "cmd": "echo $HOME && sleep 5", "shell": True})
    assert split_command(unit["Service"]["ExecStart"][0]) == [
        "/bin/sh",
        "-c",
        "echo $HOME && sleep 5",
    ]


@pytest.mark.parametrize(
    ("readiness", "pieces"),
    [
        (
            {"http_get": {"url": "http://127.0.0.1:8000/api/ping?x=1", "expect_status": 204}},
            ["curl", "'http://127.0.0.1:8000/api/ping?x=1'", "= 204", "%{http_code}"],
        ),
        (
            {"tcp": {"host": "10.0.0.5", "port": 5432}},
            ["nc -z", "10.0.0.5 5432", "/dev/tcp/10.0.0.5/5432"],
        ),
        ({"redis_ping": {"port": 6380}}, ["redis-cli -h 127.0.0.1 -p 6380 ping", "PONG"]),
        ({"exec": {"cmd": ["pg_isready", "-q"]}}, ["timeout 2 pg_isready -q"]),
    ],
)
def test_polled_readiness_becomes_an_exec_start_post_loop(
    tmp_path: Path, readiness: dict[str, Any], pieces: list[str]
) -> None:
    unit = unit_of(tmp_path, {"id": "a", "readiness": {**readiness, "period_ms": 250}})
    argv = split_command(unit["Service"]["ExecStartPost"][0])
    assert argv[:2] == ["/bin/sh", "-c"]
    assert re.fullmatch(r"until .+; do sleep 0\.25; done", argv[2])
    for piece in pieces:
        assert piece in argv[2]


def test_notify_and_unpolled_gates_have_no_exec_start_post(tmp_path: Path) -> None:
    for readiness in ({"notify": True}, {"log": {"pattern": "ready"}}):
        assert (
            "ExecStartPost" not in unit_of(tmp_path, {"id": "a", "readiness": readiness})["Service"]
        )


def test_program_names_are_resolved_by_the_which_seam(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        [
            {"id": "found", "cmd": ["python3", "-V"]},
            {"id": "missing", "cmd": ["nosuchprog", "-V"]},
            {"id": "relative", "cmd": ["./bin/serve", "-V"], "cwd": "/srv/app"},
            {"id": "up", "cmd": ["../tools/run"], "cwd": "/srv/app"},
        ],
    )
    table = {"python3": "/opt/py/bin/python3"}
    result = systemd.export(config, which=table.get)
    start = {
        sid: split_command(
            parse_unit(result.files[f"demo-{sid}.service"])["Service"]["ExecStart"][0]
        )
        for sid in ("found", "missing", "relative", "up")
    }
    assert start["found"] == ["/opt/py/bin/python3", "-V"]
    assert start["missing"] == ["nosuchprog", "-V"]
    assert start["relative"] == ["/srv/app/bin/serve", "-V"]
    assert start["up"] == ["/srv/tools/run"]
    assert any('"missing"' in w and "nosuchprog" in w for w in result.warnings)


def test_the_target_wants_every_service(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, [{"id": "a", "cmd": ["/bin/true"]}, {"id": "b", "cmd": ["/bin/true"]}]
    )
    result = systemd.export(config)
    assert sorted(result.files) == ["demo-a.service", "demo-b.service", "demo.target"]
    target = parse_unit(result.files["demo.target"])
    assert target["Unit"]["Wants"] == ["demo-a.service demo-b.service"]
    assert target["Install"]["WantedBy"] == ["multi-user.target"]


def test_the_stack_name_defaults_to_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my stack"
    folder.mkdir()
    stack = StackSpec.model_validate({"version": 1, "services": [{"id": "a", "cmd": "/bin/true"}]})
    result = systemd.export(Config(path=folder / "services.yaml", stack=stack))
    assert sorted(result.files) == ["my_stack-a.service", "my_stack.target"]


# ---------------------------------------------------------------------------- warnings

WARNINGS: list[tuple[str, dict[str, Any], str]] = [
    *unmapped("systemd", "watch", "log readiness"),
    (
        "liveness",
        {"liveness": {"http_get": {"url": "http://127.0.0.1:1/health"}}},
        'service "a": liveness (http_get) has no equivalent in systemd',
    ),
    (
        "jitter",
        {"restart": {"backoff": {"jitter": 0.25}}},
        'service "a": backoff jitter 0.25 has no equivalent',
    ),
    (
        "ports",
        {"ports": [8000, 8001]},
        'service "a": the check of ports 8000, 8001 before start has no equivalent in systemd',
    ),
    (
        "SIGBREAK",
        {"stop": {"signal": "SIGBREAK"}},
        'service "a": stop signal SIGBREAK has no equivalent',
    ),
]


@pytest.mark.parametrize(("extra", "line"), warning_params(WARNINGS))
def test_what_cannot_be_mapped_is_warned_once(tmp_path: Path, extra: dict[str, Any], line: str) -> None:
    warnings = systemd.export(make_config(tmp_path, [{"id": "a", "cmd": ["/bin/true"], **extra}])).warnings
    assert warned_once(warnings, line), warnings


def test_a_plain_service_warns_only_about_exit_99(tmp_path: Path) -> None:
    result = systemd.export(make_config(tmp_path, [{"id": "a", "cmd": ["/bin/true"]}]))
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("exit code 99 (hot reload) has no equivalent in systemd")


def test_sigbreak_falls_back_to_sigterm(tmp_path: Path) -> None:
    unit = unit_of(tmp_path, {"id": "a", "stop": {"signal": "SIGBREAK"}})
    assert unit["Service"]["KillSignal"] == ["SIGTERM"]


def test_alert_cmd_is_warned(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"id": "a", "cmd": ["/bin/true"]}], alert_cmd="notify-send x")
    assert any(w.startswith("alert_cmd has no equivalent") for w in systemd.export(config).warnings)
