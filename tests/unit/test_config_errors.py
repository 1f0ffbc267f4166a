"""Bad configs: each one is reported at the exact line, as one readable sentence.

Table-driven: every case is a small ``services.yaml`` text, the line the error must point at,
and a regular expression for the whole message (after ``services.yaml:LINE: ``).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from mpsv3.config.loader import load_config, load_config_text
from mpsv3.errors import ConfigError, ConfigInvalid


def _errors(text: str, environ: dict[str, str] | None = None) -> list[ConfigError]:
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text(textwrap.dedent(text), Path("services.yaml"), environ=environ or {})
    return caught.value.errors


# (case id, YAML text, expected line, regex the message must fully match)
CASES = [
    (
        "yaml-syntax",
        """\
        version: 1
        services:
          - id: a
            cmd: [echo, hi
          - id: b
        """,
        5,
        r"YAML syntax error: .+",
    ),
    (
        "yaml-tab",
        "version: 1\nservices:\n\t- id: a\n",
        3,
        r"YAML syntax error: found character '\\t' that cannot start any token .*",
    ),
    (
        "unknown-top-level-key",
        """\
        version: 1
        servces:
          - id: a
            cmd: echo
        """,
        2,
        r'unknown key "servces" \(did you mean "services"\?\)',
    ),
    (
        "unknown-service-key",
        """\
        version: 1
        services:
          - id: ws_api
            cmd: echo
            readyness:
              tcp: {port: 8000}
        """,
        5,
        r'service "ws_api": unknown key "readyness" \(did you mean "readiness"\?\)',
    ),
    (
        "unknown-key-no-suggestion",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            zzzzzz: 1
        """,
        5,
        r'service "a": unknown key "zzzzzz"',
    ),
    (
        "unknown-probe-key",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            readiness:
              http_get:
                url: http://127.0.0.1:8000/
                expect_staus: 204
        """,
        8,
        r'service "a": readiness\.http_get: unknown key "expect_staus" \(did you mean "expect_status"\?\)',
    ),
    (
        "port-as-text",
        """\
        version: 1
        services:
          - id: ws_api
            cmd: echo
            ports:
              - abc
        """,
        6,
        r'service "ws_api": ports\[0\]: expected an integer, got "abc"',
    ),
    (
        "list-as-string",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            requires: falkordb
        """,
        5,
        r'service "a": requires: expected a list, got "falkordb"',
    ),
    (
        "env-value-bool",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            env:
              DEBUG: true
        """,
        6,
        r'service "a": env\.DEBUG: expected a string, got true \(quote it\)',
    ),
    (
        "duplicate-id",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
          - id: a
            cmd: echo
        """,
        5,
        r'duplicate service id "a" \(first at line 3\)',
    ),
    (
        "unknown-dependency",
        """\
        version: 1
        services:
          - id: falkordb
            cmd: echo
          - id: ws_api
            cmd: echo
            requires:
              - falkordbb
        """,
        8,
        r'service "ws_api": requires unknown service "falkordbb" \(did you mean "falkordb"\?\)',
    ),
    (
        "self-dependency",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            requires: [a]
        """,
        5,
        r'service "a": requires itself',
    ),
    (
        "cycle-2",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            requires: [b]
          - id: b
            cmd: echo
            requires: [a]
        """,
        5,
        r"dependency cycle: a -> b -> a",
    ),
    (
        "cycle-3",
        """\
        version: 1
        services:
          - id: c
            cmd: echo
          - id: a
            cmd: echo
            requires: [b, c]
          - id: b
            cmd: echo
            requires: [d]
          - id: d
            cmd: echo
            requires: [a]
        """,
        7,
        r"dependency cycle: a -> b -> d -> a",
    ),
    (
        "bad-glob-brace",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            watch:
              paths:
                - "app/**/*.py"
                - "app/{a,b/*.py"
        """,
        8,
        r'service "a": watch\.paths\[1\]: bad glob "app/\{a,b/\*\.py": unbalanced "\{"',
    ),
    (
        "bad-glob-empty",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            watch: {paths: ["!"]}
        """,
        5,
        r'service "a": watch\.paths\[0\]: bad glob "!": empty pattern',
    ),
    (
        "bad-legacy-lock-glob",
        """\
        version: 1
        legacy_locks:
          - .launcher.lock
          - ".locks/[abc.pid"
        services:
          - id: a
            cmd: echo
        """,
        4,
        r'legacy_locks\[1\]: bad glob "\.locks/\[abc\.pid": unbalanced "\["',
    ),
    (
        "url-without-scheme",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            readiness:
              http_get:
                url: 127.0.0.1:8000/ping
        """,
        7,
        r"service \"a\": readiness\.http_get\.url: bad URL '127\.0\.0\.1:8000/ping': "
        r"expected http://HOST\[:PORT\]/PATH",
    ),
    (
        "url-bad-port",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            liveness:
              http_get: {url: "http://127.0.0.1:99999/health"}
        """,
        6,
        r"service \"a\": liveness\.http_get\.url: bad URL 'http://127\.0\.0\.1:99999/health': .*range.*",
    ),
    (
        "undefined-variable",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            env:
              PORT: "${WS_PORT}"
        """,
        6,
        r"undefined variable \$\{WS_PORT\} \(set it in the environment, in env:, or with --set WS_PORT=\.\.\.\)",
    ),
    (
        "port-zero",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            ports: [0]
        """,
        5,
        r'service "a": ports\[0\]: must be at least 1, got 0',
    ),
    (
        "port-70000",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            readiness:
              tcp:
                port: 70000
        """,
        7,
        r'service "a": readiness\.tcp\.port: must be at most 65535, got 70000',
    ),
    (
        "two-probe-kinds",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            readiness:
              tcp: {port: 8000}
              exec: {cmd: "true"}
        """,
        5,
        r'service "a": readiness: needs exactly one probe kind of .* \(got tcp, exec\)',
    ),
    (
        "no-probe-kind",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            readiness:
              timeout_s: 5
        """,
        5,
        r'service "a": readiness: needs exactly one probe kind of .* \(got none\)',
    ),
    (
        "log-probe-in-liveness",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            liveness:
              interval_s: 5
              log: {pattern: ready}
        """,
        7,
        r'service "a": liveness: log probes are readiness-only \(use them under readiness:\)',
    ),
    (
        "bad-signal",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            stop: {signal: SIGFOO}
        """,
        5,
        r"service \"a\": stop\.signal: unknown signal 'SIGFOO': use one of SIGHUP, .*",
    ),
    (
        "bad-on-change",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            watch:
              paths: ["*.py"]
              on_change: reload
        """,
        7,
        r"service \"a\": watch\.on_change: unknown on_change 'reload': use restart, none or signal:NAME",
    ),
    (
        "bad-restart-policy",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            restart:
              policy: sometimes
        """,
        6,
        r'service "a": restart\.policy: expected "always", "on-failure" or "never", got "sometimes"',
    ),
    (
        "negative-backoff",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            restart:
              backoff: {base_ms: -5}
        """,
        6,
        r'service "a": restart\.backoff\.base_ms: must be at least 0, got -5',
    ),
    (
        "jitter-above-1",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            restart:
              backoff:
                jitter: 1.5
        """,
        7,
        r'service "a": restart\.backoff\.jitter: must be at most 1(\.0)?, got 1\.5',
    ),
    (
        "missing-cmd",
        """\
        version: 1
        services:
          - id: a
            cwd: app
        """,
        3,
        r'service "a": missing required key "cmd"',
    ),
    (
        "empty-cmd",
        """\
        version: 1
        services:
          - id: a
            cmd: ""
        """,
        4,
        r'service "a": cmd: command is empty',
    ),
    (
        "reserved-id",
        """\
        version: 1
        services:
          - id: mpsv3
            cmd: echo
        """,
        3,
        r'service "mpsv3": id: service id "mpsv3" is reserved: logs/mpsv3.log is the supervisor.s own log; choose another id',
    ),
    (
        "bad-id-chars",
        """\
        version: 1
        services:
          - id: WS API
            cmd: echo
        """,
        3,
        r'service "WS API": id: bad service id \'WS API\': use lowercase letters, digits, _ and -',
    ),
    (
        "version-2",
        """\
        version: 2
        services:
          - id: a
            cmd: echo
        """,
        1,
        r"version: expected 1",
    ),
    (
        "version-missing",
        """\
        services:
          - id: a
            cmd: echo
        """,
        1,
        r"version: expected 1",
    ),
    (
        "services-empty",
        """\
        version: 1
        services: []
        """,
        2,
        r"services: must not be empty",
    ),
    (
        "duplicate-yaml-key",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            cmd: true
        """,
        5,
        r'services\[0\]: duplicate key "cmd" \(first at line 4\)',
    ),
    (
        "root-is-list",
        """\
        - version: 1
        """,
        1,
        r"the config must be a mapping \(version: 1, services: \.\.\.\), got a list",
    ),
    (
        "bad-criticality",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            criticality: vital
        """,
        5,
        r'service "a": criticality: expected "critical", "core" or "optional", got "vital"',
    ),
    (
        "bad-regex-log-probe",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            readiness:
              log: {pattern: "ready("}
        """,
        6,
        r"service \"a\": readiness\.log\.pattern: bad regular expression 'ready\(': .+",
    ),
    (
        "duplicate-port",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            ports: [8000]
          - id: b
            cmd: echo
            ports: [8001, 8000]
        """,
        8,
        r'service "b": port 8000 is also declared by service "a"',
    ),
    (
        "service-not-mapping",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
          - just a string
        """,
        5,
        r'services\[1\]: expected a mapping, got "just a string"',
    ),
    (
        "missing-id",
        """\
        version: 1
        services:
          - cmd: echo
        """,
        3,
        r'services\[0\]: missing required key "id"',
    ),
    (
        "bad-variable-syntax",
        """\
        version: 1
        env:
          URL: "http://${HOST"
        services:
          - id: a
            cmd: echo
        """,
        3,
        r"unterminated \$\{\.\.\.\} in 'http://\$\{HOST'",
    ),
    (
        "unbalanced-quote-in-cmd",
        """\
        version: 1
        services:
          - id: a
            cmd: echo 'hi
        """,
        4,
        r"service \"a\": cmd: cannot split command \"echo 'hi\": No closing quotation",
    ),
    (
        "unsupported-tag",
        """\
        version: 1
        services:
          - id: a
            cmd: !!binary aGVsbG8=
        """,
        4,
        r"unsupported YAML tag !!binary",
    ),
    (
        "nul-in-env-value",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            env:
              A: "x\\0y"
        """,
        6,
        r'service "a": env\.A: contains a NUL character \(\\0\): no argument, environment variable or path can hold one',
    ),
    (
        "nul-in-argv",
        """\
        version: 1
        services:
          - id: a
            cmd: ["echo", "a\\x00b"]
        """,
        4,
        r'service "a": cmd\[1\]: contains a NUL character .+',
    ),
    (
        "nul-in-probe-command",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            readiness:
              exec: {cmd: "test\\0"}
        """,
        6,
        r'service "a": readiness\.exec\.cmd: contains a NUL character .+',
    ),
    (
        "nul-in-user",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            user: "root\\0"
        """,
        5,
        r'service "a": user: contains a NUL character .+',
    ),
    (
        "equals-in-env-key",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            env:
              OK: "1"
              B=C: "2"
        """,
        7,
        r'service "a": env\["B=C"\]: a variable name cannot contain "=" \(the environment is NAME=VALUE\)',
    ),
    (
        "empty-global-env-key",
        """\
        version: 1
        env:
          "": x
        services:
          - id: a
            cmd: echo
        """,
        3,
        r'env\[""\]: an environment variable needs a name',
    ),
    (
        "id-too-long",
        "version: 1\nservices:\n  - id: " + "a" * 300 + "\n    cmd: echo\n",
        3,
        r'service "a{55}\.\.\.": id: service id is 300 characters long; at most 128, '
        r"because it names the service's files \(logs/ID\.log\)",
    ),
    (
        "log-pattern-backreference",
        r"""
        version: 1
        services:
          - id: a
            cmd: echo
            readiness:
              log: {pattern: '(a)\1'}
        """,
        7,
        r"service \"a\": readiness\.log\.pattern: bad regular expression '\(a\)\\\\1': invalid escape "
        r"sequence: \\1: backreferences need backtracking \(mpsv3 matches log patterns with RE2, in linear time\)",
    ),
    (
        "log-pattern-lookahead",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            readiness:
              log: {pattern: 'ready(?= now)'}
        """,
        6,
        r"service \"a\": readiness\.log\.pattern: bad regular expression .+: lookaround .+ needs "
        r"backtracking \(mpsv3 matches log patterns with RE2, in linear time\)",
    ),
    (
        "task-with-readiness",
        """\
        version: 1
        services:
          - id: migrate
            kind: task
            cmd: echo
            readiness:
              tcp: {port: 5432}
        """,
        6,
        r'service "migrate": a task has no readiness: its completion \(exit 0\) is what its '
        r"dependents wait for",
    ),
    (
        "task-restart-always",
        """\
        version: 1
        services:
          - id: migrate
            kind: task
            cmd: echo
            restart:
              policy: always
        """,
        7,
        r'service "migrate": restart\.policy: always would run a task again after it completed; .+',
    ),
    (
        "unknown-user",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            user: no-such-user-mpsv3
        """,
        5,
        r'service "a": user: no user "no-such-user-mpsv3" on this machine \(see getent passwd\)',
    ),
    (
        "unknown-group",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            group: no-such-group-mpsv3
        """,
        5,
        r'service "a": group: no group "no-such-group-mpsv3" on this machine \(see getent group\)',
    ),
    (
        "missing-env-file",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            env_file:
              - ?.env.local
              - .env.nowhere
        """,
        7,
        r'service "a": env_file\[1\]: env file \.env\.nowhere does not exist \(write '
        r"\?\.env\.nowhere if it may be missing\)",
    ),
    (
        "bad-profile-name",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            profiles: [debug, "no spaces"]
        """,
        5,
        r"service \"a\": profiles: bad profile name 'no spaces': use letters, digits, '\.', '_' and '-'",
    ),
    (
        "replica-ports-clash",
        """\
        version: 1
        services:
          - id: worker
            cmd: echo
            replicas: 2
            ports: [8000]
        """,
        6,
        r'service "worker": each replica would listen on port 8000: write the port with '
        r'\$\{MPSV3_REPLICA\}, e\.g\. "80\$\{MPSV3_REPLICA\}"',
    ),
    (
        "replica-port-out-of-range",
        """\
        version: 1
        services:
          - id: worker
            cmd: echo
            replicas: 7
            ports: ["6553${MPSV3_REPLICA}"]
        """,
        6,
        r'service "worker", replica 6: ports\[0\]: must be at most 65535, got "65536"',
    ),
    (
        "replica-id-clash",
        """\
        version: 1
        services:
          - id: worker
            cmd: echo
            replicas: 2
          - id: worker-2
            cmd: echo
        """,
        5,
        r'service "worker": replica id "worker-2" is also the id of service "worker-2"',
    ),
    (
        "replica-variable-outside-replicas",
        """\
        version: 1
        services:
          - id: a
            cmd: ["echo", "${MPSV3_REPLICA}"]
        """,
        4,
        r"undefined variable \$\{MPSV3_REPLICA\}: it is defined inside a service with replicas: "
        r"only \(its replica's number\)",
    ),
    (
        "interpolation-too-deep",
        "version: 1\nservices:\n  - id: a\n    cmd: [\"" + "${A:-" * 1000 + "x" + "}" * 1000 + "\"]\n",
        4,
        r"\$\{\.\.\.\} defaults nested more than 32 deep in '.+'\.\.\.",
    ),
    (
        "metrics-port-clash",
        """\
        version: 1
        metrics: {port: 9100}
        services:
          - id: a
            cmd: echo
            ports: [9100]
        """,
        6,
        r'service "a": port 9100 is also declared by metrics',
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_config_is_reported_at_its_line(text: str, line: int, pattern: str) -> None:
    errors = _errors(text)
    assert len(errors) == 1, [str(e) for e in errors]
    error = errors[0]
    assert error.path == "services.yaml"
    assert error.line == line, str(error)
    assert re.fullmatch(pattern, error.message), error.message
    assert str(error) == f"services.yaml:{line}: {error.message}"
    assert "\n" not in error.message
    assert "pydantic" not in error.message and "type=" not in error.message


def test_case_ids_are_distinct() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 67


def test_empty_file_is_one_clear_error() -> None:
    for text in ("", "\n\n", "# only a comment\n", "~\n"):
        errors = _errors(text)
        assert [str(e) for e in errors] == [
            "services.yaml: the config is empty: expected a mapping with version: 1 and services:"
        ]


def test_missing_file_is_one_error_naming_the_path_as_given(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load_config(tmp_path / "nowhere" / "services.yaml")
    [error] = caught.value.errors
    assert error.line == 0
    assert error.path == str(tmp_path / "nowhere" / "services.yaml")
    assert error.message == "cannot read config: No such file or directory (use -c FILE)"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load_config(tmp_path)
    [error] = caught.value.errors
    assert error.message.startswith("cannot read config: ")


def test_not_utf8_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_bytes(b"version: 1\nservices:\n  - id: \xff\n")
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    [error] = caught.value.errors
    assert (error.line, error.message) == (3, "cannot read config: not UTF-8 text (byte 0xff)")


def test_undefined_variable_is_not_also_a_type_error() -> None:
    errors = _errors(
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            ports: ["${A_PORT}"]
        """
    )
    assert [e.line for e in errors] == [5]
    assert errors[0].message.startswith("undefined variable ${A_PORT}")


