"""What ``attach`` stands on: bounded console followers and the control server's streams."""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mpsv3.control.client import follow, request
from mpsv3.control.protocol import socket_path
from mpsv3.control.server import MAX_FOLLOWERS, ControlServer
from mpsv3.engine.console import Console, ConsoleFollower
from mpsv3.errors import MpsvError

NOW = 1_795_000_000.0


@dataclass(frozen=True)
class Instance:
    name: str
    state_dir: Path
    path: Path


# ---------------------------------------------------------------- console followers


def test_a_follower_gets_what_the_console_writes() -> None:
    async def main() -> bytes:
        out = io.BytesIO()
        console = Console(out, colour=False, names=["api"], clock=lambda: NOW)
        follower = ConsoleFollower(asyncio.get_running_loop())
        console.follow(follower)
        console.write_lines("api", b"one\ntwo\n")
        console.supervisor_line("hello")
        got = b""
        while got.count(b"\n") < 3:
            chunk = await asyncio.wait_for(follower.read(), 5)
            assert chunk is not None
            got += chunk
        console.close()
        assert await asyncio.wait_for(follower.read(), 5) is None  # the console closed: the end
        assert got == out.getvalue()
        return got

    assert b"api   | two" in asyncio.run(main())


def test_a_slow_follower_loses_lines_and_is_told_never_blocking_the_console() -> None:
    async def main() -> None:
        out = io.BytesIO()
        console = Console(out, colour=False, names=["api"], clock=lambda: NOW)
        follower = ConsoleFollower(asyncio.get_running_loop(), budget=2000)
        console.follow(follower)
        started = time.monotonic()
        for index in range(500):
            console.write_lines("api", f"line {index:04d} {'x' * 40}\n".encode())
        console.close()  # writes everything queued: the follower never read
        assert time.monotonic() - started < 5
        assert out.getvalue().count(b"\n") == 500
        data = await asyncio.wait_for(follower.read(), 5)
        assert data is not None
        shown = data.count(b"line ")
        assert 0 < shown < 500
        assert f"[{500 - shown} lines not shown here: this follower fell behind]".encode() in data

    asyncio.run(main())


def test_feeding_from_another_thread_wakes_the_reader() -> None:
    async def main() -> bytes | None:
        follower = ConsoleFollower(asyncio.get_running_loop())
        threading.Timer(0.2, follower.feed, args=(b"late\n",)).start()
        return await asyncio.wait_for(follower.read(), 5)

    assert asyncio.run(main()) == b"late\n"


def test_unfollow_ends_the_follower_and_stops_feeding_it() -> None:
    async def main() -> None:
        console = Console(io.BytesIO(), colour=False, names=["api"], clock=lambda: NOW)
        follower = ConsoleFollower(asyncio.get_running_loop())
        console.follow(follower)
        console.unfollow(follower)
        console.write_lines("api", b"after\n")
        console.close()
        assert await asyncio.wait_for(follower.read(), 5) is None

    asyncio.run(main())


# ------------------------------------------------------------------ streaming verbs

pytestmark_unix = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")


class Streams:
    """A streamer that yields numbered lines when told, and records who left."""

    def __init__(self) -> None:
        self.feeds: list[asyncio.Queue[str | None]] = []
        self.closed = 0

    async def __call__(self, message: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        if message["cmd"] == "events":
            yield {"ok": False, "error": "no events here"}
            return
        feed: asyncio.Queue[str | None] = asyncio.Queue()
        self.feeds.append(feed)
        try:
            yield {"ok": True, "result": {"instance": "demo"}}
            while (text := await feed.get()) is not None:
                yield {"text": text}
        finally:
            self.closed += 1


async def answer(message: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": {"echo": message["cmd"]}}


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytestmark_unix
def test_a_stream_flows_until_the_client_leaves_and_other_verbs_still_answer(tmp_path: Path) -> None:
    async def main() -> None:
        where = Instance("demo", tmp_path / ".mpsv3", tmp_path / "services.yaml")
        streams = Streams()
        server = ControlServer(socket_path(where), answer, streamer=streams)
        await server.start()
        try:
            stream = follow(where, {"cmd": "attach"})
            assert await stream.__anext__() == {"instance": "demo"}
            await until(lambda: len(streams.feeds) == 1)
            streams.feeds[0].put_nowait("a\n")
            assert await asyncio.wait_for(stream.__anext__(), 5) == {"text": "a\n"}
            assert (await request(where, {"cmd": "status"}))["result"] == {"echo": "status"}
            await stream.aclose()  # the client leaves: the streamer is closed at once
            await until(lambda: streams.closed == 1)
            await until(lambda: server.connection_count() == 0)
            with pytest.raises(MpsvError, match="no events here"):
                await follow(where, {"cmd": "events"}).__anext__()
        finally:
            await server.close()

    asyncio.run(main())


@pytestmark_unix
def test_followers_are_capped_and_ended_at_once_by_close(tmp_path: Path) -> None:
    async def main() -> None:
        where = Instance("demo", tmp_path / ".mpsv3", tmp_path / "services.yaml")
        streams = Streams()
        server = ControlServer(socket_path(where), answer, streamer=streams)
        await server.start()
        opened = []
        for _ in range(MAX_FOLLOWERS):
            stream = follow(where, {"cmd": "attach"})
            await stream.__anext__()
            opened.append(stream)
        with pytest.raises(MpsvError, match="too many followers"):
            await follow(where, {"cmd": "attach"}).__anext__()
        assert (await request(where, {"cmd": "status"}))["ok"]
        started = time.monotonic()
        await server.close()
        assert time.monotonic() - started < 1.0, "close waited for followers"
        for stream in opened:
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(stream.__anext__(), 5)
            await stream.aclose()
        assert streams.closed == MAX_FOLLOWERS

    asyncio.run(main())


@pytestmark_unix
def test_a_server_without_a_streamer_refuses_streams(tmp_path: Path) -> None:
    async def main() -> None:
        where = Instance("demo", tmp_path / ".mpsv3", tmp_path / "services.yaml")
        server = ControlServer(socket_path(where), answer)
        await server.start()
        try:
            with pytest.raises(MpsvError, match="'attach' is not served"):
                await follow(where, {"cmd": "attach"}).__anext__()
        finally:
            await server.close()

    asyncio.run(main())
