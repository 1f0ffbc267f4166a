"""The production-stack keys at load time: env files, replicas, tasks, accounts, warnings."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from mpsv3.config.explain import explain
from mpsv3.config.loader import load_config, load_config_text
from mpsv3.config.schema import Config
from mpsv3.errors import ConfigInvalid


def _write(tmp_path: Path, text: str, **files: str) -> Path:
    for name, content in files.items():
        (tmp_path / name.replace("__", ".")).write_text(textwrap.dedent(content))
    path = tmp_path / "services.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _errors(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path, environ={}, **kwargs)  # type: ignore[arg-type]
    return [str(error) for error in caught.value.errors]


# ---------------------------------------------------------------------------------- env_file


ENV_STACK = """\
    version: 1
    env: {GLOBAL: g, SHARED: from-global}
    services:
      - id: app
        cmd: run
        env_file: [.env, ?.env.local, ?.env.absent]
        env: {OWN: o, SHARED: from-env}
    """


def test_env_files_merge_between_global_env_and_the_services_env(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        ENV_STACK,
        __env="""\
            # comment
            export SECRET="s3 cr3t"
            SHARED=from-file
            FILE_ONLY='a $HOME ${NOT_INTERPOLATED}'
            GLOBAL=from-file
            BARE
            """,
        __env__local="FILE_ONLY=local wins\nMULTI=\"two\nlines\"\n",
    )
    app = load_config(path, environ={}).stack.service("app")
    assert app.env == {
        "GLOBAL": "from-file",  # a file wins over the global env:
        "SHARED": "from-env",  # the service's env: wins over every file
        "SECRET": "s3 cr3t",
        "FILE_ONLY": "local wins",  # a later file wins
        "MULTI": "two\nlines",
        "OWN": "o",
    }
    assert app.env_file == [
        str(tmp_path / ".env"),
        f"?{tmp_path / '.env.local'}",
        f"?{tmp_path / '.env.absent'}",
    ]


def test_env_file_values_are_literal(tmp_path: Path) -> None:
    path = _write(tmp_path, ENV_STACK, __env="FILE_ONLY=${GLOBAL}$$x\n")
    assert load_config(path, environ={}).stack.service("app").env["FILE_ONLY"] == "${GLOBAL}$$x"


def test_env_file_may_be_one_string(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "version: 1\nservices: [{id: a, cmd: run, env_file: .env}]\n",
        __env="A=1\n",
    )
    assert load_config(path, environ={}).services[0].env == {"A": "1"}


def test_missing_env_file_is_an_error_at_its_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, ENV_STACK)
    assert _errors(path) == [
        f"{path}:6: service \"app\": env_file[0]: env file {tmp_path / '.env'} does not exist "
        f"(write ?{tmp_path / '.env'} if it may be missing)"
    ]


def test_bad_env_file_lines_are_errors_at_their_own_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, ENV_STACK, __env="OK=1\n'B=C'=2\nD=\"unterminated\nE=\"x\\0y\"\n")
    errors = _errors(path)
    shown = tmp_path / ".env"
    assert errors[0] == (
        f'{shown}:2: "B=C": a variable name cannot contain "=" (the environment is NAME=VALUE)'
    )
    assert errors[1].startswith(f"{shown}:3: cannot parse this line: expected KEY=VALUE")


def test_nul_from_an_env_file_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, ENV_STACK, __env='A="x\\0y"\n'.replace("\\0", "\\x00"))
    (tmp_path / ".env").write_bytes(b'OK=1\nA="x\x00y"\n')
    errors = _errors(path)
    assert errors == [
        f'{tmp_path / ".env"}:2: "A": contains a NUL character (\\0): no environment variable '
        "can hold one"
    ]


def test_env_file_that_is_not_utf8_or_too_large(tmp_path: Path) -> None:
    path = _write(tmp_path, ENV_STACK)
    (tmp_path / ".env").write_bytes(b"A=1\nB=\xff\n")
    assert _errors(path) == [f"{tmp_path / '.env'}:2: not UTF-8 text (byte 0xff)"]
    (tmp_path / ".env").write_bytes(b"A=" + b"x" * (256 << 10) + b"\n")
    assert _errors(path) == [
        f'{path}:6: service "app": env_file[0]: env file {tmp_path / ".env"} is larger than '
        "256 KiB: refused"
    ]


def test_a_file_of_bad_lines_is_reported_briefly(tmp_path: Path) -> None:
    path = _write(tmp_path, ENV_STACK, __env="= = =\n" * 5000)
    errors = _errors(path)
    assert len(errors) == 101
    assert errors[-1] == f"{tmp_path / '.env'}:101: and 4900 more bad lines"


def test_explain_names_env_files_and_keeps_their_values_out(tmp_path: Path) -> None:
    path = _write(tmp_path, ENV_STACK, __env="SECRET=hunter2\nSHARED=file\n")
    config = load_config(path, environ={})
    text = explain(config)
    assert "hunter2" not in text
    app = yaml.safe_load(text)["services"][0]
    assert app["env"] == {"GLOBAL": "g", "SHARED": "from-env", "OWN": "o"}
    assert app["env_file"][0] == str(tmp_path / ".env")
    again = load_config_text(text, path, environ={})
    assert again.stack == config.stack and again.runnable() == config.runnable()


# ---------------------------------------------------------------------------------- replicas


POOL = """\
    version: 1
    env: {BASE: "90"}
    services:
      - id: redis
        cmd: redis-server
        ports: [6379]
      - id: worker
        cmd: "worker --port ${BASE}0${MPSV3_REPLICA}"
        replicas: "${WORKERS:-3}"
        env: {NAME: "worker-${MPSV3_REPLICA}"}
        ports: ["${BASE}0${MPSV3_REPLICA}"]
        readiness:
          http_get: {url: "http://127.0.0.1:${BASE}0${MPSV3_REPLICA}/ready"}
        requires: [redis]
      - id: api
        cmd: api
        requires: [worker]
    """


def test_replicas_are_interpolated_one_by_one(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, POOL), environ={})
    runnable = config.runnable()
    assert [(r.spec.id, r.template, r.replica) for r in runnable] == [
        ("redis", "redis", None),
        ("worker-1", "worker", 1),
        ("worker-2", "worker", 2),
        ("worker-3", "worker", 3),
        ("api", "api", None),
    ]
    third = runnable[3].spec
    assert third.cmd == ["worker", "--port", "9003"]
    assert third.ports == [9003]
    assert third.env == {"BASE": "90", "NAME": "worker-3", "MPSV3_REPLICA": "3"}
    assert third.readiness is not None
    assert third.readiness.check().url == "http://127.0.0.1:9003/ready"
    assert third.replicas is None and third.cwd == str(tmp_path)
    assert runnable[4].spec.requires == ["worker"]  # the engine waits for every replica
    assert config.members("worker") == ["worker-1", "worker-2", "worker-3"]
    assert config.members("api") == ["api"]
    with pytest.raises(KeyError):
        config.members("worker-1")


def test_the_template_stays_as_written(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, POOL), environ={"WORKERS": "2"})
    assert [s.id for s in config.services] == ["redis", "worker", "api"]
    template = config.stack.service("worker")
    assert template.replicas == 2
    assert template.ports == [9001]  # a template validates as replica 1
    assert "MPSV3_REPLICA" not in template.env


def test_a_template_without_the_variable_is_copied(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "version: 1\nservices: [{id: w, cmd: run, replicas: 2, env: {A: x}, cwd: sub}]\n",
    )
    first, second = load_config(path, environ={}).runnable()
    assert (first.spec.id, second.spec.id) == ("w-1", "w-2")
    assert second.spec.env == {"A": "x", "MPSV3_REPLICA": "2"}
    assert second.spec.cwd == str(tmp_path / "sub")


def test_scale_overrides_the_written_count(tmp_path: Path) -> None:
    path = _write(tmp_path, POOL)
    config = load_config(path, environ={}, replicas={"worker": 5})
    assert config.members("worker") == [f"worker-{k}" for k in range(1, 6)]
    assert config.runnable()[5].spec.ports == [9005]
    assert config.stack.service("worker").replicas == 3  # as written


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"nope": 2}, 'services.yaml: cannot scale "nope": no service has this id'),
        ({"redis": 2}, 'services.yaml:4: service "redis": has no replicas: key, so it cannot be scaled'),
        ({"worker": 0}, 'services.yaml:9: service "worker": cannot scale to 0: 1 … 1000'),
        ({"worker": 1001}, 'services.yaml:9: service "worker": cannot scale to 1001: 1 … 1000'),
    ],
)
def test_bad_scale_is_a_clear_error(tmp_path: Path, counts: dict[str, int], expected: str) -> None:
    path = _write(tmp_path, POOL)
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text(path.read_text(), "services.yaml", environ={}, replicas=counts)
    assert [str(e) for e in caught.value.errors] == [expected]


def test_an_error_in_a_template_is_reported_once(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        version: 1
        services:
          - id: worker
            cmd: run
            replicas: 50
            restart: {policy: sometimes}
            ports: ["${UNDEFINED}${MPSV3_REPLICA}"]
        """,
    )
    errors = _errors(path)
    assert len(errors) == 2, errors
    assert errors[0].startswith(f'{path}:6: service "worker": restart.policy: expected')
    assert errors[1].startswith(f"{path}:7: undefined variable ${{UNDEFINED}}")


