"""The control protocol: one JSON request line, one JSON reply line, per connection.

Two verbs answer with a stream instead (:data:`STREAM_COMMANDS`): ``attach`` (the merged,
prefixed console, as ``{"text": ...}`` lines) and ``events`` (a status snapshot, then every
event as ``{"event": {...}}``). Their first line is the usual reply (``{"ok": ...}``); the
lines after it come until the client closes or the supervisor ends.

Why apart from the transport: both ends (the server in ``up``, the client in every other
command) must agree on framing, the verbs and where the socket lives, and the client must be
able to import this without anything of the supervisor. Pure except for the endpoint paths.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mpsv3.errors import EXIT_NOT_RUNNING, MpsvError
from mpsv3.platform import client_endpoint, server_endpoint

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
#: Answers a streaming request: an async generator whose first message is the reply
#: (``{"ok": true, "result": ...}`` or an error, which ends it) and whose later messages are
#: the stream's lines. Closed (``aclose``) when the client goes away.
Streamer = Callable[[dict[str, Any]], AsyncIterator[dict[str, Any]]]

#: Every command a request may name, and those that act on one service (they need ``id``).
COMMANDS = (
    "status", "restart", "stop", "start", "release", "signal", "scale", "reload", "down", "attach", "events",
)
SERVICE_COMMANDS = frozenset({"restart", "stop", "start", "release", "signal", "scale"})
#: Commands answered by a stream of lines (see the module docstring).
STREAM_COMMANDS = frozenset({"attach", "events"})


class Instance(Protocol):
    """What locating a supervisor needs; :class:`mpsv3.config.Config` provides it."""

    @property
    def name(self) -> str: ...
    @property
    def state_dir(self) -> Path: ...
    @property
    def path(self) -> Path: ...


@dataclass(frozen=True)
class InstanceRef:
    """A plain :class:`Instance`: what the supervisor and the client know of an instance.

    Attributes:
        name: the instance name (``name:``, or the config folder's name).
        state_dir: the absolute state dir.
        path: the config file, absolute.
        service_ids: the services a client may name (for ``logs`` with no id); empty when
            the caller does not need them.
    """

    name: str
    state_dir: Path
    path: Path
    service_ids: tuple[str, ...] = ()


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
