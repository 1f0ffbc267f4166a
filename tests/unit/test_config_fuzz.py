"""Fuzz the real ``mpsv3 check``: random and mutated configs never crash it (issue 15).

Every document goes through the command's own entry (``mpsv3.cli.main.main``, in-process,
with ``--explain``), and through the client commands' config reading (``locate_instance``).
Allowed outcomes: exit 0, or exit 78 with every stderr line ``FILE:LINE: message`` (or
``FILE: message``), FILE being the config or an env file beside it. Never a traceback, never
another exit code, never more than 2 s of CPU for one document.

Three generators share the documents: random YAML documents built from the schema's keys and
a vocabulary of hostile values; seed configs (``tests/unit/configs/**``, ``examples/**``)
mutated as data (a value replaced, a key dropped or added, a service duplicated); and the
seeds mutated as text (lines dropped, repeated, swapped; characters and tokens inserted).

``MPSV3_FUZZ_DOCUMENTS`` sets the number of documents: 1,000 by default (CI, about 20 s),
``MPSV3_FUZZ_DOCUMENTS=10000`` for the long run.
"""

from __future__ import annotations

import copy
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from mpsv3.cli.main import main
from mpsv3.config.instance import locate_instance
from mpsv3.config.schema import ServiceSpec, StackSpec
from support import value_paths

DOCUMENTS = int(os.environ.get("MPSV3_FUZZ_DOCUMENTS", "1000"))
CPU_LIMIT_S = 2.0
ROOT = Path(__file__).parents[2]
ENV_FILES = {
    ".env": "SECRET=s3cr3t\nexport DB_URL='postgres://app@127.0.0.1/app'\n",
    ".env.local": "SECRET=local\n",
}


def _seed_texts() -> list[str]:
    """Every config of the repository's tests and examples (each a mapping with services)."""
    paths = sorted({*ROOT.glob("tests/unit/configs/**/*.yaml"), *ROOT.glob("examples/**/*.yaml")})
    texts = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        if isinstance(data, dict) and "services" in data:
            texts.append(text)
    return texts


SEED_TEXTS = _seed_texts()
SEEDS = [yaml.safe_load(text) for text in SEED_TEXTS]


