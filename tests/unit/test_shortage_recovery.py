"""What a shortage of descriptors must not break for good (issue 15): a log rotation that could
not open its new file, an event subscriber that raises, a timestamp read without an import."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from mpsv3.engine import logfile
from mpsv3.engine.console import utc_second
from mpsv3.engine.events import EventBus
from mpsv3.engine.logfile import RotatingLog
from mpsv3.engine.trouble import Trouble


def test_a_rotation_that_cannot_open_its_new_file_writes_again_once_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chatty.log"
    log = RotatingLog(path, max_bytes=16, backups=2)
    log.write(b"01234567890123\n")
    real_open = logfile.open_log_file

    def out_of_descriptors(_: Path) -> Any:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(logfile, "open_log_file", out_of_descriptors)
    with pytest.raises(OSError):
        log.write(b"lost\n")  # rotated, but no new file
    with pytest.raises(OSError):
        log.write(b"lost too\n")  # still none: and the old file is not moved again
    assert not path.exists() and (tmp_path / "chatty.log.1").read_bytes() == b"01234567890123\n"
    monkeypatch.setattr(logfile, "open_log_file", real_open)
    log.write(b"back\n")
    log.write(b"again\n")
    log.close()
    assert path.read_bytes() == b"back\nagain\n"
    assert (tmp_path / "chatty.log.1").read_bytes() == b"01234567890123\n"
    assert not (tmp_path / "chatty.log.2").exists()


def test_a_failing_subscriber_is_reported_and_the_others_still_get_the_event() -> None:
    bus = EventBus(None)
    trouble = Trouble(bus)
    bus.on_subscriber_error = trouble.subscriber_error
    seen: list[str] = []

    def broken(event: dict[str, Any]) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    bus.subscribe(broken)
    bus.subscribe(lambda event: seen.append(event["event"]))
    bus.emit("stopping", "api")
    bus.emit("stopped", "api")
    assert seen == ["supervisor_error", "stopping", "stopped"]  # reported once, not per event


def test_without_a_handler_a_subscribers_exception_reaches_the_emitter() -> None:
    bus = EventBus(None)
    bus.subscribe(lambda event: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        bus.emit("stopping", "api")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1970-01-01T00:00:00", 0), ("2026-11-24T17:08:00", 1795540080), ("2024-02-29T23:59:59", 1709251199)],
)
def test_a_utc_second_is_read_as_strptime_would(text: str, seconds: int) -> None:
    assert utc_second(text) == seconds


@pytest.mark.parametrize("text", ["", "2026-11-24", "2026/11/24T17:08:00", "2026-11-24T17:08:0x"])
def test_anything_else_is_not_a_utc_second(text: str) -> None:
    with pytest.raises(ValueError):
        utc_second(text)
