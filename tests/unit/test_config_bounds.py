"""Hostile input gets nowhere: size, nesting, aliases, interpolation, patterns (issue 15)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mpsv3.config.bounds import MAX_CONFIG_BYTES
from mpsv3.config.instance import locate_instance
from mpsv3.config.loader import load_config, load_config_text
from mpsv3.config.patterns import compile_pattern, pattern_problem
from mpsv3.errors import ConfigError, ConfigInvalid

TOO_LARGE = "cannot read config: larger than 1 MiB, the limit for a config file"


def _errors(path: Path | str) -> list[ConfigError]:
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path, environ={})
    return caught.value.errors


def _stack(services: int) -> str:
    """A valid config of many services, each with a command, env, a dependency and a probe."""
    lines = ["version: 1", "env: {BASE: '10000'}", "services:"]
    for n in range(services):
        lines += [
            f"  - id: svc{n}",
            f"    cmd: [python, -m, app.svc{n}, --port, '{10000 + n}']",
            f"    env: {{PORT: '{10000 + n}', URL: 'http://127.0.0.1:${{BASE}}/{n}'}}",
            f"    requires: [{f'svc{n - 1}' if n else ''}]",
            f"    readiness: {{tcp: {{port: {10000 + n}}}}}",
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- size


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_refused_at_once() -> None:
    started = time.monotonic()
    assert [e.message for e in _errors("/dev/zero")] == [TOO_LARGE]
    assert time.monotonic() - started < 5.0  # reads 1 MiB, not until memory runs out


def test_a_large_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    with open(path, "wb") as out:
        out.truncate(10_000_000)  # 10 MB (sparse: nothing to read if it is not read)
    started = time.monotonic()
    assert [str(e) for e in _errors(path)] == [f"{path}: {TOO_LARGE}"]
    assert time.monotonic() - started < 1.0


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    head = "version: 1\nservices: [{id: a, cmd: run}]\n"
    path = tmp_path / "services.yaml"
    path.write_text(head + "#" * (MAX_CONFIG_BYTES - len(head) - 1) + "\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(path, environ={}).services[0].id == "a"
    path.write_text(head + "#" * (MAX_CONFIG_BYTES - len(head)) + "\n")
    assert [e.message for e in _errors(path)] == [TOO_LARGE]


def test_text_past_the_limit_is_refused() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text("#" * (MAX_CONFIG_BYTES + 1), "services.yaml")
    assert [e.message for e in caught.value.errors] == [TOO_LARGE]


def test_a_one_mebibyte_config_loads_quickly(tmp_path: Path) -> None:
    """~1 MiB, 5000 services: about 0.8 s of CPU here; 2 s is the target, 4 s the bound
    (wide, for a busy CI machine)."""
    text = _stack(5000)
    assert 0.9 * MAX_CONFIG_BYTES < len(text) < MAX_CONFIG_BYTES
    path = tmp_path / "services.yaml"
    path.write_text(text)
    started = time.process_time()
    config = load_config(path, environ={})
    spent = time.process_time() - started
    assert len(config.runnable()) == 5000
    assert spent < 4.0, f"{spent:.2f} s of CPU for 1 MiB"


@pytest.mark.slow
def test_loading_time_grows_linearly(tmp_path: Path) -> None:
    """8 times the services takes about 8 times as long (a quadratic path would take 64)."""

    def cost(services: int) -> float:
        text = _stack(services)
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            load_config_text(text, tmp_path / "services.yaml", environ={})
            best = min(best, time.process_time() - started)
        return best

    small, large = cost(600), cost(4800)
    assert large / small < 20, f"600 services: {small:.3f} s, 4800: {large:.3f} s"


# ------------------------------------------------------------------ nesting, aliases, errors


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        (63, "env.A: expected a string, got a list"),  # the innermost list is 64 levels deep
        (64, "YAML is nested more than 64 levels deep"),
        (900, "YAML is nested more than 64 levels deep"),
        (5000, "YAML syntax error: exceeded maximum nesting depth (while increasing flow level)"),
    ],
)
def test_deep_nesting_is_a_clear_error(depth: int, message: str) -> None:
    text = "version: 1\nservices: [{id: a, cmd: run}]\nenv: {A: " + "[" * depth + "]" * depth + "}\n"
    started = time.process_time()
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text(text, "services.yaml", environ={})
    assert [e.message for e in caught.value.errors] == [message]
    assert time.process_time() - started < 0.5


def test_aliases_of_a_legitimately_large_config_are_fine() -> None:
    services = "".join(f"  - {{<<: *base, id: s{n}}}\n" for n in range(3000))
    text = (
        "version: 1\nx-base: &base {cmd: [run, a, b, c], env: {A: '1', B: '2'}}\n"
        "services:\n" + services
    )
    with pytest.raises(ConfigInvalid) as caught:  # x-base is not a key of the schema
        load_config_text(text, "services.yaml", environ={})
    assert [e.message for e in caught.value.errors] == ['unknown key "x-base"']


def test_many_errors_stay_fast() -> None:
    """Thousands of unknown dependencies: each named, the did-you-mean bounded."""
    services = "".join(f"  - {{id: svc{n}, cmd: run, requires: [svx{n}]}}\n" for n in range(5000))
    started = time.process_time()
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text("version: 1\nservices:\n" + services, "services.yaml", environ={})
    assert len(caught.value.errors) == 5000
    assert caught.value.errors[0].message == (
        'service "svc0": requires unknown service "svx0" (did you mean "svc0"?)'
    )
    assert "did you mean" not in caught.value.errors[-1].message
    assert time.process_time() - started < 10.0


def test_many_failed_interpolations_stay_fast() -> None:
    services = "".join(f"  - {{id: s{n}, cmd: run, ports: ['${{P{n}}}']}}\n" for n in range(5000))
    started = time.process_time()
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text("version: 1\nservices:\n" + services, "services.yaml", environ={})
    assert len(caught.value.errors) == 5000  # one each: not also "expected an integer"
    assert time.process_time() - started < 10.0


# ---------------------------------------------------------------------------- interpolation


def test_a_thousand_nested_defaults_are_one_error() -> None:
    value = "${A:-" * 1000 + "x" + "}" * 1000
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text(
            f'version: 1\nservices:\n  - id: a\n    cmd: ["{value}"]\n', "services.yaml", environ={}
        )
    [error] = caught.value.errors
    assert error.line == 4
    assert error.message.startswith("${...} defaults nested more than 32 deep in '${A:-${A:-")
    assert len(error.message) < 200


def test_a_billion_laughs_of_variables_is_refused() -> None:
    env = ["  A0: '" + "x" * 1000 + "'"] + [f"  A{n}: '${{A{n - 1}}}${{A{n - 1}}}'" for n in range(1, 40)]
    text = "version: 1\nenv:\n" + "\n".join(env) + "\nservices: [{id: a, cmd: ['${A39}']}]\n"
    started = time.process_time()
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text(text, "services.yaml", environ={})
    assert [e.message for e in caught.value.errors] == [
        "the config expands to more than 8 MiB of text through ${...} references (and "
        "replicas): refused"
    ]
    assert time.process_time() - started < 5.0


# -------------------------------------------------------------------------------- patterns


def test_a_catastrophic_pattern_is_matched_in_linear_time() -> None:
    pattern = compile_pattern("^(a+)+$")
    started = time.monotonic()
    assert pattern.search("a" * 40 + "b") is None
    assert pattern.search("a" * 100_000 + "b") is None
    assert time.monotonic() - started < 1.0
    assert pattern.search("aaaa") is not None


def test_compile_pattern_refuses_what_check_refuses(capfd: pytest.CaptureFixture[str]) -> None:
    assert pattern_problem(r"ready in \d+ ms") is None
    assert compile_pattern(r"ready in \d+ ms").search("web: ready in 12 ms") is not None
    with pytest.raises(ValueError, match="backreferences need backtracking"):
        compile_pattern(r"(a)\1")
    assert pattern_problem(r"\Z") == (
        r"invalid escape sequence: \Z: write \z for the end of the text "
        "(mpsv3 matches log patterns with RE2, in linear time)"
    )
    assert capfd.readouterr().err == ""  # RE2 logs nothing of its own to stderr


# ---------------------------------------------------------------------- client commands


def test_locate_instance_reads_what_does_not_validate(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("version: 1\nname: shop\nservices:\n  - {id: a, cmd: run, readyness: {}}\n")
    location = locate_instance(path)
    assert location is not None
    assert (location.name, location.state_dir, location.service_ids) == (
        "shop",
        tmp_path / ".mpsv3",
        ("a",),
    )
    path.write_text("version: 1\nservices: [{id: a, cmd: ['" + "${A:-" * 1000 + "}" * 1000 + "']}]\n")
    location = locate_instance(path)
    assert location is not None and location.name == tmp_path.name


@pytest.mark.parametrize(
    "text",
    ["[" * 5000, "name: ${NAME}\n", "name: 'a b'\n", "- a\n", "\xff", "a: &a [*a]\n"],
)
def test_locate_instance_gives_up_without_raising(tmp_path: Path, text: str) -> None:
    path = tmp_path / "services.yaml"
    path.write_text(text, encoding="latin-1")
    assert locate_instance(path) is None or text == "a: &a [*a]\n"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_locate_instance_of_dev_zero() -> None:
    assert locate_instance("/dev/zero") is None