def test_replica_ids_must_stay_short(tmp_path: Path) -> None:
    sid = "w" * 126
    path = _write(tmp_path, f"version: 1\nservices: [{{id: {sid}, cmd: run, replicas: 10}}]\n")
    assert _errors(path) == [
        f'{path}:2: service "{sid[:55]}...": replica id "{sid[:55]}..." is longer than 128 '
        "characters (it names the replica's files)"
    ]


def test_too_many_processes_are_refused(tmp_path: Path) -> None:
    services = "".join(f"  - {{id: w{n}, cmd: run, replicas: 1000}}\n" for n in range(11))
    path = _write(tmp_path, "version: 1\nservices:\n" + services)
    errors = _errors(path)
    assert errors == [f'{path}:13: service "w10": more than 10000 processes in all: refused']


def test_explain_keeps_the_replica_variable_and_loads_back(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, POOL), environ={})
    text = explain(config)
    assert "# worker runs as worker-1 … worker-3 (MPSV3_REPLICA = 1 … 3)\n" in text
    worker = yaml.safe_load(text)["services"][1]
    assert worker["ports"] == ["900${MPSV3_REPLICA}"]
    assert worker["cmd"] == "worker --port 900${MPSV3_REPLICA}"
    assert worker["env"]["NAME"] == "worker-${MPSV3_REPLICA}"
    assert worker["replicas"] == 3
    again = load_config_text(text, config.path, environ={})
    assert again.stack == config.stack
    assert again.runnable() == config.runnable()