def _schema_keys(model: type[BaseModel], found: set[str]) -> set[str]:
    for name, field in model.model_fields.items():
        found.add(name)
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (candidate, *getattr(candidate, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner is not model:
                    _schema_keys(inner, found)
    return found


KEYS = sorted(_schema_keys(StackSpec, set()) | _schema_keys(ServiceSpec, set()) | {"<<", "x"})

HOSTILE: list[Any] = [
    "x\0y", "", " ", "a" * 300, "${A:-" * 60 + "x" + "}" * 60, "${UNDEFINED}",
    "${MPSV3_REPLICA}", "80${MPSV3_REPLICA}", "$$", "${", "(a)\\1", "(?=x)", "^(a+)+$", "[",
    "B=C", "=", "?.env.local", ".env", "?", "?.env.none", ".env.none", "/dev/zero", "root",
    "0", "no-such-user-mpsv3", "signal:SIGHUP", "signal:NOPE", "http://[::1", "http://h:99999/",
    "sh -c 'x", "task", "service", "always", "never", "main", "group", "debug", "a b",
    "${WORKERS:-3}", "-1", "1000", 0, -1, 1, 2, 3, 1000, 1001, 65535, 65536, 2**70, 1.5,
    math.nan, math.inf, True, False, None, [], {}, ["a"], {"a": "b"}, {"tcp": {"port": 1}},
    {"log": {"pattern": "(a)\\1"}}, {"policy": "always"},
]  # fmt: skip

TEXT_TOKENS = [
    "\n", "\t", ": ", "- ", "[", "]", "{", "}", "&a ", "*a", "<<: *a\n", "? ", "!!binary ", "#",
    "'", '"', "\\0", "${", "$$", "\0", "\ufeff", "  replicas: 1000\n", "    kind: task\n",
    "    env_file: [.env, ?.env.local]\n", "    readiness: {log: {pattern: '(a)\\1'}}\n",
    "    env: {B=C: x}\n", "    user: no-such-user-mpsv3\n", "    enabled: false\n",
    "    profiles: [debug]\n", "    restart: {policy: never}\n",
]  # fmt: skip

scalars = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12), st.integers(-5, 70000))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=20,
)
def _likely(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value of a key, sometimes (one draw in ten) anything at all."""
    return st.integers(0, 9).flatmap(lambda n: values if n == 7 else strategy)


_PROBES = [
    {"tcp": {"port": 8000}}, {"http_get": {"url": "http://127.0.0.1:8000/"}},
    {"exec": {"cmd": "true"}}, {"redis_ping": {}}, {"tcp": {"port": "80${MPSV3_REPLICA}"}},
]  # fmt: skip
_READY_ONLY = [{"log": {"pattern": "ready in \\d+"}}, {"log": {"pattern": "(a)\\1"}}, {"notify": True}]
_IDS = ["s0", "s1", "s2", "s3", "nope"]

SERVICE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "cmd": st.sampled_from(["run", ["python", "-m", "x", "${A:-1}"], "sh -c 'echo hi'"]),
    "shell": st.booleans(),
    "cwd": st.sampled_from([".", "sub", "/tmp"]),
    "env": st.dictionaries(
        st.sampled_from(["A", "B", "PORT", "B=C", "", "MPSV3_REPLICA"]),
        st.one_of(st.sampled_from(["1", "${A:-x}", "x\0y", "${MPSV3_REPLICA}"]), st.integers(0, 9)),
        max_size=3,
    ),
    "requires": st.lists(st.sampled_from(_IDS), max_size=3),
    "criticality": st.sampled_from(["critical", "core", "optional"]),
    "ports": st.lists(
        st.one_of(st.integers(1, 65535), st.sampled_from(["80${MPSV3_REPLICA}", "${P:-8080}"])),
        max_size=2,
    ),
    "readiness": st.sampled_from(_PROBES + _READY_ONLY).map(
        lambda probe: {**probe, "timeout_s": 5}
    ),
    "liveness": st.sampled_from(_PROBES + _READY_ONLY),
    "restart": st.fixed_dictionaries(
        {"policy": st.sampled_from(["always", "on-failure", "never"])},
        optional={"max_retries": st.integers(0, 5), "backoff": st.just({"base_ms": 0})},
    ),
    "stop": st.fixed_dictionaries({"signal": st.sampled_from(["SIGINT", "TERM", "SIGHUP"])}),
    "watch": st.fixed_dictionaries(
        {"paths": st.sampled_from([["*.py"], ["!x", "y"]])},
        optional={
            "on_change": st.sampled_from(["restart", "signal:SIGHUP", "none"]),
            "signal_to": st.sampled_from(["main", "group"]),
        },
    ),
    "kind": st.sampled_from(["service", "task"]),
    "user": st.sampled_from(["root", "0", "no-such-user-mpsv3"]),
    "group": st.sampled_from(["root", "0", "no-such-group-mpsv3"]),
    "env_file": st.one_of(
        st.lists(st.sampled_from([".env", "?.env.local", "?.env.none", ".env.none"]), max_size=3),
        st.just(".env"),
    ),
    "replicas": st.one_of(st.integers(1, 4), st.sampled_from([1000, "${WORKERS:-2}"])),
    "enabled": st.booleans(),
    "profiles": st.lists(st.sampled_from(["debug", "ops"]), max_size=2),
    "limits": st.fixed_dictionaries({"memory_mb": st.integers(1, 1000)}),
}


def _service(n: int) -> st.SearchStrategy[dict[str, Any]]:
    optional = {key: _likely(strategy) for key, strategy in SERVICE_VALUES.items() if key != "cmd"}
    return st.fixed_dictionaries(
        {"id": st.just(f"s{n}"), "cmd": _likely(SERVICE_VALUES["cmd"])}, optional=optional
    )


services = st.integers(1, 4).flatmap(lambda count: st.tuples(*(_service(n) for n in range(count))))
documents = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 1, 1, 2]), "services": services.map(list)},
    optional={
        "env": _likely(SERVICE_VALUES["env"]),
        "name": _likely(st.sampled_from(["shop", "a" * 200, "bad name"])),
        "state_dir": _likely(st.sampled_from([".state", "/tmp/x", "${MPSV3_CONFIG_DIR}/s"])),
        "metrics": _likely(st.fixed_dictionaries({"port": st.integers(1, 65535)})),
        "legacy_locks": _likely(st.lists(st.sampled_from(["*.pid", "!x", "["]), max_size=2)),
    },
)


# ------------------------------------------------------------------------------- checking


class Checker:
    """Runs documents through ``mpsv3 check`` in one folder and checks each outcome."""

    def __init__(self, folder: Path, capfd: pytest.CaptureFixture[str]) -> None:
        self.folder = folder
        self.capfd = capfd
        self.count = 0
        self.path = folder / "services.yaml"
        for name, text in ENV_FILES.items():
            (folder / name).write_text(text)
        self.line = re.compile(rf"{re.escape(str(folder))}/[^\n:]+(:\d+)?: \S.*")

    def check(self, text: str) -> None:
        self.count += 1
        self.path.write_text(text, encoding="utf-8", errors="surrogatepass")
        self.capfd.readouterr()
        started = time.process_time()
        code = _exit_code(lambda: main(["check", "-c", str(self.path), "--explain"]))
        locate_instance(self.path)  # the client commands' reading never raises either
        spent = time.process_time() - started
        err = self.capfd.readouterr().err
        assert code in (0, 78), f"exit {code}: {err[-2000:]}"
        lines = err.splitlines()
        if code == 78:
            assert lines, "exit 78 without a message"
        bad = [line for line in lines if not self.line.fullmatch(line)]
        assert not bad, f"stderr lines not shaped FILE:LINE: message: {bad[:5]}"
        assert spent < CPU_LIMIT_S, f"{spent:.2f} s of CPU for one document"


def _exit_code(run: Callable[[], None]) -> int:
    try:
        run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def _share(part: float) -> int:
    return max(1, math.ceil(DOCUMENTS * part))


FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


# ------------------------------------------------------------------------------ generators


def _fuzz(
    checker: Checker, part: float, drawn: st.SearchStrategy[Any], text: Callable[[Any], str]
) -> None:
    """``part`` of :data:`DOCUMENTS` through ``checker``: each ``text(what was drawn)``."""
    share = _share(part)

    @settings(FUZZ_SETTINGS, max_examples=share)
    @given(drawn)
    def run(value: Any) -> None:
        checker.check(text(value))

    run()
    assert checker.count >= share


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def test_random_documents(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _fuzz(Checker(tmp_path, capfd), 0.3, documents, _dump)


SEED_PATHS = [value_paths(seed)[1:] for seed in SEEDS]


def _mutate(data: Any, draw: Callable[[st.SearchStrategy[Any]], Any], paths: list[Any]) -> None:
    """One mutation of ``data`` in place: replace, drop, add, or duplicate a service."""
    operation = draw(st.sampled_from(["replace", "replace", "drop", "add", "duplicate"]))
    path = draw(st.sampled_from(paths))
    try:
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if operation == "replace":
            parent[path[-1]] = draw(values)
        elif operation == "drop":
            del parent[path[-1]]
        elif operation == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.sampled_from(KEYS))] = draw(values)
        elif operation == "duplicate" and isinstance(data.get("services"), list):
            items = data["services"]
            items.append(copy.deepcopy(items[draw(st.integers(0, max(0, len(items) - 1)))]))
    except (KeyError, IndexError, TypeError):
        pass  # an earlier mutation removed or retyped this place


def _mutated_seed_data(data: st.DataObject) -> str:
    index = data.draw(st.integers(0, len(SEEDS) - 1))
    document = copy.deepcopy(SEEDS[index])
    for _ in range(data.draw(st.integers(1, 4))):
        _mutate(document, data.draw, SEED_PATHS[index])
    return _dump(document)


def test_mutated_seed_data(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _fuzz(Checker(tmp_path, capfd), 0.4, st.data(), _mutated_seed_data)


def _mutated_seed_text(data: st.DataObject) -> str:
    lines = data.draw(st.sampled_from(SEED_TEXTS)).splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, max(0, len(lines) - 1)))
        operation = data.draw(st.sampled_from(["drop", "repeat", "swap", "insert", "cut"]))
        if operation == "drop" and lines:
            del lines[where]
        elif operation == "repeat" and lines:
            lines.insert(where, lines[where])
        elif operation == "swap" and len(lines) > 1:
            other = data.draw(st.integers(0, len(lines) - 1))
            lines[where], lines[other] = lines[other], lines[where]
        elif operation in ("insert", "cut") and lines:
            line = lines[where]
            at = data.draw(st.integers(0, len(line)))
            token = data.draw(st.one_of(st.sampled_from(TEXT_TOKENS), st.text(max_size=3)))
            lines[where] = line[:at] + token + (line[at:] if operation == "insert" else "\n")
    return "".join(lines)


def test_mutated_seed_text(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _fuzz(Checker(tmp_path, capfd), 0.3, st.data(), _mutated_seed_text)


def test_the_seeds(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Every seed passes the checker as it is, and the test configs are valid: the mutations
    start from something real. (An example may need what this folder lacks: its own env
    files, a user of its machine; it is not required to be valid here.)"""
    assert len(SEED_TEXTS) >= 3
    checker = Checker(tmp_path, capfd)
    for text in SEED_TEXTS:
        checker.check(text)
    if os.name != "posix":
        return  # production.yaml runs services as root: POSIX accounts
    for path in sorted(ROOT.glob("tests/unit/configs/*.yaml")):
        checker.path.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        assert _exit_code(lambda: main(["check", "-c", str(checker.path)])) == 0, path
