"""Installing the peer supervisors into a cache outside the repository.

Why a cache of its own: the peers (supervisord, circus, honcho, PM2) are what mpsv3 is measured
against, never dependencies of mpsv3, so they live in their own virtualenv and their own npm
prefix under ``~/.cache/mpsv3-bench`` (``MPSV3_BENCH_CACHE`` overrides it). Versions are pinned so
that two runs of the benchmark compare the same programs; a stamp file makes a second run skip
the installation. Owned by the benchmark's entry point; nothing here runs a peer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

#: Pinned peer versions: the PyPI ones share one venv, PM2 comes from the npm registry.
PYTHON_PEERS = {"supervisor": "4.3.0", "circus": "0.19.0", "honcho": "2.0.0"}
PROFILER = {"py-spy": "0.4.3"}
PM2_VERSION = "7.0.4"

INSTALL_TIMEOUT_S = 600.0


class PeerInstallError(RuntimeError):
    """A peer could not be installed: the benchmark reports it instead of measuring it."""


def cache_dir() -> Path:
    """``$MPSV3_BENCH_CACHE``, else ``~/.cache/mpsv3-bench``: outside the repository on purpose."""
    configured = os.environ.get("MPSV3_BENCH_CACHE")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "mpsv3-bench"


@dataclass(frozen=True)
class PeerTools:
    """Where the installed peers are. A ``None`` field names a peer that is not installed."""

    venv_bin: Path | None
    pm2_bin: Path | None
    versions: dict[str, str]
    problems: dict[str, str]

    def python_tool(self, name: str) -> Path:
        """The executable ``name`` in the peers venv (``supervisord``, ``circusd``, ``honcho``)."""
        if self.venv_bin is None:
            raise PeerInstallError(self.problems.get("python", "peers venv is not installed"))
        return self.venv_bin / name


def _run(argv: list[str], log: Path) -> None:
    """Run one installer command, its output appended to ``log``; raise with the log's tail."""
    with log.open("ab") as out:
        out.write(("\n$ " + " ".join(argv) + "\n").encode())
        out.flush()
        try:
            done = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerInstallError(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise PeerInstallError(f"{' '.join(argv[:3])} failed: " + " | ".join(tail))


def _stamp_matches(stamp: Path, wanted: dict[str, str]) -> bool:
    try:
        return bool(json.loads(stamp.read_text()) == wanted)
    except (OSError, ValueError):
        return False


def ensure_python_peers(cache: Path, with_profiler: bool = False) -> Path:
    """Create ``<cache>/peers-venv`` with the pinned PyPI peers; return its ``bin`` directory.

    Args:
        cache: the benchmark cache directory.
        with_profiler: also install py-spy (for ``--profile``) into the same venv.
    """
    root = cache / "peers-venv"
    wanted = dict(PYTHON_PEERS)
    if with_profiler:
        wanted.update(PROFILER)
    stamp = root / "mpsv3-bench-stamp.json"
    bin_dir = root / ("Scripts" if sys.platform == "win32" else "bin")
    if _stamp_matches(stamp, wanted) or (
        not with_profiler and _stamp_matches(stamp, {**PYTHON_PEERS, **PROFILER})
    ):
        return bin_dir
    cache.mkdir(parents=True, exist_ok=True)
    if not (bin_dir / "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
    pins = [f"{name}=={version}" for name, version in wanted.items()]
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *pins], cache / "install.log")
    stamp.write_text(json.dumps(wanted))
    return bin_dir


def ensure_pm2(cache: Path) -> Path:
    """``npm install --prefix <cache>/pm2 pm2@PIN``; return the ``pm2`` executable."""
    npm = shutil.which("npm")
    if npm is None:
        raise PeerInstallError("npm is not installed (PM2 comes from the npm registry)")
    prefix = cache / "pm2"
    pm2 = prefix / "node_modules" / ".bin" / "pm2"
    stamp = prefix / "mpsv3-bench-stamp.json"
    wanted = {"pm2": PM2_VERSION}
    if pm2.exists() and _stamp_matches(stamp, wanted):
        return pm2
    prefix.mkdir(parents=True, exist_ok=True)
    _run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"pm2@{PM2_VERSION}"],
        cache / "install.log",
    )
    stamp.write_text(json.dumps(wanted))
    return pm2


def install_peers(
    cache: Path, python_peers: bool, pm2: bool, with_profiler: bool = False
) -> PeerTools:
    """Install what the selected peers need; a failure is recorded, not raised.

    Args:
        cache: the benchmark cache directory.
        python_peers: install supervisor, circus and honcho.
        pm2: install PM2.
        with_profiler: add py-spy to the peers venv.

    Returns:
        The tools found, their pinned versions, and a reason per peer group that failed.
    """
    problems: dict[str, str] = {}
    versions: dict[str, str] = {}
    venv_bin: Path | None = None
    pm2_bin: Path | None = None
    if python_peers or with_profiler:
        try:
            venv_bin = ensure_python_peers(cache, with_profiler=with_profiler)
            versions.update(PYTHON_PEERS)
            if with_profiler:
                versions.update(PROFILER)
        except PeerInstallError as exc:
            problems["python"] = str(exc)
    if pm2:
        try:
            pm2_bin = ensure_pm2(cache)
            versions["pm2"] = PM2_VERSION
        except PeerInstallError as exc:
            problems["pm2"] = str(exc)
    return PeerTools(venv_bin=venv_bin, pm2_bin=pm2_bin, versions=versions, problems=problems)
