"""Where the control socket of an instance lives (POSIX), and one blocking exchange with it.

Why apart from the asyncio transport (``local_ipc.py``): every client command needs the
socket's path and one request/reply, and a client's start-up time is mostly imports; this
module needs neither asyncio nor anything of the supervisor.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path

from mpsv3.errors import MpsvError
from mpsv3.platform.dirs import (
    ensure_private_dir,
    read_private_file,
    short_digest,
    temp_dir,
    write_private_file,
)

SOCKET_NAME = "control.sock"
POINTER_NAME = "control.path"  # holds the real socket path when it lives outside state_dir
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS; keep a margin
#: The longest reply a client reads (a status of many services).
MAX_REPLY = 1 << 24

assert sys.platform != "win32"


def current_uid() -> int | None:
    """Our effective uid: the only peer the control socket accepts by default."""
    return os.geteuid()


# ---------------------------------------------------------------------------------- paths


def _computed_path(state_dir: Path, name: str) -> tuple[Path, bool]:
    """The socket path and whether it is the short fallback outside ``state_dir``."""
    inside = Path(state_dir) / "run" / SOCKET_NAME
    if len(os.fsencode(str(inside))) <= MAX_SOCKET_PATH:
        return inside, False
    digest = short_digest(os.fsencode(str(state_dir)), 8)
    leaf = f"{name[:40]}-{digest}.sock"
    for base in (temp_dir(), "/tmp"):
        candidate = Path(base) / f"mpsv3-{current_uid()}" / leaf
        if len(os.fsencode(str(candidate))) <= MAX_SOCKET_PATH:
            return candidate, True
    raise MpsvError(f"no socket path short enough for instance '{name}'")


def server_endpoint(state_dir: Path, name: str) -> Path:
    """Where the server of instance ``name`` listens; records a fallback path for clients.

    The socket is ``state_dir/run/control.sock``. When that path is too long for a Unix
    socket, the socket goes to ``<tempdir>/mpsv3-<uid>/<name>-<hash of state_dir>.sock`` and
    its real path is written to ``state_dir/run/control.path`` for clients whose temp dir
    differs; a leftover pointer is removed when the short path fits. The pointer is replaced
    atomically (never written through a symlink) in a private ``run/``.

    Raises:
        PrivatePathError: ``run/`` is not private to us.
    """
    path, fallback = _computed_path(state_dir, name)
    pointer = Path(state_dir) / "run" / POINTER_NAME
    ensure_private_dir(pointer.parent)  # before anything is written or removed in it
    if fallback:
        write_private_file(pointer, (str(path) + "\n").encode())
    else:
        pointer.unlink(missing_ok=True)
    return path


def client_endpoint(state_dir: Path, name: str) -> Path:
    """The socket a client connects to: the recorded fallback if any, else computed.

    A pointer that is not a regular file of ours (planted, a symlink) is ignored.
    """
    data = read_private_file(Path(state_dir) / "run" / POINTER_NAME, limit=4096)
    with contextlib.suppress(UnicodeDecodeError):
        recorded = data.decode("utf-8").strip() if data else ""
        if recorded:
            return Path(recorded)
    return _computed_path(state_dir, name)[0]


def _connect(sock: socket.socket, path: Path, deadline: float) -> None:
    """``connect``, waiting while the server's backlog is full (EAGAIN) until ``deadline``."""
    pause = 0.005
    while True:
        try:
            sock.connect(str(path))
            return
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                raise TimeoutError from None
            time.sleep(pause)  # a client command waiting its turn, not the supervisor
            pause = min(pause * 2, 0.2)


def exchange_blocking(path: Path, request: bytes, timeout_s: float) -> bytes:
    """Send ``request`` to the socket ``path`` and read the reply until the server closes.

    Raises:
        FileNotFoundError, ConnectionRefusedError: nobody listens there.
        PermissionError: the socket or its directory belongs to another user.
        TimeoutError: no complete reply within ``timeout_s``.
        ConnectionError: the server dropped the connection.
    """
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            _connect(sock, path, deadline)
            sock.sendall(request)
            chunks = []
            size = 0
            while size <= MAX_REPLY:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except TimeoutError:
            raise TimeoutError from None
    return b"".join(chunks)
