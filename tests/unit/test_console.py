"""The console of ``up``: aligned prefixes, shortened stamps, colours that never read as an error."""

from __future__ import annotations

import calendar
import io
import itertools
import re
import threading
import time

import pytest

from mpsv3.engine import console as console_module
from mpsv3.engine.console import COLOURS, Console, clock_time, is_stamped

NOW = 1_795_000_000.0  # a fixed wall clock for lines without a stamp
ANSI = re.compile(rb"\x1b\[[0-9;]*m")


def local(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def run(names: list[str], writes: list[tuple[str, bytes]], colour: bool = False) -> list[bytes]:
    out = io.BytesIO()
    console = Console(out, colour=colour, names=names, clock=lambda: NOW)
    for name, data in writes:
        if name == "mpsv3":
            console.supervisor_line(data.decode())
        else:
            console.write_lines(name, data)
    console.close()
    return out.getvalue().splitlines()


def test_every_line_has_one_prefix_width_from_the_first_line() -> None:
    lines = run(
        ["db", "autonomy_orchestrator"],
        [("mpsv3", b"instance x"), ("db", b"a\nb\n"), ("autonomy_orchestrator", b"c\n")],
    )
    assert [line.index(b"|") for line in lines] == [len("hh:mm:ss autonomy_orchestrator ")] * 4
    assert lines[1] == f"{local(NOW)} db                    | a".encode()


def test_names_announced_after_the_first_line_keep_the_width() -> None:
    out = io.BytesIO()
    console = Console(out, colour=False, names=["db"], clock=lambda: NOW)
    console.write_lines("db", b"first\n")
    console.set_names(["a_much_longer_service"])
    console.write_lines("db", b"second\n")
    console.close()
    first, second = out.getvalue().splitlines()
    assert first.index(b"|") == second.index(b"|") == len("hh:mm:ss mpsv3 ")


def test_a_line_shows_the_local_time_it_was_read_and_the_service_text_as_it_is() -> None:
    out = io.BytesIO()
    console = Console(out, colour=False, names=["api"], clock=lambda: NOW)
    read_at = calendar.timegm(time.strptime("2026-12-01T15:04:05", "%Y-%m-%dT%H:%M:%S")) + 0.123
    console.write_lines("api", b"listening\n2026-12-01T10:00:00.000Z its own stamp\n", at=read_at)
    console.write_lines("api", b"no time given\n")
    console.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == f"{local(read_at)} api   | listening".encode()
    assert lines[1] == f"{local(read_at)} api   | 2026-12-01T10:00:00.000Z its own stamp".encode()
    assert lines[2] == f"{local(NOW)} api   | no time given".encode()


@pytest.mark.parametrize(
    ("line", "stamped"),
    [
        (b"2026-12-01T15:04:05.123Z hello", True),
        (b"2026-12-01T15:04:05.123Z ", True),
        ("2026-12-01T15:04:05.123Z hello", True),
        (b"2026-12-01T15:04:05.123Zhello", False),
        (b"2026-12-01 15:04:05.123Z hello", False),
        (b"hello", False),
        (b"", False),
        ("é026-12-01T15:04:05.123Z hello", False),
    ],
)
def test_is_stamped(line: bytes | str, stamped: bool) -> None:
    assert is_stamped(line) is stamped


def test_clock_time_of_a_malformed_second_is_its_clock_part() -> None:
    assert clock_time("2026-13-45T99:04:05") == "99:04:05"


def test_service_colours_are_never_red_or_yellow_and_neighbours_differ() -> None:
    names = [f"svc{i}" for i in range(12)]
    lines = run(names, [(n, b"x\n") for n in names], colour=True)
    codes = [ANSI.findall(line)[0] for line in lines]
    assert all(code[2:-1] not in (b"31", b"91", b"33", b"93", b"1;31") for code in codes)
    assert all(a != b for a, b in itertools.pairwise(codes))
    assert {c.decode()[2:-1] for c in codes} == set(COLOURS)


def test_supervisor_lines_are_coloured_by_level() -> None:
    out = io.BytesIO()
    console = Console(out, colour=True, names=["db"], clock=lambda: NOW)
    console.supervisor_line("all good")
    console.supervisor_line("ERROR: port 80 is held", "error")
    console.close()
    info, error = out.getvalue().splitlines()
    assert info.split(b" ", 1)[1].startswith(b"\x1b[1mmpsv3")
    assert error.split(b" ", 1)[1].startswith(b"\x1b[31mmpsv3")


class Gate(io.BytesIO):
    """A terminal that does not read until told to."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.open.wait(10)
        return super().write(data)


def test_a_slow_terminal_loses_lines_with_a_notice_never_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_module, "CONSOLE_QUEUE_BYTES", 1000)
    out = Gate()
    console = Console(out, colour=False, names=["flood"], clock=lambda: NOW)
    started = time.monotonic()
    for _ in range(100):
        console.write_lines("flood", b"x" * 99 + b"\n")
    assert time.monotonic() - started < 2.0
    out.open.set()
    console.write_lines("flood", b"after\n")
    console.close()
    text = out.getvalue().decode()
    assert "lines of flood not shown: the console is too slow; see logs/flood.log" in text
    assert text.count("| " + "x" * 99) < 100


def test_lines_before_any_name_is_known_do_not_fix_the_width() -> None:
    """Today's supervisor announces its services one by one after its first line."""
    out = io.BytesIO()
    console = Console(out, colour=False, clock=lambda: NOW)
    console.supervisor_line("instance x")
    for name in ("db", "autonomy_orchestrator"):
        console.set_names([name])
    console.write_lines("db", b"up\n")
    console.set_names(["a_name_longer_than_any_other"])  # after the first named line: too late
    console.write_lines("autonomy_orchestrator", b"up\n")
    console.close()
    _first, *named = out.getvalue().splitlines()
    assert [line.index(b"|") for line in named] == [len("hh:mm:ss autonomy_orchestrator ")] * 2
