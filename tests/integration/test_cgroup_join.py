"""A service joins its own cgroup before anything of it runs (Linux, cgroup v2, root).

The child moves itself in (``linux.joining_cgroup``) so that the supervisor's loop does not
wait out the kernel's grace period of a cgroup move at every spawn. What must still hold:
the leader and a child it forks at once are both in the service's cgroup; a ``user:``
service joins it as root and then runs as its user, with that user's groups; the
parent-death signal is set (the leader's ``PPid`` is the supervisor and it dies with it).
"""

from __future__ import annotations

import os
import pwd
import sys
from typing import Any

import pytest

from support import Stack

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0, reason="cgroups and a uid change need root on Linux"
)

STACK = """
    version: 1
    services:
      - id: forks
        cmd: ["sh", "-c", "sleep 300 & exec sleep 301"]
      - id: nobody
        cmd: ["sleep", "302"]
        user: nobody
"""


def _cgroup(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as handle:
        return next(line for line in handle if line.startswith("0::")).strip()[3:]


def _status_fields(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as handle:
        return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)


def test_a_service_and_what_it_forks_at_once_are_born_in_its_cgroup(make_stack: Any) -> None:
    stack: Stack = make_stack(STACK)
    stack.env["MPSV3_CGROUPS"] = "1"
    stack.start()
    stack.wait_state("forks", "ready")
    stack.wait_state("nobody", "ready")
    forks, nobody = stack.service("forks")["pid"], stack.service("nobody")["pid"]
    supervisor = stack.status()["supervisor"]
    if "cgroup" not in supervisor["containment"]:
        stack.stop()
        pytest.skip("no delegated cgroup v2 here: the supervisor runs without cgroups")
    with open(f"/proc/{forks}/task/{forks}/children") as handle:
        children = [int(c) for c in handle.read().split()]
    assert children, "the forked sleep is missing"
    assert _cgroup(forks).endswith("/svc.forks") and _cgroup(children[0]) == _cgroup(forks)
    assert _cgroup(nobody).endswith("/svc.nobody")
    account = pwd.getpwnam("nobody")
    fields = _status_fields(nobody)
    assert fields["Uid"].split() == [str(account.pw_uid)] * 4
    assert fields["Gid"].split() == [str(account.pw_gid)] * 4
    assert sorted(int(g) for g in fields["Groups"].split()) == sorted(os.getgrouplist("nobody", account.pw_gid))
    for pid in (forks, nobody):
        assert int(_status_fields(pid)["PPid"]) == supervisor["engine_pid"]
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert handle.read().split(b"\0")[0] == b"sleep"  # the wrappers exec'd away
    assert stack.stop() == 0
