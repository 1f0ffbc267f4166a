"""Podman for the engines tests: its settings, the offline base image, and small helpers.

Why apart from the tests: the three test files (compose, kube play, and the reasons to skip)
share one way to run podman (the project's own ``containers.conf`` through
``CONTAINERS_CONF``, never /etc), and one base image. No registry is reachable here, so the
base is made offline: ``debootstrap --variant=minbase`` of Debian bookworm from the mirror the
machine's apt sources name, with what the exported probes need (``curl``, ``redis-cli``) and
what FalkorDB's module needs (``libgomp1``), imported with ``podman import``. It trusts the
certificate authorities this machine adds to Debian's (``/usr/local/share/ca-certificates``),
and pip is pointed at that bundle, so ``pip install`` in a build reaches PyPI as the host does.
The image is tagged with a hash of its recipe and kept in podman's store: the next run finds
it (about 60 s to build, 0 s after).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
CONTAINERS_CONF = HERE / "containers.conf"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "libgomp1", "curl", "redis-tools", "ca-certificates")
BASE_REPOSITORY = "localhost/mpsv3-engines-base"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
PATH_IN_IMAGE = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def engine_env() -> dict[str, str]:
    """The environment of every podman and podman-compose call.

    Without the test session's process marker: conmon, aardvark-dns and the containers belong
    to the engine, not to a test; each fixture removes what it started and checks that nothing
    of its project is left.
    """
    env = {k: v for k, v in os.environ.items() if k != "MPSV3_TEST_RUN"}
    return {**env, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` with the project's settings; output captured as text."""
    proc = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, env=engine_env()
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def missing_tools() -> str | None:
    """Why the engines tests cannot run here, or None when they can."""
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run .ci/install-engines as root on Debian 12)"
    if os.geteuid() != 0:
        return "podman runs rootful here: the engines tests need root"
    if debian_mirror() is None:
        return "no Debian mirror in the apt sources to build the base image from"
    probe = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    if probe.returncode != 0:
        return f"podman does not work here: {probe.stderr.strip()[-300:]}"
    return None


def debian_mirror() -> str | None:
    """The first Debian mirror in the machine's apt sources (deb822 or one-line form)."""
    for source in SOURCES:
        if not source.is_file():
            continue
        text = source.read_text()
        match = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.MULTILINE) or re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", text, re.MULTILINE
        )
        if match:
            return match.group(1)
    return None


def _local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def base_image_tag() -> str:
    """The base image's name, keyed by its recipe (suite, packages, mirror, local CAs)."""
    recipe = hashlib.sha256()
    recipe.update(f"{SUITE} {' '.join(PACKAGES)} {debian_mirror()}".encode())
    for ca in _local_cas():
        recipe.update(ca.read_bytes())
    return f"{BASE_REPOSITORY}:{recipe.hexdigest()[:12]}"


def ensure_base_image(log: Callable[[str], None] = print) -> str:
    """The base image, built offline unless podman's store already has it."""
    tag = base_image_tag()
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    mirror = debian_mirror()
    assert mirror is not None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mpsv3-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
             str(rootfs), mirror],
            timeout=900,
        )  # fmt: skip
        changes = [f"ENV PATH={PATH_IN_IMAGE}", 'CMD ["/bin/bash"]']
        cas = _local_cas()
        if cas:
            for ca in cas:
                shutil.copy2(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
            _run(["chroot", str(rootfs), "update-ca-certificates"], timeout=120)
            changes.append("ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            args = ["import", *(f"--change={change}" for change in changes), "-", tag]
            imported = subprocess.run(
                ["podman", *args], stdin=tar.stdout, capture_output=True, text=True,
                timeout=300, env=engine_env(),
            )  # fmt: skip
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
        if imported.returncode != 0:
            raise AssertionError(f"podman import failed:\n{imported.stderr}")
    log(f"built the base image {tag} offline in {time.monotonic() - started:.0f}s")
    return tag


def _run(argv: Sequence[str], timeout: float) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{argv[0]} exited {proc.returncode}:\n{proc.stderr[-2000:]}")


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``.

    A refused or reset HTTP connection (``httpx.HTTPError``, not an ``OSError``) is one more
    "not yet": a restarted container answers a moment after it runs.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, ValueError, KeyError, AssertionError, subprocess.SubprocessError, httpx.HTTPError) as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
