"""``linux.joining_cgroup``: the argv of a child that joins its cgroup, then switches user."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux spawn path")

WRAPPER = ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]
CGROUP = Path("/sys/fs/cgroup/mpsv3.demo/svc.api")


def argv(identity: dict[str, object]) -> list[str]:
    from mpsv3.platform.linux import joining_cgroup

    return joining_cgroup(CGROUP, WRAPPER, identity, ["redis-server", "--port", "6379"])


def test_without_a_user_setpriv_only_sets_the_parent_death_signal() -> None:
    command = argv({})
    assert command[:2] == ["/bin/sh", "-c"]
    assert command[3:] == [str(CGROUP / "cgroup.procs"), *WRAPPER, "redis-server", "--port", "6379"]


def test_a_user_switch_moves_from_popen_to_setpriv() -> None:
    command = argv({"user": 101, "group": 102, "extra_groups": [102, 7]})
    assert command[4:9] == ["/usr/bin/setpriv", "--reuid=101", "--regid=102", "--groups=102,7", "--pdeathsig"]


@pytest.mark.parametrize(
    ("identity", "flags"),
    [
        ({"user": 101, "group": 102, "extra_groups": []}, ["--reuid=101", "--regid=102", "--clear-groups"]),
        ({"group": 102}, ["--regid=102", "--keep-groups"]),
    ],
)
def test_groups_are_set_as_popen_would(identity: dict[str, object], flags: list[str]) -> None:
    assert argv(identity)[5:5 + len(flags)] == flags


def test_the_script_moves_the_shell_then_execs_the_rest_even_when_the_move_is_refused(tmp_path: Path) -> None:
    from mpsv3.platform.linux import JOIN_CGROUP_SCRIPT

    procs = tmp_path / "cgroup.procs"
    done = subprocess.run(["/bin/sh", "-c", JOIN_CGROUP_SCRIPT, str(procs), "echo", "ran"],
                          capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr, procs.read_text()) == ("ran\n", "", "0\n")
    refused = subprocess.run(["/bin/sh", "-c", JOIN_CGROUP_SCRIPT, str(tmp_path / "gone" / "cgroup.procs"), "echo", "ran"],
                             capture_output=True, text=True, check=True)
    assert (refused.stdout, refused.stderr) == ("ran\n", "")
