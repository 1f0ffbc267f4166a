"""Readiness by the systemd notify protocol: the service says ``READY=1`` on ``$NOTIFY_SOCKET``.

Who owns what: the supervisor owns one ``AF_UNIX``/``SOCK_DGRAM`` socket per service (its
runner opens it before the spawn, passes ``env`` to the child, and closes it when the service
is gone). Datagrams are newline-separated ``KEY=VALUE`` lines, as in ``sd_notify(3)``;
``READY=1`` wakes ``wait_ready()``, ``STATUS=`` and ``MAINPID=`` are recorded. Receiving is
event-driven (an asyncio datagram endpoint on the loop's selector), never polled. Use from the
event loop that opened it only.

Unix socket paths are short (108 bytes on Linux, 104 on macOS, NUL included), and a state dir
deep in a project easily exceeds that; such a socket moves to a private (0700) folder in the
temp dir named by a hash of the requested path, so the same service always gets the same one.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

from mpsv3.plan import ServicePlan
from mpsv3.platform.dirs import fresh_dir_for, give_to, short_digest, temp_dir
from mpsv3.platform.users import account_ids

__all__ = ["MAX_SOCKET_PATH_BYTES", "NotifySocket", "parse_notify_message", "socket_path_for"]

#: Longest socket path used as is; longer ones fall back to a short temp path.
MAX_SOCKET_PATH_BYTES = 100


def parse_notify_message(data: bytes) -> dict[str, str]:
    """Parse one notify datagram into its ``KEY=VALUE`` assignments (later keys win).

    Lines without ``=`` and empty lines are ignored, as systemd does; bytes that are not UTF-8
    are replaced rather than dropping the whole message.
    """
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", errors="replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key:
            fields[key] = value
    return fields


def socket_path_for(requested: Path) -> Path:
    """The path the socket really binds: ``requested`` if short enough, else a temp path.

    The fallback is ``<tempdir>/mpsv3-<hash>/notify``, the hash being of ``requested``.
    """
    if len(os.fsencode(requested)) <= MAX_SOCKET_PATH_BYTES:
        return requested
    digest = short_digest(os.fsencode(requested), 16)
    return Path(temp_dir()) / f"mpsv3-{digest}" / "notify"


class _NotifyProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: NotifySocket) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._owner.handle_message(parse_notify_message(data))


class NotifySocket:
    """One service's notify socket; ``wait_ready()`` returns once ``READY=1`` arrived.

    Args:
        path: Where the socket should live (normally ``<state_dir>/run/<id>.notify``); see
            ``socket_path_for`` for the fallback. The bound path is ``self.path``.
    """

    def __init__(self, path: Path, owner: tuple[int, int] | None = None) -> None:
        self.requested_path = path
        self.owner = owner
        # A service that runs as another user cannot reach our private run/ folder: its
        # socket goes to a folder of its own, 0700 and owned by that user.
        self.path = socket_path_for(path) if owner is None else _owned_socket_path(path)
        self.status: str | None = None
        self.mainpid: int | None = None
        self._ready = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None
        self._private_dir: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """What the service's environment needs: ``{"NOTIFY_SOCKET": <path>}``."""
        return {"NOTIFY_SOCKET": str(self.path)}

    @property
    def ready(self) -> bool:
        """True once ``READY=1`` arrived (since ``open`` or the last ``reset``)."""
        return self._ready.is_set()

    async def open(self) -> None:
        """Bind the socket (replacing a stale one) and start receiving on the running loop.

        Raises:
            OSError: The folder or socket cannot be created, or the platform has no
                ``AF_UNIX`` sockets.
        """
        family = getattr(socket, "AF_UNIX", None)
        if family is None:
            raise OSError("notify readiness needs AF_UNIX sockets, which this platform lacks")
        if self.owner is not None:
            self._private_dir = fresh_dir_for(self.path.parent, self.owner)
        elif self.path == self.requested_path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self._private_dir = _private_dir(self.path.parent)
        self.path.unlink(missing_ok=True)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(str(self.path))
            if self.owner is not None:
                give_to(self.path, self.owner)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _NotifyProtocol(self), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        self._transport = transport

    def close(self) -> None:
        """Stop receiving and remove the socket file (and the fallback folder). Idempotent."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.path.unlink(missing_ok=True)
        if self._private_dir is not None:
            try:
                self._private_dir.rmdir()
            except OSError:  # not empty or already gone: leave it, it is private and tiny
                return
            finally:
                self._private_dir = None

    def reset(self) -> None:
        """Forget readiness and status, for a new spawn of the same service."""
        self._ready.clear()
        self.status = None
        self.mainpid = None

    async def wait_ready(self) -> None:
        """Return when ``READY=1`` has arrived; bound it with a ``timeout`` scope."""
        await self._ready.wait()

    def handle_message(self, fields: dict[str, str]) -> None:
        """Apply one parsed datagram (called by the endpoint; public for tests and replay)."""
        if "STATUS" in fields:
            self.status = fields["STATUS"]
        if fields.get("MAINPID", "").isdigit():
            self.mainpid = int(fields["MAINPID"])
        if fields.get("READY") == "1":
            self._ready.set()


def _owned_socket_path(requested: Path) -> Path:
    """``<tempdir>/mpsv3-notify-<hash>/notify``: outside our private ``run/`` folder."""
    digest = short_digest(os.fsencode(requested), 16)
    return Path(temp_dir()) / f"mpsv3-notify-{digest}" / "notify"


def _private_dir(folder: Path) -> Path:
    """Create (or reuse) a 0700 folder that this user owns; refuse anything else.

    The temp dir is shared, so a folder of that name made by someone else, or a symlink, must
    not be used: another user could then read or replace the socket.
    """
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        info = folder.lstat()
        getuid = getattr(os, "getuid", None)
        owned = getuid is None or info.st_uid == getuid()
        if not stat.S_ISDIR(info.st_mode) or not owned:
            raise OSError(f"{folder} exists and is not a folder owned by this user") from None
    folder.chmod(0o700)
    return folder


async def notify_socket_for(spec: ServicePlan, run_dir: Path) -> NotifySocket | None:
    """The open notify socket of a service whose readiness is ``notify``, else None.

    Raises:
        OSError: see :meth:`NotifySocket.open`.
    """
    if spec.readiness is None or spec.readiness.check.kind != "notify":
        return None
    owner = account_ids(spec.user, spec.group) if spec.user or spec.group else None
    sock = NotifySocket(run_dir / f"{spec.id}.notify", owner)
    await sock.open()
    return sock