def test_error_path_is_the_path_as_given() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text("version: 2\nservices: [{id: a, cmd: x}]\n", "examples/x/services.yaml")
    assert [str(e) for e in caught.value.errors] == [
        "examples/x/services.yaml:1: version: expected 1"
    ]


def test_recursive_alias_is_an_error_not_a_crash() -> None:
    errors = _errors("version: 1\nservices: &s\n  - *s\n")
    assert any("recursive alias" in e.message for e in errors)


def test_alias_bomb_is_refused() -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 7)]
    errors = _errors("\n".join(lines) + "\n")
    assert [e.message for e in errors] == ["the config is too large (alias bomb?)"]


def test_a_broken_env_key_is_reported_once_not_at_every_use() -> None:
    errors = _errors(
        """\
        version: 1
        env:
          API_URL: "http://127.0.0.1:${WS_PORT}"
        services:
          - id: a
            cmd: echo
            readiness:
              http_get: {url: "${API_URL}/ping"}
        """
    )
    assert [e.line for e in errors] == [3]
    assert errors[0].message.startswith("undefined variable ${WS_PORT}")


# (case id, YAML text, every message in order, each with its line): errors that come together.
SEVERAL = [
    (
        "three_errors_are_reported_at_once",
        """\
        version: 1
        services:
          - id: ws_api
            cmd: echo
            requires: [db]
          - id: dashboard
            cmd: echo
            readyness: {tcp: {port: 8000}}
          - id: worker
            cmd: echo
            ports: [70000]
        """,
        [
            'services.yaml:5: service "ws_api": requires unknown service "db"',
            'services.yaml:8: service "dashboard": unknown key "readyness" (did you mean "readiness"?)',
            'services.yaml:11: service "worker": ports[0]: must be at most 65535, got 70000',
        ],
    ),
    (
        "dependency_on_a_service_with_a_schema_error_is_not_called_unknown",
        """\
        version: 1
        services:
          - id: db
            cmd: echo
            ports: [0]
          - id: api
            cmd: echo
            requires: [db, cache]
        """,
        [
            'services.yaml:5: service "db": ports[0]: must be at least 1, got 0',
            'services.yaml:8: service "api": requires unknown service "cache"',
        ],
    ),
    (
        "two_independent_cycles_are_both_reported",
        """\
        version: 1
        services:
          - {id: a, cmd: echo, requires: [b]}
          - {id: b, cmd: echo, requires: [a]}
          - {id: c, cmd: echo, requires: [d]}
          - {id: d, cmd: echo, requires: [c]}
        """,
        [
            "services.yaml:3: dependency cycle: a -> b -> a",
            "services.yaml:5: dependency cycle: c -> d -> c",
        ],
    ),
    (
        "requires_of_a_service_with_a_schema_error_is_still_checked",
        """\
        version: 1
        services:
          - id: a
            cmd: echo
            requires: [b]
            readyness: {}
          - id: c
            cmd: echo
            ports: [0]
            requires: [d]
          - id: d
            cmd: echo
            requires: [c]
        """,
        [
            'services.yaml:5: service "a": requires unknown service "b"',
            'services.yaml:6: service "a": unknown key "readyness" (did you mean "readiness"?)',
            'services.yaml:9: service "c": ports[0]: must be at least 1, got 0',
            "services.yaml:10: dependency cycle: c -> d -> c",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in SEVERAL], ids=[c[0] for c in SEVERAL]
)
def test_each_of_several_errors_is_reported_at_its_line(text: str, expected: list[str]) -> None:
    assert [str(e) for e in _errors(text)] == expected