def test_a_config_built_by_hand_derives_its_replicas(tmp_path: Path) -> None:
    loaded = load_config(
        _write(tmp_path, "version: 1\nservices: [{id: w, cmd: run, replicas: 2}]\n"), environ={}
    )
    by_hand = Config(path=loaded.path, stack=loaded.stack)
    assert by_hand.runnable() == loaded.runnable()


# ------------------------------------------------------------------- tasks, accounts, profiles


def test_a_task_may_have_dependents_and_no_probe(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        version: 1
        services:
          - {id: migrate, kind: task, cmd: migrate, restart: {policy: on-failure}}
          - {id: app, cmd: app, requires: [migrate]}
        """,
    )
    config = load_config(path, environ={})
    assert config.stack.service("migrate").kind == "task"
    assert config.warnings == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX accounts")
def test_existing_accounts_are_accepted_by_name_and_number(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        version: 1
        services:
          - {id: a, cmd: run, user: root, group: "0"}
          - {id: b, cmd: run, user: "0"}
        """,
    )
    assert load_config(path, environ={}).stack.service("a").user == "root"


def test_profiles_and_enabled_are_validated_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "version: 1\nservices: [{id: a, cmd: run, enabled: false, profiles: [debug, ops.v2]}]\n",
    )
    spec = load_config(path, environ={}).services[0]
    assert (spec.enabled, spec.profiles) == (False, ["debug", "ops.v2"])


# ---------------------------------------------------------------------------------- warnings


def test_warnings_for_dependencies_that_may_never_be_ready(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        version: 1
        services:
          - {id: once, cmd: run, restart: {policy: never}}
          - {id: spare, cmd: run, enabled: false}
          - {id: dbg, cmd: run, profiles: [debug]}
          - id: app
            cmd: run
            requires:
              - once
              - spare
              - dbg
          - {id: tool, cmd: run, profiles: [ops], requires: [dbg]}
          - {id: dbgtool, cmd: run, profiles: [debug], requires: [dbg]}
          - {id: later, cmd: run, enabled: false, requires: [spare]}
        """,
    )
    config = load_config(path, environ={})
    assert [str(w) for w in config.warnings] == [
        f'{path}:9: warning: service "app": requires "once", which has restart.policy: never: '
        "once it stops, this service waits for it until someone starts it (use on-failure, or "
        "kind: task for a one-shot job)",
        f'{path}:10: warning: service "app": requires "spare", which is enabled: false: up starts '
        "it anyway, because this service needs it",
        f'{path}:11: warning: service "app": requires "dbg", which is only in profiles debug: '
        "without --profile, up starts it anyway, because this service needs it",
        f'{path}:12: warning: service "tool": requires "dbg", which is only in profiles debug: '
        "with --profile ops, up starts it anyway, because this service needs it",
    ]
