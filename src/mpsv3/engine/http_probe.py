"""``http_get`` probe attempts: ``GET``, the status code, over kept-alive connections.

Why not a full HTTP client: a probe needs the status code of one request to (usually) a local
address; a client library with its own CLI, pools and redirects costs the supervisor ~20 MiB
and 100 ms of start-up. h11 (a small, well-kept HTTP/1.1 state machine) parses the answers on
asyncio streams. One idle connection per address is kept for the next attempt (a readiness
poll every 100 ms is then one connection, not 300), dropped as soon as anything about it is
unclear (an error, a timeout, a large body, ``Connection: close``). TLS only for an ``https``
URL. Owned by one ``ProbeRunner``, on the supervisor's loop.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

#: What a probe sends as ``User-Agent``: services can tell probes from users in their logs.
USER_AGENT = "mpsv3-probe"
#: A body longer than this is not read to the end: the connection is dropped instead.
MAX_BODY = 64 * 1024

_Key = tuple[str, int, bool]


class HttpProbeError(Exception):
    """The answer was not an HTTP response (the one-line reason in ``args[0]``)."""


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, h11conn: Any) -> None:
        self.reader, self.writer, self.h11 = reader, writer, h11conn

    def close(self) -> None:
        self.writer.close()


class HttpProber:
    """``GET`` status codes, keeping one idle connection per address."""

    def __init__(self) -> None:
        self._idle: dict[_Key, _Conn] = {}

    async def status(self, url: str) -> int:
        """The status code ``GET url`` answers (1xx skipped, no redirect followed).

        Raises:
            OSError: the connection failed (refused, unreachable, reset...).
            HttpProbeError: the peer did not answer in HTTP, or TLS is not available here.
        """
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        key = (parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80), tls)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        reused = self._idle.pop(key, None)
        if reused is not None:
            try:
                return await self._exchange(key, reused, parts.netloc, target)
            except (OSError, HttpProbeError):
                pass  # the server closed an idle connection: one fresh try
        return await self._exchange(key, await _connect(key), parts.netloc, target)

    async def _exchange(self, key: _Key, conn: _Conn, host: str, target: str) -> int:
        import h11

        done = False
        try:
            headers = [("Host", host), ("User-Agent", USER_AGENT)]
            conn.writer.write(conn.h11.send(h11.Request(method="GET", target=target, headers=headers)))
            conn.writer.write(conn.h11.send(h11.EndOfMessage()) or b"")
            await conn.writer.drain()
            code, reusable = await _answer(conn)
            done = True
        except h11.ProtocolError as exc:
            raise HttpProbeError(f"not an HTTP answer: {exc}") from None
        finally:
            if not done:
                conn.close()
        if reusable:
            conn.h11.start_next_cycle()
            self._idle[key] = conn
        else:
            conn.close()
        return code

    @property
    def idle(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()


async def _connect(key: _Key) -> _Conn:
    import h11

    host, port, tls = key
    reader, writer = await asyncio.open_connection(host, port, ssl=_tls_context() if tls else None)
    return _Conn(reader, writer, h11.Connection(our_role=h11.CLIENT))


async def _answer(conn: _Conn) -> tuple[int, bool]:
    """(status code, whether the connection can carry the next request)."""
    import h11

    code: int | None = None
    body = 0
    while True:
        event = conn.h11.next_event()
        if event is h11.NEED_DATA:
            if body > MAX_BODY:
                return _require(code), False
            data = await conn.reader.read(65536)
            conn.h11.receive_data(data)
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            code = int(event.status_code)
        elif isinstance(event, h11.Data):
            body += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            ours, theirs = conn.h11.our_state, conn.h11.their_state
            return _require(code), ours is h11.DONE and theirs is h11.DONE
        else:  # ConnectionClosed, or anything unexpected
            if code is None:
                raise HttpProbeError("the connection closed before a response")
            return code, False


def _require(code: int | None) -> int:
    if code is None:
        raise HttpProbeError("the connection closed before a response")
    return code


def _tls_context() -> Any:
    """The default TLS context, or a clear error when the supervisor started without TLS."""
    try:
        import ssl
    except ImportError:
        raise HttpProbeError(
            "https probes need TLS, which this supervisor started without (no https URL in its "
            "config at start): restart it to use them"
        ) from None
    return ssl.create_default_context()
