"""Running a service as another user: uid, gid and groups for the spawn, and the account's env.

Why here: the switch happens in the child before exec (``subprocess``'s ``user``, ``group``
and ``extra_groups``), like systemd's ``User=``; the names are resolved on every spawn, so an
account created after ``up`` started is found. POSIX only.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from mpsv3.platform.base import SpawnError


def credentials(user: str | None, group: str | None) -> dict[str, Any]:
    """``subprocess.Popen`` keywords that switch to ``user`` (and ``group``).

    The group defaults to the user's primary group, and the supplementary groups are the
    user's (``initgroups``), as ``su`` and systemd set them.

    Raises:
        SpawnError: the user or group does not exist, or this is not a POSIX system.
    """
    if sys.platform == "win32":
        raise SpawnError("user: and group: work on POSIX systems only")
    import grp
    import os
    import pwd

    try:
        entry = pwd.getpwnam(user) if user is not None and not user.isdigit() else (
            pwd.getpwuid(int(user)) if user is not None else None
        )
    except KeyError:
        raise SpawnError(f"cannot start: no user {user!r} on this machine") from None
    try:
        gid = (
            grp.getgrnam(group).gr_gid if group is not None and not group.isdigit()
            else int(group) if group is not None
            else entry.pw_gid if entry is not None else None
        )
    except KeyError:
        raise SpawnError(f"cannot start: no group {group!r} on this machine") from None
    keywords: dict[str, Any] = {}
    if entry is not None:
        keywords["user"] = entry.pw_uid
        keywords["extra_groups"] = _groups(entry.pw_name, entry.pw_gid)
    if gid is not None:
        keywords["group"] = gid
    if os.geteuid() != 0 and keywords.get("user", os.geteuid()) != os.geteuid():
        raise SpawnError(f"cannot start as user {user!r}: that needs a root supervisor (mpsv3 runs as uid {os.geteuid()})")
    return keywords


@functools.lru_cache(maxsize=64)
def _groups(name: str, gid: int) -> list[int]:
    import os

    if sys.platform == "win32":
        return []
    return list(os.getgrouplist(name, gid))


def account_env(user: str | None) -> dict[str, str]:
    """``HOME``, ``USER``, ``LOGNAME`` and ``SHELL`` of the account (the service's env wins)."""
    if user is None or sys.platform == "win32":
        return {}
    import pwd

    try:
        entry = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        return {}
    return {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name, "SHELL": entry.pw_shell}


def account_ids(user: str | None, group: str | None) -> tuple[int, int]:
    """(uid, gid) a service runs as (ours for what is not switched).

    Raises:
        SpawnError: the user or group does not exist.
    """
    import os

    if sys.platform == "win32":
        raise SpawnError("user: and group: work on POSIX systems only")
    keywords = credentials(user, group)
    return int(keywords.get("user", os.geteuid())), int(keywords.get("group", os.getegid()))
