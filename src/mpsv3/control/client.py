"""The control client: one request to the supervisor of a config, one reply.

Used by every command other than ``up`` and ``check``.
"""

from __future__ import annotations

import contextlib
import json
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
