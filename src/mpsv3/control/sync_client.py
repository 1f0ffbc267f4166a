"""The client commands' control client: one blocking request, one reply, no event loop.

Why not the asyncio client (``client.py``): a command such as ``status`` is started, asks once
and exits; its time is mostly the interpreter's start and its imports, and asyncio alone is a
third of that. The UI, which lives on a loop, keeps the asyncio client. Same protocol, same
errors (``NotRunning`` is exit 3).
"""

from __future__ import annotations

import json
from typing import Any

from mpsv3.control.protocol import Instance, NotRunning, client_path, encode
from mpsv3.errors import MpsvError
from mpsv3.platform import exchange_blocking


def request_sync(config: Instance, message: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    """Send one request to the supervisor of ``config``; its reply (``{"ok": ...}``).

    Raises:
        NotRunning: no socket, or nobody listens on it.
        MpsvError: no reply in ``timeout_s``, a refused connection, or a malformed reply.
    """
    path = client_path(config)
    try:
        data = exchange_blocking(path, encode(message), timeout_s)
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning(config) from None
    except PermissionError:
        raise MpsvError(f"permission denied on {path}: the supervisor runs as another user") from None
    except TimeoutError:
        raise MpsvError(f"no reply from the supervisor of instance '{config.name}' within {timeout_s:g}s") from None
    except ConnectionError as exc:
        raise MpsvError(f"the supervisor of instance '{config.name}' dropped the connection ({exc})") from None
    return parse_reply(data, config.name)


def parse_reply(data: bytes, name: str) -> dict[str, Any]:
    """The reply object of a raw reply; ``MpsvError`` when there is none or it is malformed."""
    if not data.strip():
        raise MpsvError(f"the supervisor of instance '{name}' closed the connection without a reply")
    try:
        reply = json.loads(data.decode("utf-8").splitlines()[0])
    except (ValueError, IndexError):
        raise MpsvError(f"malformed reply from the supervisor: {data[:200]!r}") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise MpsvError(f"malformed reply from the supervisor: {data[:200]!r}")
    return reply
