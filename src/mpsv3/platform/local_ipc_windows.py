"""Windows local IPC for the control plane: a per-user named pipe.

Why here: Windows has no Unix sockets to put in a private directory, so the control plane
listens on the named pipe ``\\\\.\\pipe\\mpsv3-<user>-<name>`` served by asyncio's proactor
loop (the Windows default). The pipe's default security descriptor keeps other users out,
so there is no peer uid to check. Same function API as ``local_ipc.py``, picked by
:mod:`mpsv3.platform`.

Ownership: :func:`start_local_server` returns a :class:`LocalServer` owned by the caller (the
``ControlServer``); it lives on the caller's event loop and takes no lock.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from mpsv3.errors import MpsvError

assert sys.platform == "win32"

#: Called for each accepted connection with its stream pair.
ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: The POSIX fallback-path pointer's name; a pipe name always fits, so it is never written
#: here. Defined so that ``mpsv3.platform`` exports the same names on every OS.
POINTER_NAME = "control.path"
CLIENT_LIMIT = 1 << 24  # a client reads whole replies (a status of many services)


def current_uid() -> int | None:
    """None: Windows has no uid; the pipe's security descriptor does the access check."""
    return None


def _user_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "user"


def _pipe_name(name: str) -> Path:
    user = "".join(c if c.isalnum() or c in "-_." else "_" for c in _user_name())
    return Path(f"\\\\.\\pipe\\mpsv3-{user}-{name}")


def server_endpoint(state_dir: Path, name: str) -> Path:
    """The pipe the server of instance ``name`` listens on (``state_dir`` is not used)."""
    return _pipe_name(name)


def client_endpoint(state_dir: Path, name: str) -> Path:
    """The pipe a client connects to: the same name the server computes."""
    return _pipe_name(name)


def exchange_blocking(path: Path, request: bytes, timeout_s: float) -> bytes:
    """Send ``request`` through the named pipe and read the reply until the server closes it.

    ``timeout_s`` is not enforced on a pipe opened as a file (a server that accepted always
    answers within its own read timeout).

    Raises:
        FileNotFoundError: no server has created the pipe.
    """
    with open(str(path), "r+b", buffering=0) as pipe:
        pipe.write(request)
        return pipe.read()


def peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """None: a pipe client has no uid (the pipe's ACL already refused other users)."""
    return None


def _proactor() -> asyncio.ProactorEventLoop:
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.ProactorEventLoop):
        raise MpsvError("the control pipe needs the proactor event loop (the Windows default)")
    return loop


class _PipeServer(Protocol):
    """What we use of ``asyncio.windows_events.PipeServer``."""

    def close(self) -> None: ...


class LocalServer:
    """The pipe server instances of one address; :meth:`close` stops them all."""

    def __init__(self, servers: Sequence[_PipeServer]) -> None:
        self._servers = servers

    def close(self) -> None:
        """Stop accepting connections (open ones are the caller's)."""
        for server in self._servers:
            server.close()


async def start_local_server(
    path: Path, client_connected_cb: ClientConnected, *, limit: int
) -> LocalServer:
    """Serve the named pipe ``path`` with asyncio's proactor.

    The pipe is created with the default security descriptor: full control for its
    creator, SYSTEM and administrators, read-only for others, so another user cannot
    send a request.

    Args:
        path: the pipe name (:func:`server_endpoint`).
        client_connected_cb: runs as its own task for each connection.
        limit: the stream buffer limit, so a longer request line overruns.

    Raises:
        MpsvError: the running loop is not the proactor loop.
    """
    loop = _proactor()

    def protocol() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return LocalServer(await loop.start_serving_pipe(protocol, str(path)))


async def open_local_connection(
    path: Path, *, limit: int = CLIENT_LIMIT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the named pipe ``path``.

    Raises:
        FileNotFoundError: no server has created the pipe.
        MpsvError: the running loop is not the proactor loop.
    """
    loop = _proactor()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_pipe_connection(lambda: protocol, str(path))
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
