"""``lazy_module``: nothing imported until used, and a first use from several threads at once
sees the whole module (the port check's worker thread and the loop, issue 15)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpsv3._lazy import lazy_module

SLOW_MODULE = """
import time
early = 1
time.sleep(0.3)  # another thread asks for `late` while this module is half loaded
late = 2
"""


@pytest.fixture
def slow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"mpsv3_slow_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_the_module_is_imported_at_its_first_attribute_only(slow_module: str) -> None:
    module = lazy_module(slow_module)
    assert slow_module not in sys.modules
    assert module.late == 2
    assert slow_module in sys.modules


def test_threads_that_use_it_first_together_all_see_the_whole_module(slow_module: str) -> None:
    module = lazy_module(slow_module)
    seen: list[object] = []

    def use() -> None:
        try:
            seen.append(module.late)
        except AttributeError as error:
            seen.append(error)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [2] * 8


def test_a_loaded_module_is_returned_as_it_is() -> None:
    assert lazy_module("sys") is sys


def test_a_missing_module_is_refused_at_once() -> None:
    with pytest.raises(ImportError):
        lazy_module("mpsv3_no_such_module")
