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

Ownership: the supervisor owns one :class:`ControlServer` and gives it the handler; the server
and its connection tasks live on the supervisor's event loop (no lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpsv3._compat import timeout
from mpsv3.control.protocol import Handler, RequestError, encode, error_reply, parse_request
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
    ) -> None:
        self.path = path
        self._handler = handler
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
            if self._make_room(conn):
                reply = await self._answer(reader, writer, conn)
            else:
                reply = error_reply(f"server busy: {self._cap} requests in progress")
            if not conn.evicted:
                async with timeout(WRITE_TIMEOUT_S):
                    writer.write(encode(reply))
                    await writer.drain()
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
    ) -> dict[str, Any]:
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
        conn.busy = True
        try:
            return await self._handle(message)
        finally:
            conn.busy = False

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


async def _discard_line(reader: asyncio.StreamReader, budget: int) -> None:
    """Skip the rest of an oversized line (up to ``budget`` bytes) so that its sender can
    read the error reply; a longer one is cut off, never held in memory."""
    while budget > 0:
        chunk = await reader.read(min(65536, budget))
        if not chunk or b"\n" in chunk:
            return
        budget -= len(chunk)
