"""The control plane: a local socket that the running ``up`` answers, and its client.

Why a local socket and nothing else: status, restart, stop, reload and down act on one running
supervisor owned by one user, so the transport is a Unix socket (mode 0600 in a 0700
directory; on Linux a peer of another uid is refused by ``SO_PEERCRED`` too) or, on Windows, a
named pipe. Nothing listens on the network.

Framing: one JSON object per line, one request and one reply per connection. A request that is
not a valid command (not JSON, not an object, no ``cmd``, too big, cut short) gets
``{"ok": false, "error": ...}`` and the connection closes; the handler never sees it and no
exception leaves the server, so a bad client can never stop the supervisor.

Ownership: the supervisor owns one :class:`ControlServer` and gives it the handler; the server
and its connection tasks live on the supervisor's event loop (no lock). The CLI client calls
:func:`request`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from mpsv3._compat import timeout
from mpsv3.errors import EXIT_NOT_RUNNING, MpsvError
from mpsv3.platform import (
    POINTER_NAME,
    LocalServer,
    client_endpoint,
    current_uid,
    open_local_connection,
    peer_uid,
    server_endpoint,
    start_local_server,
)

__all__ = [
    "COMMANDS",
    "POINTER_NAME",
    "ControlServer",
    "Handler",
    "NotRunning",
    "RequestError",
    "parse_request",
    "request",
    "socket_path",
]

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

#: Every command a request may name, and those that act on one service (they need ``id``).
COMMANDS = ("status", "restart", "stop", "start", "release", "reload", "down")
SERVICE_COMMANDS = frozenset({"restart", "stop", "start", "release"})

_log = logging.getLogger("mpsv3.control")


class Instance(Protocol):
    """What locating a supervisor needs; :class:`mpsv3.config.Config` provides it."""

    @property
    def name(self) -> str: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def path(self) -> Path: ...


class NotRunning(MpsvError):
    """No supervisor answers for this instance (exit 3)."""

    def __init__(self, instance: Instance) -> None:
        super().__init__(
            f"no supervisor is running for instance '{instance.name}' (config {instance.path})",
            EXIT_NOT_RUNNING,
        )


class RequestError(ValueError):
    """A request the server refuses; the message goes back to the client as ``error``."""


# ------------------------------------------------------------------------------ requests


def parse_request(line: bytes) -> dict[str, Any]:
    """Decode and check one request line (pure; the server's only gate before the handler).

    Raises:
        RequestError: the line is not a JSON object naming a known command with its arguments.
    """
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise RequestError("bad request: not UTF-8 text") from None
    if not text:
        raise RequestError(
            'bad request: empty line (expected a JSON object like {"cmd": "status"})'
        )
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise RequestError("bad request: not JSON (expected one JSON object per line)") from None
    if not isinstance(value, dict):
        raise RequestError(f"bad request: expected a JSON object, got {_json_type(value)}")
    cmd = value.get("cmd")
    if not isinstance(cmd, str):
        raise RequestError('bad request: no "cmd" string')
    if cmd not in COMMANDS:
        raise RequestError(f"unknown command {cmd!r}: expected one of {', '.join(COMMANDS)}")
    if cmd in SERVICE_COMMANDS:
        service = value.get("id")
        if not isinstance(service, str) or not service:
            raise RequestError(f'bad request: {cmd!r} needs an "id" (a service id)')
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def error_reply(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def encode(message: dict[str, Any]) -> bytes:
    """One framed message: compact JSON and a newline (JSON escapes every newline inside).

    A value JSON cannot hold is sent as its ``str``; a reply that cannot be encoded at all
    (a cycle) becomes an error reply rather than a silent hang-up.
    """
    try:
        text = json.dumps(message, default=str, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        text = json.dumps(error_reply(f"internal error: the reply is not JSON ({exc})"))
    return text.encode("utf-8") + b"\n"


# ---------------------------------------------------------------------------------- paths


def socket_path(config: Instance) -> Path:
    """Where the supervisor of ``config`` listens (server side: records a fallback path).

    The socket is ``state_dir/run/control.sock``. When that path is too long for a Unix
    socket, the socket goes to ``<tempdir>/mpsv3-<uid>/<name>-<hash of state_dir>.sock`` and
    its real path is written to ``state_dir/run/control.path`` for clients whose temp dir
    differs; a leftover pointer is removed when the short path fits. On Windows this is the
    named pipe ``\\\\.\\pipe\\mpsv3-<user>-<name>``.
    """
    return server_endpoint(Path(config.state_dir), config.name)


def client_path(config: Instance) -> Path:
    """The socket a client should connect to: the recorded fallback if any, else computed."""
    return client_endpoint(Path(config.state_dir), config.name)


# --------------------------------------------------------------------------------- server


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


# --------------------------------------------------------------------------------- client


async def request(
    config: Instance, message: dict[str, Any], timeout_s: float = 30.0
) -> dict[str, Any]:
    """Send one request to the supervisor of ``config`` and return its reply.

    Raises:
        NotRunning: no socket, or nobody listens on it.
        MpsvError: no reply in ``timeout_s``, a refused connection, or a malformed reply.
    """
    path = client_path(config)
    try:
        async with timeout(timeout_s):
            reader, writer = await open_local_connection(path)
            try:
                writer.write(encode(message))
                await writer.drain()
                data = await reader.read()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning(config) from None
    except PermissionError:
        raise MpsvError(
            f"permission denied on {path}: the supervisor runs as another user"
        ) from None
    except TimeoutError:
        raise MpsvError(
            f"no reply from the supervisor of instance '{config.name}' within {timeout_s:g}s"
        ) from None
    except ConnectionError as exc:
        raise MpsvError(
            f"the supervisor of instance '{config.name}' dropped the connection ({exc})"
        ) from None
    if not data.strip():
        raise MpsvError(
            f"the supervisor of instance '{config.name}' closed the connection without a reply"
        )
    try:
        reply = json.loads(data.decode("utf-8").splitlines()[0])
    except (ValueError, IndexError):
        raise MpsvError(f"malformed reply from the supervisor: {data[:200]!r}") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise MpsvError(f"malformed reply from the supervisor: {data[:200]!r}")
    return reply
