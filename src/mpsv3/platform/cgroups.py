"""Linux cgroup v2: one cgroup per service, so that a tree is known exactly and ends at once.

Why: a process group, a parent-death signal and an environment marker each lose some
processes (a double fork into a new session, a uid change, a program that rewrites its
environment). A cgroup loses none: whatever a service starts stays in its cgroup,
``cgroup.procs`` lists every member, and ``cgroup.kill`` (Linux 5.14+) ends them all at once.

Where: under the supervisor's own cgroup, ``<ours>/mpsv3.<instance>/svc.<id>``, used only
when that cgroup is writable by us (root, or a delegated subtree such as systemd's
``Delegate=yes``); otherwise mpsv3 works without (``available`` says so). A child joins its
service's cgroup before anything of the service runs: it writes itself in, then execs the
service (``linux.joining_cgroup``). Only without setpriv does the supervisor move itself in
for the instant of the fork and back (``born_in``): each move waits for the kernel's RCU
grace period (7-15 ms), which is why the child, not the supervisor's loop, does the waiting.

Every function reads or writes files under ``/sys/fs/cgroup``; nothing here signals a
process that is not listed in one of our cgroups.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

assert sys.platform == "linux"

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _own_cgroup() -> Path | None:
    """The directory of this process's cgroup v2, or None without a cgroup2 mount."""
    try:
        relative = next(
            line.split(":", 2)[2].strip()
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.startswith("0::")
        )
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except (OSError, StopIteration, IndexError):
        return None
    for line in mounts:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            fields = left.split()
            root, mount = fields[3], fields[4]
            inside = os.path.relpath(relative, root) if relative.startswith(root) else relative.lstrip("/")
            return Path(os.path.normpath(os.path.join(mount, inside)))
    return None


_home: list[Path | None] = []


def home() -> Path | None:
    """This process's own cgroup, as it was when first asked (before any move)."""
    if not _home:
        _home.append(_own_cgroup())
    return _home[0]


@contextlib.contextmanager
def born_in(cgroup: Path | None) -> Iterator[None]:
    """Within: this process (all its threads) is in ``cgroup``, so a child forked now is too.

    Two writes to ``cgroup.procs`` (the first waits for a grace period: 7-15 ms, during which
    the loop waits too); outside the block we are back home. Without a cgroup, or when the
    move is refused, nothing happens.
    """
    own = home()
    if cgroup is None or own is None:
        yield
        return
    pid = str(os.getpid())
    try:
        _write(cgroup / "cgroup.procs", pid)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            _write(own / "cgroup.procs", pid)


def _write(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def members(cgroup: Path) -> list[int]:
    """The processes in ``cgroup`` and below it (empty when it is gone).

    Read at every stop and every exit, several times per service: folders are found with
    ``scandir`` (the entry's type, no ``stat`` per file of the folder).
    """
    found: list[int] = []
    for folder in _walk(str(cgroup)):
        try:
            with open(os.path.join(folder, "cgroup.procs"), "rb") as handle:
                found.extend(int(pid) for pid in handle.read().split())
        except (OSError, ValueError):
            continue
    return found


def _walk(folder: str) -> Iterator[str]:
    try:
        entries = [entry.path for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return  # gone (or never made)
    yield folder
    for child in entries:
        yield from _walk(child)


def kill(cgroup: Path) -> None:
    """SIGKILL everything in ``cgroup`` (``cgroup.kill``, or each member where it is missing)."""
    try:
        _write(cgroup / "cgroup.kill", "1")
        return
    except OSError:
        pass
    for pid in members(cgroup):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def remove(cgroup: Path) -> None:
    """Remove ``cgroup`` and its children if they are empty (best effort)."""
    for folder in sorted(_walk(str(cgroup)), key=lambda path: path.count(os.sep), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


class InstanceCgroups:
    """The cgroups of one instance: ``<ours>/mpsv3.<instance>/svc.<id>``.

    Owned by the supervisor (the spawn path calls :meth:`spawning_into`). ``available`` is
    False when cgroup v2 is missing or not writable here; every method is then a no-op that
    returns None.
    """

    def __init__(self, instance: str) -> None:
        self.home = home()
        self.base: Path | None = None
        if self.home is not None and os.access(self.home / "cgroup.procs", os.W_OK):
            base = self.home / f"mpsv3.{_SAFE.sub('_', instance)}"
            try:
                base.mkdir(exist_ok=True)
                self.base = base
            except OSError:
                self.base = None

    @property
    def available(self) -> bool:
        return self.base is not None

    def service(self, service_id: str) -> Path | None:
        """The service's cgroup, created if needed; None without cgroups."""
        if self.base is None:
            return None
        path = self.base / f"svc.{_SAFE.sub('_', service_id)}"
        try:
            path.mkdir(exist_ok=True)
        except OSError:
            return None
        return path

    def close(self) -> None:
        """Remove the instance's cgroups that are empty (after a clean shutdown)."""
        if self.base is not None:
            remove(self.base)
