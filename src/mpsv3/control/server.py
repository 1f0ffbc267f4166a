"""The control server: the local socket that the running ``up`` answers.

Why a local socket and nothing else: status, restart, stop, reload and down act on one running
supervisor owned by one user, so the transport is a Unix socket (mode 0600 in a 0700
directory; on Linux a peer of another uid is refused by ``SO_PEERCRED`` too) or, on Windows, a
named pipe. Nothing listens on the network.

A request that is not a valid command (not JSON, not an object, no ``cmd``, too big, cut
short) gets ``{"ok": false, "error": ...}`` and the connection closes; the handler never sees
it and no exception leaves the server, so a bad client can never stop the supervisor.

Any process of the same uid (a supervised service included) can connect, so the server also
bounds what a flood costs: at most ``max_connections`` open at once (a quarter of the fd
limit, 64 at most), the longest-waiting idle one dropped to make room for a newcomer (so
``status`` gets in even while the slots are full of idle connections), an idle client cut
after ``read_timeout_s``, an oversized line never buffered, and one log line per kind of
error (:class:`~mpsv3.platform.pressure.ErrorDigest`), not one per occurrence.

A streaming request (``attach``, ``events``) passes the same gates, then its connection
stays open: the streamer's messages are written as they come, until the client closes (the
server watches for its end of file) or the streamer ends. Followers are bounded too: at most
``MAX_FOLLOWERS`` at once; they are never "busy", so the cap may drop the oldest one to let a
``status`` in; a follower that reads nothing for ``STREAM_WRITE_TIMEOUT_S`` is cut; at
:meth:`ControlServer.close` they are ended at once (nothing waits for them).

Ownership: the supervisor owns one :class:`ControlServer` and gives it the handler; the server
and its connection tasks live on the supervisor's event loop (no lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpsv3._compat import timeout
from mpsv3.control.protocol import (
    STREAM_COMMANDS,
    Handler,
    RequestError,
    Streamer,
    encode,
    error_reply,
    parse_request,
)
from mpsv3.errors import MpsvError
from mpsv3.platform import LocalServer, current_uid, peer_uid, start_local_server
from mpsv3.platform.pressure import ErrorDigest, open_files_limit

_log = logging.getLogger("mpsv3.control.server")

#: Concurrent connections at most; lowered to a quarter of a small fd limit.
MAX_CONNECTIONS = 64
#: How long a reply may take to leave (a client that never reads).
WRITE_TIMEOUT_S = 5.0
#: How much of an oversized request is skipped so its sender can still read the error; past
#: that the connection is closed (a 50 MB payload is not read to its end).
DISCARD_LIMIT = 1 << 20
#: Streaming connections (``attach``, ``events``) open at once at most.
MAX_FOLLOWERS = 16
#: How long one message of a stream may take to leave before the follower is cut.
STREAM_WRITE_TIMEOUT_S = 30.0


def default_max_connections(fd_limit: int | None) -> int:
    """The connection cap for a process allowed ``fd_limit`` descriptors (None: unlimited).

    A quarter of the limit (at least 4), never above :data:`MAX_CONNECTIONS`, so a flood of
    control connections leaves the services' pipes, probes and log files their descriptors.
    """
    if fd_limit is None:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, fd_limit // 4))


class _ReadError(Exception):
    """A request line that could not be read; ``kind`` names it for the log digest."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(eq=False)
class _Connection:
    """One open connection, as the cap sees it."""

    writer: asyncio.StreamWriter
    busy: bool = False  # inside the handler: never dropped to make room
    evicted: bool = False  # dropped to make room: no reply, no log line
    order: int = 0  # accept order: the lowest idle one is dropped first
    streaming: bool = False  # a follower (attach, events): ended at once by close()


