"""The dashboard in a real browser: headless Chromium sees the engines' tick counts rise.

A private copy of the stack runs under ``mpsv3 up``; Playwright for Python drives the system's
Chromium (Debian's ``chromium``, installed by ``.ci/run``; Playwright's own browser download is
never used). The page reads its feed's address from the dashboard, opens ws_api's WebSocket
and shows one tick count per engine: every engine the API reports must appear, and rise.

Skipped, with the reason printed, only where no Chromium is installed; a missing Playwright
is a failure (it is a dev dependency).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from mindstack import MindStackFactory, skip_on_windows

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.acceptance, skip_on_windows]

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
#: Headless, no sandbox (CI runs as root), and nothing that reaches out to the network.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE_TIMEOUT_MS = 30_000
RISE_TIMEOUT_MS = 20_000


def find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = candidate if Path(candidate).is_file() else shutil.which(candidate)
        if found:
            return found
    return None


@pytest.fixture
def chromium(request: pytest.FixtureRequest) -> str:
    """The Chromium executable; skips (saying why on the terminal) where there is none."""
    found = find_chromium()
    if found is None:
        reason = (
            "no Chromium found (tried " + ", ".join(CHROMIUM_CANDIDATES) + "); "
            "install Debian's `chromium` package (`.ci/run` does, as root)"
        )
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None:
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                reporter.write_line(f"\nSKIPPED dashboard browser test: {reason}")
        pytest.skip(reason)
    return found


def read_ticks(page: Page) -> dict[str, int]:
    """Engine name -> the tick count the page shows (cells ``#engine-NAME``)."""
    cells: dict[str, str] = page.eval_on_selector_all(
        "td.ticks", "cells => Object.fromEntries(cells.map(c => [c.id, c.textContent]))"
    )
    return {cid.removeprefix("engine-"): int(text) for cid, text in cells.items()}


def test_the_dashboard_shows_every_engines_tick_count_rising(
    mind_stack: MindStackFactory, chromium: str
) -> None:
    from playwright.sync_api import sync_playwright

    stack = mind_stack("browser")
    stack.start()
    stack.wait_all_ready()
    counters = httpx.get(stack.url("WS_PORT", "/api/telemetry/counters"), timeout=5).json()
    engines = sorted(counters["engines"])
    assert len(engines) == 8, counters

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(stack.url("DASHBOARD_PORT", "/"), timeout=PAGE_TIMEOUT_MS)
            page.wait_for_selector("#ws-status[data-state=open]", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_function(
                f"document.querySelectorAll('td.ticks').length >= {len(engines)}",
                timeout=PAGE_TIMEOUT_MS,
            )
            first = read_ticks(page)
            assert sorted(first) == engines
            total_before = int(page.text_content("#tick-total") or "0")
            page.wait_for_function(
                """(before) => Object.entries(before).every(
                       ([name, ticks]) =>
                         Number(document.getElementById('engine-' + name).textContent) > ticks)""",
                arg=first,
                timeout=RISE_TIMEOUT_MS,
            )
            later = read_ticks(page)
            total_after = int(page.text_content("#tick-total") or "0")
            version = page.text_content("#engine-version")
        finally:
            browser.close()

    assert all(later[name] > first[name] for name in engines), (first, later)
    assert total_after > total_before
    assert version == counters["engine_version"]
    live = httpx.get(stack.url("WS_PORT", "/api/telemetry/counters"), timeout=5).json()["engines"]
    assert all(live[name] >= later[name] for name in engines), (later, live)
