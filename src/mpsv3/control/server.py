"""The control server: the local socket that the running ``up`` answers.

Why a local socket and nothing else: status, restart, stop, reload and down act on one running
supervisor owned by one user, so the transport is a Unix socket (mode 0600 in a 0700
directory; on Linux a peer of another uid is refused by ``SO_PEERCRED`` too) or, on Windows, a
named pipe. Nothing listens on the network.

A request that is not a valid command (not JSON, not an object, no ``cmd``, too big, cut
short) gets ``{"ok": false, "error": ...}`` and the connection closes; the handler never sees
it and no exception leaves the server, so a bad client can never stop the supervisor.

Ownership: the supervisor owns one :class:`ControlServer` and gives it the handler; the server
and its connection tasks live on the supervisor's event loop (no lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from mpsv3._compat import timeout
from mpsv3.control.protocol import Handler, RequestError, encode, error_reply, parse_request
from mpsv3.errors import MpsvError
from mpsv3.platform import LocalServer, current_uid, peer_uid, start_local_server

_log = logging.getLogger("mpsv3.control.server")


class ControlServer:
    """Serves the control socket with ``handler`` until :meth:`close`.

    Args:
        path: the socket path (:func:`socket_path`) or, on Windows, the pipe name.
        handler: answers a checked request with a reply ``{"ok": true, "result": ...}`` or
            ``{"ok": false, "error": ...}``; raising ``MpsvError`` is an error reply too.
        max_request_bytes: a longer request line is refused.
        read_timeout_s: a client that has not sent its line by then is answered with an error.
        allowed_uid: the peer uid accepted on Linux (default: our own effective uid).

    The transport (Unix socket or named pipe, stale-socket handling, file modes) is
    :func:`mpsv3.platform.start_local_server`; this class owns framing and replies.
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        max_request_bytes: int = 65536,
        read_timeout_s: float = 10.0,
        allowed_uid: int | None = None,
    ) -> None:
        self.path = path
        self._handler = handler
        self._max = max_request_bytes
        self._read_timeout_s = read_timeout_s
        self._uid = current_uid() if allowed_uid is None else allowed_uid
        self._server: LocalServer | None = None
        self._connections: set[asyncio.Task[Any]] = set()

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

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            reply = await self._answer(reader, writer)
            async with timeout(10.0):
                writer.write(encode(reply))
                await writer.drain()
        except Exception as exc:  # a broken peer must never reach the event loop
            _log.debug("control connection failed: %r", exc)
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        # The line is read before a stranger is refused: closing a Unix socket with unread
        # data resets the connection on Linux, and the peer would lose the reply.
        line: bytes | RequestError | None
        try:
            async with timeout(self._read_timeout_s):
                line = await self._read_line(reader)
        except TimeoutError:
            line = None
        except RequestError as exc:
            line = exc
        refusal = self._refusal(writer)
        if refusal is not None:
            return error_reply(refusal)
        if line is None:
            return error_reply(f"bad request: no complete line within {self._read_timeout_s:g}s")
        if isinstance(line, RequestError):
            return error_reply(str(line))
        try:
            message = parse_request(line)
        except RequestError as exc:
            return error_reply(str(exc))
        try:
            reply = await self._handler(message)
        except MpsvError as exc:
            return error_reply(str(exc))
        except Exception as exc:
            _log.exception("control handler failed on %r", message)
            return error_reply(f"internal error: {type(exc).__name__}: {exc}")
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            return error_reply("internal error: the supervisor gave no reply")
        return reply

    async def _read_line(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise RequestError(
                    "bad request: the connection closed before the end of the line"
                ) from None
            raise RequestError("bad request: the connection closed before any request") from None
        except asyncio.LimitOverrunError:
            await _discard_line(reader)
            raise RequestError(f"bad request: longer than {self._max} bytes") from None

    def _refusal(self, writer: asyncio.StreamWriter) -> str | None:
        uid = peer_uid(writer)
        if uid is None or self._uid is None or uid == self._uid:
            return None
        return f"permission denied: uid {uid} is not the supervisor's uid {self._uid}"


async def _discard_line(reader: asyncio.StreamReader) -> None:
    """Skip the rest of an oversized line so that its sender can read the error reply."""
    while True:
        chunk = await reader.read(65536)
        if not chunk or b"\n" in chunk:
            return