class ControlServer:
    """Serves the control socket with ``handler`` until :meth:`close`.

    Args:
        path: the socket path (:func:`socket_path`) or, on Windows, the pipe name.
        handler: answers a checked request with a reply ``{"ok": true, "result": ...}`` or
            ``{"ok": false, "error": ...}``; raising ``MpsvError`` is an error reply too.
        max_request_bytes: a longer request line is refused.
        read_timeout_s: a client that has not sent its line by then is answered with an
            error and dropped.
        allowed_uid: the peer uid accepted on Linux (default: our own effective uid).
        max_connections: connections open at once (default: :func:`default_max_connections`
            of the fd limit).
        streamer: answers the streaming verbs (:data:`STREAM_COMMANDS`); without it they
            are refused with an error reply.

    The transport (Unix socket or named pipe, stale-socket handling, file modes, accept
    backoff) is :func:`mpsv3.platform.start_local_server`; this class owns framing, replies
    and the connection cap.
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        max_request_bytes: int = 65536,
        read_timeout_s: float = 5.0,
        allowed_uid: int | None = None,
        max_connections: int | None = None,
        streamer: Streamer | None = None,
    ) -> None:
        self.path = path
        self._handler = handler
        self._streamer = streamer
        self._max = max_request_bytes
        self._read_timeout_s = read_timeout_s
        self._uid = current_uid() if allowed_uid is None else allowed_uid
        self._cap = max_connections or default_max_connections(open_files_limit())
        self._server: LocalServer | None = None
        self._connections: dict[asyncio.Task[Any], _Connection] = {}
        self._opened = 0
        self.digest = ErrorDigest(_log)

    async def start(self) -> None:
        """Listen; a stale socket file is replaced only if no server answers on it."""
        self._server = await start_local_server(self.path, self._on_connection, limit=self._max)

    async def close(self) -> None:
        """Stop listening, let in-flight requests finish briefly, then cut them; idempotent.

        A handler may call this (``down``): its own connection is not waited for.
        """
        if self._server is None:
            return
        self._server.close()
        self._server = None
        for conn in self._connections.values():
            if conn.streaming:  # a follower never ends by itself: hang up on it
                conn.writer.transport.abort()
        others = [t for t in self._connections if t is not asyncio.current_task()]
        if others:
            _done, pending = await asyncio.wait(others, timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    def connection_count(self) -> int:
        """Connections open now (for tests and metrics)."""
        return len(self._connections)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        self._opened += 1
        conn = _Connection(writer, order=self._opened)
        if task is not None:
            self._connections[task] = conn
        try:
            answer: dict[str, Any] | AsyncIterator[dict[str, Any]]
            if self._make_room(conn):
                answer = await self._answer(reader, writer, conn)
            else:
                answer = error_reply(f"server busy: {self._cap} requests in progress")
            if isinstance(answer, dict):
                if not conn.evicted:
                    async with timeout(WRITE_TIMEOUT_S):
                        writer.write(encode(answer))
                        await writer.drain()
            else:
                await self._stream(reader, writer, answer)
        except Exception as exc:  # a broken peer must never reach the event loop
            if not conn.evicted:
                self.digest.report(
                    f"connection-{type(exc).__name__}",
                    f"control: a connection failed: {exc!r}", level=logging.INFO,
                )
        finally:
            if task is not None:
                self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _make_room(self, newcomer: _Connection) -> bool:
        """Keep at most the cap open: drop the oldest idle connection; False if none is idle."""
        live = [c for c in self._connections.values() if not c.evicted]  # evicted: closing
        if len(live) <= self._cap:
            return True
        idle = [c for c in live if c is not newcomer and not c.busy]
        if not idle:
            self.digest.report("busy", f"control: all {self._cap} connections busy; refused one")
            return False
        victim = min(idle, key=lambda c: c.order)
        victim.evicted = True
        victim.writer.transport.abort()
        self.digest.report(
            "evicted",
            f"control: {self._cap} connections open (the cap); dropped the longest-waiting "
            "idle one to make room",
        )
        return True

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection
    ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        # The line is read before a stranger is refused: closing a Unix socket with unread
        # data resets the connection on Linux, and the peer would lose the reply.
        line: bytes | _ReadError
        try:
            async with timeout(self._read_timeout_s):
                line = await self._read_line(reader)
        except TimeoutError:
            line = _ReadError(
                "idle", f"bad request: no complete line within {self._read_timeout_s:g}s"
            )
        except _ReadError as exc:
            line = exc
        if conn.evicted:
            return error_reply("dropped")
        refusal = self._refusal(writer)
        if refusal is not None:
            self.digest.report("peer-uid", f"control: {refusal}")
            return error_reply(refusal)
        if isinstance(line, _ReadError):
            level = logging.DEBUG if line.kind == "empty" else logging.WARNING
            self.digest.report(line.kind, f"control: {line}", level=level)
            return error_reply(str(line))
        try:
            message = parse_request(line)
        except RequestError as exc:
            self.digest.report("bad-request", f"control: {exc}")
            return error_reply(str(exc))
        if message["cmd"] in STREAM_COMMANDS:
            return await self._open_stream(message, conn)
        conn.busy = True
        try:
            return await self._handle(message)
        finally:
            conn.busy = False

    async def _open_stream(
        self, message: dict[str, Any], conn: _Connection
    ) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
        """The streamer's generator once its first message (the reply) said ok; else the reply."""
        if self._streamer is None:
            return error_reply(f"{message['cmd']!r} is not served by this supervisor")
        followers = sum(1 for c in self._connections.values() if c.streaming and not c.evicted)
        if followers >= MAX_FOLLOWERS:
            self.digest.report("followers", f"control: {MAX_FOLLOWERS} followers already; refused one")
            return error_reply(f"too many followers: {MAX_FOLLOWERS} already attached")
        stream = self._streamer(message)
        try:
            first = await stream.__anext__()
        except StopAsyncIteration:
            return error_reply("internal error: the stream ended before its reply")
        except Exception as exc:
            self.digest.report(
                f"streamer-{type(exc).__name__}", f"control: the streamer failed on {message!r}",
                level=logging.ERROR, exc_info=True,
            )
            return error_reply(f"internal error: {type(exc).__name__}: {exc}")
        if first.get("ok") is not True:
            await _aclose(stream)
            return first
        conn.streaming = True
        return _Opened(first, stream)

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        stream: AsyncIterator[dict[str, Any]],
    ) -> None:
        """Write the reply, then every message, until the stream ends or the client leaves."""
        eof = asyncio.ensure_future(_until_eof(reader))
        item: asyncio.Future[dict[str, Any]] | None = None
        try:
            while True:
                item = asyncio.ensure_future(stream.__anext__())
                done, _ = await asyncio.wait({item, eof}, return_when=asyncio.FIRST_COMPLETED)
                if item not in done:  # the client closed its end (or was hung up on)
                    return
                try:
                    message = item.result()
                except StopAsyncIteration:
                    return
                item = None
                async with timeout(STREAM_WRITE_TIMEOUT_S):
                    writer.write(encode(message))
                    await writer.drain()
        finally:
            # The streamer's pending step is cancelled inside it (its ``finally`` runs), then
            # it is closed; nothing of a follower outlives its connection.
            pending = [task for task in (item, eof) if task is not None and not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            with contextlib.suppress(Exception):
                await _aclose(stream)

    async def _handle(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = await self._handler(message)
        except MpsvError as exc:
            return error_reply(str(exc))
        except Exception as exc:
            self.digest.report(
                f"handler-{type(exc).__name__}",
                f"control: the handler failed on {message!r}", level=logging.ERROR, exc_info=True,
            )
            return error_reply(f"internal error: {type(exc).__name__}: {exc}")
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            return error_reply("internal error: the supervisor gave no reply")
        return reply

    async def _read_line(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise _ReadError(
                    "cut-short", "bad request: the connection closed before the end of the line"
                ) from None
            raise _ReadError(
                "empty", "bad request: the connection closed before any request"
            ) from None
        except asyncio.LimitOverrunError:
            await _discard_line(reader, DISCARD_LIMIT)
            raise _ReadError("too-long", f"bad request: longer than {self._max} bytes") from None

    def _refusal(self, writer: asyncio.StreamWriter) -> str | None:
        uid = peer_uid(writer)
        if uid is None or self._uid is None or uid == self._uid:
            return None
        return f"permission denied: uid {uid} is not the supervisor's uid {self._uid}"


class _Opened:
    """A stream whose reply is ready: yields the reply first, then the streamer's messages."""

    def __init__(self, first: dict[str, Any], stream: AsyncIterator[dict[str, Any]]) -> None:
        self._first: dict[str, Any] | None = first
        self._stream = stream

    def __aiter__(self) -> _Opened:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._stream.__anext__()

    async def aclose(self) -> None:
        await _aclose(self._stream)


async def _aclose(stream: AsyncIterator[dict[str, Any]]) -> None:
    """Close an async generator (its ``finally`` runs: the follower unsubscribes)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Read (and ignore) whatever a follower sends, until it closes its end."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass


async def _discard_line(reader: asyncio.StreamReader, budget: int) -> None:
    """Skip the rest of an oversized line (up to ``budget`` bytes) so that its sender can
    read the error reply; a longer one is cut off, never held in memory."""
    while budget > 0:
        chunk = await reader.read(min(65536, budget))
        if not chunk or b"\n" in chunk:
            return
        budget -= len(chunk)
