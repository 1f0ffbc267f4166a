"""The leader process of a spawned tree: its exit as soon as the OS reports it, its output.

Why here: ``asyncio.subprocess.Process.wait()`` (3.10/3.11) returns only once the process
has exited *and* every pipe is closed, so a service whose daemonised child keeps stdout
open would never be seen exiting. This protocol reports ``process_exited`` at once and
feeds the merged output pipe into a ``StreamReader`` (with the usual flow control), on
every platform. Owned by one process tree.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any, Protocol


class Leader(Protocol):
    """What a process tree needs of its leader, however it was started."""

    pid: int
    output: asyncio.StreamReader

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def kill(self) -> None: ...


class _LeaderProtocol(asyncio.SubprocessProtocol):
    def __init__(self, limit: int) -> None:
        self.output = asyncio.StreamReader(limit=limit)
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.SubprocessTransport | None = None
        self._output_closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport
        pipe = transport.get_pipe_transport(1)
        if pipe is not None:
            # Lets the reader pause the pipe when the consumer falls behind.
            self.output.set_transport(pipe)  # type: ignore[arg-type]

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self.output.feed_data(data.encode() if isinstance(data, str) else data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if exc is None:
            self.output.feed_eof()
        else:
            self.output.set_exception(exc)
        self._output_closed = True
        self._maybe_close()

    def process_exited(self) -> None:
        assert self._transport is not None
        returncode = self._transport.get_returncode()
        if not self.exited.done():
            self.exited.set_result(returncode if returncode is not None else 255)
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self._output_closed and self.exited.done() and self._transport is not None:
            self._transport.close()


class LeaderProcess:
    """A started leader: pid, merged output, return code once the OS reported the exit."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: _LeaderProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.pid: int = transport.get_pid()
        self.output: asyncio.StreamReader = protocol.output

    @property
    def returncode(self) -> int | None:
        """The exit status as ``subprocess`` reports it, None while running or unreaped."""
        exited = self._protocol.exited
        return exited.result() if exited.done() else None

    async def wait(self) -> int:
        """The return code (negative = killed by that signal on POSIX)."""
        return await asyncio.shield(self._protocol.exited)

    def kill(self) -> None:
        """Kill the leader only (the tree decides about the rest)."""
        if self.returncode is None:
            try:
                self._transport.kill()
            except ProcessLookupError:
                return


async def start_leader(argv: list[str], limit: int, **popen: Any) -> LeaderProcess:
    """Start ``argv`` with stdin from /dev/null and stdout+stderr merged into one pipe.

    ``popen`` goes to ``subprocess.Popen`` (cwd, env, start_new_session, creationflags...).

    Raises:
        OSError: the program could not be executed.
    """
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _LeaderProtocol(limit),
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **popen,
    )
    return LeaderProcess(transport, protocol)
