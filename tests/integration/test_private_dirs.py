"""A hostile neighbour (issue 15): another user prepares mpsv3's directories before root runs.

Each test here runs as root and creates a throw-away user (``useradd``, removed at the end of
the module). That user squats the runtime dir in a shared, sticky temp dir (like ``/tmp``),
plants symlinks and hard links to a victim file, or holds a flock on a lease file of their
own. Root's ``mpsv3 up`` must refuse with one clear line and exit 1, the victim file must be
unchanged, and the squatter's PID must never be reported as the holder of root's lease.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpsv3.engine.logfile import RotatingLog
from mpsv3.platform import PrivatePathError, SingletonLease, ensure_private_dir, open_private_file
from mpsv3.platform.dirs import read_private_file, write_private_file

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX owners and symlinks"),
    pytest.mark.skipif(
        sys.platform == "win32" or os.geteuid() != 0,
        reason="needs root: the tests create a throw-away user with useradd",
    ),
]

VICTIM_TEXT = "root's precious file\n"
CONFIG = textwrap.dedent(
    f"""\
    version: 1
    name: stack
    services:
      - id: sleeper
        cmd: [{sys.executable!r}, "-c", "import time; time.sleep(60)"]
    """
)


class Squatter:
    """A throw-away user, and the processes started as them (ended by PID at teardown)."""

    def __init__(self, name: str) -> None:
        self.name = name
        import pwd  # POSIX only: imported here so the module still collects on Windows

        entry = pwd.getpwnam(name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.procs: list[subprocess.Popen[str]] = []

    def run(self, *argv: str) -> None:
        subprocess.run(argv, user=self.uid, group=self.gid, extra_groups=[], check=True, timeout=30)

    def hold_flock(self, path: Path) -> subprocess.Popen[str]:
        """``flock`` on ``path`` as the squatter, held until teardown; returns once held."""
        proc = subprocess.Popen(
            ["sh", "-c", 'exec 9>>"$1" && flock -n 9 && echo HELD && exec sleep 300', "sh",
             str(path)],
            user=self.uid, group=self.gid, extra_groups=[], stdout=subprocess.PIPE, text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "HELD"
        return proc

    def end_processes(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()


@pytest.fixture(scope="module")
def squatter_account() -> Iterator[str]:
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel not installed")
    name = f"mpsv3sq{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True, capture_output=True, timeout=60,
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True, timeout=60)


@pytest.fixture
def squatter(squatter_account: str) -> Iterator[Squatter]:
    who = Squatter(squatter_account)
    try:
        yield who
    finally:
        who.end_processes()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A sticky, world-writable temp dir of our own: the test's ``/tmp``."""
    base = Path(tempfile.mkdtemp(prefix="mpsv3-shared-"))
    base.chmod(0o1777)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A root-owned file that no mpsv3 run may touch."""
    path = tmp_path / "victim"
    path.write_text(VICTIM_TEXT)
    path.chmod(0o644)
    return path


def root_up(shared: Path, project: Path) -> subprocess.CompletedProcess[str]:
    """Root's ``mpsv3 up`` with the runtime dir falling back to ``<shared>/mpsv3-0``."""
    project.mkdir(exist_ok=True)
    (project / "services.yaml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if k not in ("MPSV3_RUNTIME_DIR", "XDG_RUNTIME_DIR")}
    env["TMPDIR"] = str(shared)
    return subprocess.run(
        [sys.executable, "-m", "mpsv3", "up", "-c", str(project / "services.yaml")],
        cwd=project, env=env, capture_output=True, text=True, timeout=60,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one clear line, never a traceback
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "already supervised" not in result.stderr


# ------------------------------------------------------- root's up against the squatter


def test_a_squatted_runtime_dir_is_refused_and_the_squatters_pid_never_named(
    squatter: Squatter, shared_tmp: Path, tmp_path: Path
) -> None:
    runtime = shared_tmp / "mpsv3-0"
    squatter.run("mkdir", "-m", "0755", str(runtime))
    squatter.run("touch", str(runtime / "stack.lock"))
    holder = squatter.hold_flock(runtime / "stack.lock")
    result = root_up(shared_tmp, tmp_path / "project")
    assert_refused(
        result, f"refusing to use {runtime}", f"owned by uid {squatter.uid} ({squatter.name})",
        "not by uid 0 (root)", "remove it", "MPSV3_RUNTIME_DIR",
    )
    assert str(holder.pid) not in result.stderr
    assert os.stat(runtime / "stack.lock").st_size == 0  # root wrote nothing there


def test_a_lease_symlink_in_a_squatted_dir_leaves_the_victim_unchanged(
    squatter: Squatter, shared_tmp: Path, tmp_path: Path, victim: Path
) -> None:
    runtime = shared_tmp / "mpsv3-0"
    squatter.run("mkdir", "-m", "0777", str(runtime))
    squatter.run("ln", "-s", str(victim), str(runtime / "stack.lock"))
    result = root_up(shared_tmp, tmp_path / "project")
    assert_refused(result, f"refusing to use {runtime}", f"uid {squatter.uid}")
    assert victim.read_text() == VICTIM_TEXT
    assert victim.stat().st_mode & 0o777 == 0o644


def test_a_runtime_dir_that_is_a_symlink_is_refused(
    squatter: Squatter, shared_tmp: Path, tmp_path: Path
) -> None:
    target = tmp_path / "roots-own-dir"
    target.mkdir(mode=0o700)
    squatter.run("ln", "-s", str(target), str(shared_tmp / "mpsv3-0"))
    result = root_up(shared_tmp, tmp_path / "project")
    assert_refused(result, f"refusing to use {shared_tmp / 'mpsv3-0'}", "it is a symlink")
    assert list(target.iterdir()) == []


def test_a_lease_symlink_in_roots_own_dir_is_not_followed(
    shared_tmp: Path, tmp_path: Path, victim: Path
) -> None:
    # Defence in depth: even in a private dir, the lease file is never opened through a link.
    runtime = shared_tmp / "mpsv3-0"
    runtime.mkdir(mode=0o700)
    (runtime / "stack.lock").symlink_to(victim)
    result = root_up(shared_tmp, tmp_path / "project")
    assert_refused(result, f"refusing to open {runtime / 'stack.lock'}", "it is a symlink")
    assert victim.read_text() == VICTIM_TEXT


def test_a_world_writable_runtime_dir_of_roots_is_refused(shared_tmp: Path, tmp_path: Path) -> None:
    runtime = shared_tmp / "mpsv3-0"
    runtime.mkdir()
    runtime.chmod(0o777)  # anyone could have planted something inside
    result = root_up(shared_tmp, tmp_path / "project")
    assert_refused(result, f"refusing to use {runtime}", "writable by other users (mode 0777)")


# ------------------------------------------------- the building blocks, one by one


def test_private_dirs_are_created_0700_and_loose_ones_of_ours_tightened(tmp_path: Path) -> None:
    fresh = tmp_path / "state" / "run"
    ensure_private_dir(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    loose = tmp_path / "logs"
    loose.mkdir()
    loose.chmod(0o755)
    ensure_private_dir(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    group_writable = tmp_path / "shared"
    group_writable.mkdir()
    group_writable.chmod(0o770)
    with pytest.raises(PrivatePathError, match="writable by other users"):
        ensure_private_dir(group_writable)


def test_a_state_folder_prepared_by_another_user_is_refused(
    squatter: Squatter, shared_tmp: Path
) -> None:
    logs = shared_tmp / "project" / ".mpsv3" / "logs"
    squatter.run("mkdir", "-p", "-m", "0700", str(logs))
    with pytest.raises(PrivatePathError) as caught:
        ensure_private_dir(logs)
    assert str(caught.value) == (
        f"refusing to use {logs}: it is owned by uid {squatter.uid} ({squatter.name}), "
        "not by uid 0 (root); another user may have prepared it: remove it"
    )
    assert caught.value.exit_code == 1


def test_open_private_file_refuses_links_fifos_and_other_users_files(
    squatter: Squatter, tmp_path: Path, victim: Path
) -> None:
    folder = tmp_path / "run"
    ensure_private_dir(folder)
    (folder / "link").symlink_to(victim)
    with pytest.raises(PrivatePathError, match="it is a symlink"):
        open_private_file(folder / "link", os.O_RDWR)
    os.link(victim, folder / "hard")
    with pytest.raises(PrivatePathError, match="it has 2 hard links"):
        open_private_file(folder / "hard", os.O_RDWR)
    os.mkfifo(folder / "fifo")
    with pytest.raises(PrivatePathError, match="not a regular file"):
        open_private_file(folder / "fifo", os.O_WRONLY)  # and no hang waiting for a reader
    theirs = folder / "theirs"
    theirs.write_text("theirs\n")
    os.chown(theirs, squatter.uid, squatter.gid)
    with pytest.raises(PrivatePathError, match=f"owned by uid {squatter.uid}"):
        open_private_file(theirs, os.O_RDWR)
    assert victim.read_text() == VICTIM_TEXT
    assert read_private_file(theirs) is None  # a planted pointer reads as absent


def test_a_new_file_is_exclusive_and_an_old_one_of_ours_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    fd = open_private_file(path, os.O_RDWR, 0o600)
    os.close(fd)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o666)
    fd = open_private_file(path, os.O_RDWR, 0o600)
    os.close(fd)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_lease_refuses_a_hard_link_to_a_victim(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("MPSV3_RUNTIME_DIR", str(runtime))
    ensure_private_dir(runtime)
    os.link(victim, runtime / "stack.lock")
    lease = SingletonLease("stack")
    with pytest.raises(PrivatePathError, match="hard links"):
        lease.acquire()
    assert lease.holder_pid() is None
    assert victim.read_text() == VICTIM_TEXT


def test_log_files_are_0640_and_never_written_through_a_symlink(
    tmp_path: Path, victim: Path
) -> None:
    logs = tmp_path / "logs"
    ensure_private_dir(logs)
    log = RotatingLog(logs / "api.log", max_bytes=100, backups=2)
    try:
        log.write(b"x" * 80 + b"\n")
        log.write(b"y" * 80 + b"\n")  # rotates: the new file is 0640 too
    finally:
        log.close()
    for name in ("api.log", "api.log.1"):
        assert stat.S_IMODE((logs / name).stat().st_mode) == 0o640
    (logs / "db.log").symlink_to(victim)
    with pytest.raises(PrivatePathError, match="it is a symlink"):
        RotatingLog(logs / "db.log", max_bytes=100, backups=2)
    assert victim.read_text() == VICTIM_TEXT


def test_a_pointer_is_replaced_not_written_through_a_symlink(tmp_path: Path, victim: Path) -> None:
    run = tmp_path / "run"
    ensure_private_dir(run)
    (run / "control.path").symlink_to(victim)
    write_private_file(run / "control.path", b"/tmp/mpsv3-0/x.sock\n")
    assert not (run / "control.path").is_symlink()
    assert read_private_file(run / "control.path") == b"/tmp/mpsv3-0/x.sock\n"
    assert victim.read_text() == VICTIM_TEXT
    assert sorted(p.name for p in run.iterdir()) == ["control.path"]  # no temp file left
