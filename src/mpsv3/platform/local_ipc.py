"""POSIX local IPC for the control plane: a private Unix socket and its peer's uid.

Why here: the control server must be reachable only by the user who runs the supervisor.
On POSIX that is a Unix socket born mode 0600 inside a 0700 directory that we own; on
Linux the peer's uid is also read with ``SO_PEERCRED`` so that the server can refuse a
stranger even if the file modes were loosened. ``control.py`` calls these functions through
:mod:`mpsv3.platform` without knowing the OS; ``local_ipc_windows.py`` is the named-pipe twin.

Ownership: :func:`start_local_server` returns a :class:`LocalServer` owned by the caller (the
``ControlServer``); it lives on the caller's event loop and takes no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
import struct
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from mpsv3._compat import timeout
from mpsv3.errors import MpsvError
from mpsv3.platform.dirs import (
    describe_uid,
    ensure_private_dir,
)
from mpsv3.platform.pressure import ErrorDigest

assert sys.platform != "win32"

#: Called for each accepted connection with its stream pair.
ClientConnected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

CLIENT_LIMIT = 1 << 24  # a client reads whole replies (a status of many services)
_PEERCRED = struct.Struct("iII")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}
BACKLOG = 64  # connections waiting to be accepted cost the kernel memory, not our descriptors
ACCEPT_BACKOFF_MIN_S = 0.02  # first pause after a failed accept(); doubles while it fails
ACCEPT_BACKOFF_MAX_S = 1.0

_log = logging.getLogger("mpsv3.control.socket")


# --------------------------------------------------------------------------------- server


class LocalServer:
    """A listening Unix socket with its own accept loop; :meth:`close` stops it.

    Why not ``asyncio.start_unix_server``: when ``accept()`` fails for lack of descriptors,
    asyncio logs a traceback for every failure (thousands under a flood) and retries after a
    fixed second. Here such a failure pauses accepting with an exponential backoff (waiting
    connections stay in the kernel's backlog, costing us no descriptor) and is logged once
    per kind; no accept error ever leaves this class. One connection is accepted per loop
    turn, so a flood cannot starve the connections already accepted.

    The socket file is removed on close only if it is still the inode we bound, so a
    successor that already replaced it keeps its socket. Owned by the caller (the
    ``ControlServer``), on the caller's event loop.
    """

    def __init__(
        self, sock: socket.socket, path: Path, client_connected_cb: ClientConnected, limit: int
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._fd = sock.fileno()
        self._path = path
        self._inode: int | None = os.stat(path).st_ino
        self._callback = client_connected_cb
        self._limit = limit
        self._delay = ACCEPT_BACKOFF_MIN_S
        self._resume: asyncio.TimerHandle | None = None
        self._setups: set[asyncio.Task[None]] = set()
        self._closed = False
        self.digest = ErrorDigest(_log)
        self._loop.add_reader(self._fd, self._accept_one)

    def close(self) -> None:
        """Stop accepting connections (open ones are the caller's) and unlink our socket."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        if self._resume is not None:
            self._resume.cancel()
        self._sock.close()
        for task in self._setups:
            task.cancel()
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self._path).st_ino == self._inode:
                os.unlink(self._path)
        self._inode = None

    def _accept_one(self) -> None:
        try:
            conn, _address = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionAbortedError:
            return  # the peer gave up while waiting in the backlog
        except Exception as exc:  # EMFILE and the like: never a traceback, never the loop
            self._pause(exc)
            return
        self._delay = ACCEPT_BACKOFF_MIN_S
        conn.setblocking(False)
        task = self._loop.create_task(self._set_up(conn))
        self._setups.add(task)
        task.add_done_callback(self._setups.discard)

    def _pause(self, exc: Exception) -> None:
        """Stop accepting for a backoff delay after a failed ``accept()``, then resume."""
        if isinstance(exc, OSError):
            kind = errno.errorcode.get(exc.errno or 0, "OSError")
            reason = exc.strerror or repr(exc)
        else:
            kind, reason = type(exc).__name__, repr(exc)
        self.digest.report(
            f"accept-{kind}",
            f"control socket: accept failed ({reason}); not accepting for a moment, "
            f"then retrying with a backoff up to {ACCEPT_BACKOFF_MAX_S:g}s",
        )
        self._loop.remove_reader(self._fd)
        self._resume = self._loop.call_later(self._delay, self._resume_accepting)
        self._delay = min(self._delay * 2, ACCEPT_BACKOFF_MAX_S)

    def _resume_accepting(self) -> None:
        self._resume = None
        if not self._closed:
            self._loop.add_reader(self._fd, self._accept_one)

    async def _set_up(self, conn: socket.socket) -> None:
        """Wrap an accepted socket in a stream pair and hand it to the callback's task."""
        try:
            reader = asyncio.StreamReader(limit=self._limit)
            protocol = asyncio.StreamReaderProtocol(reader, self._callback)
            await self._loop.connect_accepted_socket(lambda: protocol, conn)
        except Exception as exc:
            conn.close()
            self.digest.report("setup", f"control socket: a connection failed to open: {exc!r}")
        except BaseException:
            conn.close()
            raise


async def start_local_server(
    path: Path, client_connected_cb: ClientConnected, *, limit: int
) -> LocalServer:
    """Listen on the Unix socket ``path`` (born 0600, in a private 0700 directory).

    A stale socket file is replaced only if it is ours and no server answers on it.

    Args:
        path: the socket path (:func:`server_endpoint`).
        client_connected_cb: runs as its own task for each connection.
        limit: the stream buffer limit, so a longer request line overruns.

    Raises:
        PrivatePathError: the directory is not private to us.
        MpsvError: ``path`` is not a socket of ours, or another server answers on it.
    """
    ensure_private_dir(path.parent)
    await _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(0o177)  # the socket is born 0600: no window before chmod
        try:
            sock.bind(str(path))
        finally:
            os.umask(previous)
        os.chmod(path, 0o600)
        sock.listen(BACKLOG)
        sock.setblocking(False)
        return LocalServer(sock, path, client_connected_cb, limit)
    except BaseException:
        sock.close()
        raise


async def _remove_stale(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise MpsvError(f"refusing to replace {path}: it is not a socket")
    if info.st_uid != os.geteuid():
        raise MpsvError(
            f"refusing to replace {path}: it belongs to {describe_uid(info.st_uid)}; remove it"
        )
    try:
        async with timeout(2.0):
            _reader, writer = await open_local_connection(path)
    except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
        path.unlink(missing_ok=True)
        return
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    raise MpsvError(f"another control server answers on {path}")


def peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The uid of the connected process (Linux ``SO_PEERCRED``), or None where unsupported."""
    option: int | None = getattr(socket, "SO_PEERCRED", None)
    sock = writer.get_extra_info("socket")
    if option is None or sock is None or sock.family != socket.AF_UNIX:
        return None
    _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size))
    return int(uid)


# --------------------------------------------------------------------------------- client


async def open_local_connection(
    path: Path, *, limit: int = CLIENT_LIMIT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the Unix socket ``path``, waiting while its backlog is full.

    A Unix socket whose backlog is full answers a non-blocking ``connect`` with EAGAIN, which
    asyncio would take for "in progress" and then for success; here the connect is retried
    (with a growing pause) until it succeeds or the caller's timeout cancels it.

    Raises:
        FileNotFoundError, ConnectionRefusedError: nobody listens there.
        PermissionError: the socket or its directory belongs to another user.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    pause = 0.005
    try:
        while True:
            try:
                sock.connect(str(path))
                break
            except BlockingIOError:
                await asyncio.sleep(pause)  # the server is busy accepting: wait our turn
                pause = min(pause * 2, 0.2)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_unix_connection(sock=sock, limit=limit)
