"""Property: any input either loads or raises ``ConfigInvalid``; never another exception."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpsv3.config.loader import load_config_text
from mpsv3.config.schema import Config
from mpsv3.errors import ConfigInvalid
from support import value_paths

PATH = Path("/tmp/mpsv3-property/services.yaml")
STACK7 = yaml.safe_load((Path(__file__).parent / "configs" / "stack7.yaml").read_text())
KEYS = [
    "version", "services", "id", "cmd", "env", "requires", "ports", "readiness", "liveness",
    "tcp", "http_get", "url", "log", "notify", "watch", "paths", "restart", "policy", "x",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["${X}", "${X:-1}", "$$", "${", "1", "ws_api", "http://h:1/", "[", "{a"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(0, 3))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)


def _load(text: str) -> None:
    try:
        result = load_config_text(text, PATH, environ={"X": "7"})
    except ConfigInvalid as exc:
        assert exc.errors, "ConfigInvalid without errors"
        for error in exc.errors:
            assert "\n" not in error.message and error.line >= 0
    else:
        assert isinstance(result, Config)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents(document: Any) -> None:
    _load(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    _load(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="ab:-[]{}&*!|>'\"#%@ \n\t,?~01", max_size=120))
def test_random_yaml_punctuation(text: str) -> None:
    _load("version: 1\n" + text)


STACK7_PATHS = value_paths(STACK7)[1:]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(STACK7_PATHS), documents), min_size=1, max_size=3))
def test_mutated_valid_stack(mutations: list[tuple[tuple[Any, ...], Any]]) -> None:
    """Replace values deep inside a valid stack: every schema error path gets exercised."""
    data = copy.deepcopy(STACK7)
    for path, value in mutations:
        target = data
        try:
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this place
    _load(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def test_the_unmutated_stack_loads() -> None:
    _load(yaml.safe_dump(STACK7, sort_keys=False))
    load_config_text(yaml.safe_dump(STACK7, sort_keys=False), PATH, environ={})
