"""The control client: one request to the supervisor of a config, one reply; or a stream.

Used by every command other than ``up`` and ``check``; :func:`follow` by ``attach`` and by
``up -d`` (which waits for the stack through the ``events`` stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from mpsv3._compat import timeout
from mpsv3.control.protocol import Instance, NotRunning, client_path, encode
from mpsv3.errors import MpsvError
from mpsv3.platform import open_local_connection


async def request(
    config: Instance, message: dict[str, Any], timeout_s: float = 30.0
) -> dict[str, Any]:
    """Send one request to the supervisor of ``config`` and return its reply.

    Raises:
        NotRunning: no socket, or nobody listens on it.
        MpsvError: no reply in ``timeout_s``, a refused connection, or a malformed reply.
    """
    try:
        async with timeout(timeout_s):
            reader, writer = await _connect(config)
            try:
                writer.write(encode(message))
                await writer.drain()
                data = await reader.read()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
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
    return _reply(data.splitlines()[0])


async def _connect(
    config: Instance, limit: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    path = client_path(config)
    try:
        if limit is not None:
            return await open_local_connection(path, limit=limit)
        return await open_local_connection(path)
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning(config) from None
    except PermissionError:
        raise MpsvError(
            f"permission denied on {path}: the supervisor runs as another user"
        ) from None


def _reply(line: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(line.decode("utf-8"))
    except ValueError:
        raise MpsvError(f"malformed reply from the supervisor: {line[:200]!r}") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise MpsvError(f"malformed reply from the supervisor: {line[:200]!r}")
    return reply


#: The longest line a stream may carry (a console chunk is at most a follower's budget).
STREAM_LINE_LIMIT = 16 * 1024 * 1024


async def follow(
    config: Instance, message: dict[str, Any], connect_timeout_s: float = 10.0
) -> AsyncGenerator[dict[str, Any], None]:
    """A streaming request (``attach``, ``events``): the reply's ``result``, then each message.

    The first value yielded is the ``result`` of the ok reply; the next ones are the
    stream's messages, until the supervisor ends it (the generator then returns). Closing
    the generator closes the connection, which is all a follower has to do to leave.

    Raises:
        NotRunning: no supervisor answers for ``config``.
        MpsvError: it refused the request, or sent something that is not a message.
    """
    try:
        async with timeout(connect_timeout_s):
            reader, writer = await _connect(config, STREAM_LINE_LIMIT)
    except TimeoutError:
        raise MpsvError(f"could not connect to the supervisor of instance '{config.name}'") from None
    try:
        try:
            async with timeout(connect_timeout_s):
                writer.write(encode(message))
                await writer.drain()
                first = await _read_line(reader)
        except TimeoutError:
            raise MpsvError(
                f"no reply from the supervisor of instance '{config.name}' within {connect_timeout_s:g}s"
            ) from None
        if not first.strip():
            raise MpsvError(f"the supervisor of instance '{config.name}' closed the connection without a reply")
        reply = _reply(first)
        if not reply["ok"]:
            raise MpsvError(str(reply.get("error") or "the supervisor refused the request"))
        result = reply.get("result")
        yield result if isinstance(result, dict) else {}
        while line := await _read_line(reader):
            try:
                item = json.loads(line.decode("utf-8"))
            except ValueError:
                raise MpsvError(f"malformed message from the supervisor: {line[:200]!r}") from None
            if isinstance(item, dict):
                yield item
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    """The next line, or b"" at the end of the stream (a reset counts as its end)."""
    try:
        return await reader.readline()
    except (ConnectionError, asyncio.IncompleteReadError):
        return b""
