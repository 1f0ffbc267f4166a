"""``${VAR}`` interpolation rules, apart from YAML."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpsv3.config.interpolate import InterpolationError, interpolate, references

VARS = {"HOST": "127.0.0.1", "PORT": "8000", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("${HOST}", "127.0.0.1"),
        ("http://${HOST}:${PORT}/ping", "http://127.0.0.1:8000/ping"),
        ("${MISSING:-6379}", "6379"),
        ("${PORT:-6379}", "8000"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${MISSING:-}", ""),
        ("${MISSING:-${PORT}}", "8000"),
        ("${MISSING:-${ALSO_MISSING:-x}}y", "xy"),
        ("${PORT:-${UNDEFINED}}", "8000"),  # an unused default is not evaluated
        ("$$", "$"),
        ("$${HOST}", "${HOST}"),
        ("$$$${HOST}", "$${HOST}"),
        ("cost: 5$", "cost: 5$"),
        ("echo $HOME $1", "echo $HOME $1"),
        ("${MISSING:-{a,b}}", "{a,b}"),
        ("${MISSING:-a:-b}", "a:-b"),
        ("{${PORT}}", "{8000}"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text, VARS) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "${WS_PORT}",
            "undefined variable ${WS_PORT} (set it in the environment, in env:, "
            "or with --set WS_PORT=...)",
        ),
        (
            "${EMPTY:-${NOPE}}",
            "undefined variable ${NOPE} (set it in the environment, in env:, or with --set NOPE=...)",
        ),
        ("${HOST", "unterminated ${...} in '${HOST'"),
        ("${HOST:-x", "unterminated ${...} in '${HOST:-x'"),
        ("${}", "bad variable reference '${}': expected ${NAME} or ${NAME:-default}"),
        ("${1X}", "bad variable reference '${1X}': expected ${NAME} or ${NAME:-default}"),
        ("${A-b}", "bad variable reference '${A-b}': expected ${NAME} or ${NAME:-default}"),
        ("${A B}", "bad variable reference '${A B}': expected ${NAME} or ${NAME:-default}"),
    ],
)
def test_interpolation_errors(text: str, message: str) -> None:
    with pytest.raises(InterpolationError) as caught:
        interpolate(text, VARS)
    assert str(caught.value) == message


def test_references() -> None:
    assert references("${A} $${B} ${C:-${D}} $E") == ["A", "C", "D"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=40))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert interpolate(text, VARS) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="${}:-AB_x ", max_size=30))
def test_any_text_interpolates_or_raises_interpolation_error(text: str) -> None:
    try:
        interpolate(text, {"A": "1", "B": ""})
    except InterpolationError as exc:  # any other exception fails the test
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_escaping_every_dollar_round_trips(text: str) -> None:
    assert interpolate(text.replace("$", "$$"), {}) == text


def test_defaults_nest_up_to_the_limit() -> None:
    from mpsv3.config.interpolate import MAX_DEPTH

    assert interpolate("${A:-" * MAX_DEPTH + "x" + "}" * MAX_DEPTH, {}) == "x"
    with pytest.raises(InterpolationError, match="defaults nested more than 32 deep"):
        interpolate("${A:-" * (MAX_DEPTH + 1) + "x" + "}" * (MAX_DEPTH + 1), {})


def test_a_deep_unused_default_is_still_bounded() -> None:
    text = "${PORT:-" + "${A:-" * 5000 + "}" * 5000 + "}"
    with pytest.raises(InterpolationError, match="nested more than 32 deep"):
        interpolate(text, VARS)


def test_messages_quote_long_text_short() -> None:
    with pytest.raises(InterpolationError) as caught:
        interpolate("x" * 10_000 + "${", VARS)
    assert len(str(caught.value)) < 120


def test_the_budget_bounds_what_a_document_expands_to() -> None:
    from mpsv3.config.interpolate import Budget, ExpansionTooLarge

    budget = Budget(chars=10)
    assert interpolate("${PORT}${PORT}", VARS, budget=budget) == "80008000"
    with pytest.raises(ExpansionTooLarge, match="more than 8 MiB"):
        interpolate("${PORT}", VARS, budget=budget)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${R}", "${R}"),
        ("port ${PORT}${R}", "port 8000${R}"),
        ("${R:-${MISSING}}", "${R:-${MISSING}}"),
        ("$$ and $HOME and ${COST}", "$$ and $$HOME and 5$$"),
    ],
)
def test_keeping_one_variable_gives_text_that_interpolates_later(text: str, expected: str) -> None:
    variables = {**VARS, "COST": "5$"}
    kept = interpolate(text, variables, keep="R")
    assert kept == expected
    assert interpolate(kept, {**variables, "R": "7"}) == interpolate(text, {**variables, "R": "7"})
