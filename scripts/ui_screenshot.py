"""Make ``docs/ui.png``: a real screenshot of ``mpsv3 ui`` on a running stack.

How: the UI runs headless (Textual's ``run_test``) against the supervisor of a config,
over its real control socket; once every service has a state and the log pane has lines,
Textual exports the screen as SVG, and headless Chromium (Debian's ``chromium``, driven by
Playwright with ``executable_path``: no browser download) renders that SVG to PNG. When no
supervisor runs for the config, the script starts ``mpsv3 up`` for it and stops it after.

    .venv/bin/python scripts/ui_screenshot.py                       # the demo stack
    .venv/bin/python scripts/ui_screenshot.py -c my/services.yaml -o shot.png --size 120x32

Exit status 0 with the PNG's path on stdout; 1 with one line saying why otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "mind-protocol" / "services.yaml"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SETTLED = frozenset({"ready", "unhealthy", "backoff", "quarantined", "stopped", "exited", "completed"})


class Failure(Exception):
    """Why no screenshot was made (one line)."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--config", type=Path, default=DEMO, help="the stack's services.yaml")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "ui.png", help="the PNG to write")
    parser.add_argument("--svg", type=Path, help="also keep Textual's SVG export here")
    parser.add_argument("--size", default="120x34", help="terminal COLUMNSxLINES (default 120x34)")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds of logs before the shot")
    parser.add_argument("--keys", default="down", help="keys pressed before the shot (Textual names, "
                        "space-separated; default: `down`, the second service's log)")
    parser.add_argument("--scale", type=float, default=1.5, help="pixels per SVG pixel (default 1.5)")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds for `up` to settle")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="VAR=VALUE")
    return parser.parse_args(argv)


def find_chromium() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        found = candidate if Path(candidate).is_file() else shutil.which(candidate)
        if found:
            return found
    raise Failure("no Chromium found: install Debian's `chromium` package")


def ask_status(target: Any) -> dict[str, Any] | None:
    """The status document, or None when no supervisor runs for ``target``."""
    from mpsv3.control.client import request
    from mpsv3.control.protocol import NotRunning

    try:
        reply = asyncio.run(request(target, {"cmd": "status"}, 10.0))
    except NotRunning:
        return None
    if not reply["ok"]:
        raise Failure(f"the supervisor refused the status request: {reply.get('error')}")
    return dict(reply["result"])


def start_stack(config: Path, assignments: list[str], timeout_s: float, target: Any) -> subprocess.Popen[bytes]:
    """``mpsv3 up`` for ``config``, in a session of its own, once every service has settled."""
    sets = [part for value in assignments for part in ("--set", value)]
    log = open(config.parent / ".ui_screenshot_up.log", "wb")  # noqa: SIM115 - the child's output
    process = subprocess.Popen([sys.executable, "-m", "mpsv3", "up", "-c", str(config), *sets],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failure(f"`mpsv3 up` exited with {process.returncode}; see {log.name}")
        status = ask_status(target)
        if status and all(s.get("state") in SETTLED for s in status.get("services") or []):
            return process
        time.sleep(0.5)
    stop_stack(process)
    raise Failure(f"the stack did not settle within {timeout_s:g}s; see {log.name}")


def stop_stack(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def export_svg(target: Any, size: tuple[int, int], settle_s: float, keys: list[str]) -> str:
    """The UI's screen as SVG once the table is filled and the log pane has lines."""
    from textual.widgets import DataTable, Log

    from mpsv3.ui.app import MpsvUi

    app = MpsvUi(target, refresh_s=0.5)

    async def shoot() -> str:
        async with app.run_test(size=size) as pilot:
            deadline = time.monotonic() + 30
            while app.query_one("#services", DataTable).row_count == 0 and time.monotonic() < deadline:
                await pilot.pause(0.2)
            await pilot.press(*keys)
            await pilot.pause(settle_s)
            if not app.query_one("#log", Log).lines:
                await pilot.press("m")  # nothing logged by the first service: show every log
                await pilot.pause(1.0)
            return app.export_screenshot(title="mpsv3 ui")

    return asyncio.run(shoot())


def svg_to_png(svg: str, output: Path, scale: float) -> None:
    """Render the SVG with headless Chromium, ``scale`` device pixels per SVG pixel."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(device_scale_factor=scale)
            page.set_content(f"<html><body style='margin:0;background:#000'>{svg}</body></html>")
            output.parent.mkdir(parents=True, exist_ok=True)
            page.locator("svg").first.screenshot(path=str(output))
        finally:
            browser.close()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        columns, lines = (int(part) for part in args.size.lower().split("x"))
    except ValueError:
        print(f"ui_screenshot: --size wants COLUMNSxLINES, got {args.size!r}", file=sys.stderr)
        return 1
    from mpsv3.cli.client_verbs import locate
    from mpsv3.errors import ConfigInvalid, MpsvError

    process = None
    try:
        target = locate(args.config, args.assignments)
        if ask_status(target) is None:
            process = start_stack(args.config, args.assignments, args.start_timeout, target)
        svg = export_svg(target, (columns, lines), args.settle, args.keys.split())
        if args.svg is not None:
            args.svg.write_text(svg, encoding="utf-8")
        svg_to_png(svg, args.output, args.scale)
    except (Failure, MpsvError, ConfigInvalid, OSError) as exc:
        print(f"ui_screenshot: {exc}", file=sys.stderr)
        return 1
    finally:
        if process is not None:
            stop_stack(process)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
