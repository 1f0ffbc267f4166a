"""The production suite's pytest plugin: the ``production`` marker and a private copy of
``examples/production-stack`` per test.

Loaded by ``pytest_plugins`` from tests/acceptance/test_production_stack.py (a file named
``conftest.py`` here would be the Mind Protocol suite's). It registers the marker and puts it
on every test that uses :func:`production_stack`, so ``-m production`` selects the suite and
``-m "not production"`` leaves it out (a marker written in the test file would be looked up
before this plugin is loaded, and warned about).

Why a folder of its own: PostgreSQL and Redis run as their own users, who cannot enter
pytest's 0700 temp folders, so each copy lives in a fresh ``/tmp/mpsv3-prod-*`` (0711),
removed at teardown. Every port is a free one; the instance name is unique.
The servers come from ``bash .ci/install-production``; a machine without them skips, saying
what is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from support import Stack, end_leftovers, free_port, stop_all

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "production-stack"
PORTS = ("PGPORT", "REDIS_PORT", "APP_PORT", "HTTP_PORT")
PYTHON_MODULES = ("gunicorn", "uvicorn_worker", "starlette", "psycopg", "redis", "rq")
INSTALL_HINT = "run `bash .ci/install-production` (as root, on Debian)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "production: the production stack (PostgreSQL, Redis, gunicorn, rq, nginx) "
        "from examples/production-stack, against the real servers"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "production_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.production)


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has a server (Debian's layout)."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None)


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the stack (empty: everything is there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (PostgreSQL and Redis run as their own users)")
    if postgres_bin() is None:
        missing.append("PostgreSQL (/usr/lib/postgresql/*/bin/postgres)")
    missing += [f"{tool} on PATH" for tool in ("redis-server", "nginx") if shutil.which(tool) is None]
    for user in ("postgres", "redis"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            missing.append(f"the user {user!r}")
    missing += [f"the Python module {m}" for m in PYTHON_MODULES if importlib.util.find_spec(m) is None]
    return missing


def leftovers(root: Path, ports: list[int]) -> list[psutil.Process]:
    """Processes of a copy: running in it, naming it, or listening on one of its ports."""
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            text = " ".join(proc.info["cmdline"] or [])
            if str(root) in text or (proc.info["cwd"] or "").startswith(str(root)):
                found[proc.pid] = proc
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports and conn.pid:
                found.setdefault(conn.pid, psutil.Process(conn.pid))
    return list(found.values())


class ProductionStack(Stack):
    """A private copy of the example under mpsv3, with its ports and folders."""

    def __init__(self, root: Path) -> None:
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", ".mpsv3", "__pycache__"))
        config = (root / "services.yaml").read_text()
        super().__init__(root, config)
        taken: set[int] = set()
        while len(taken) < len(PORTS):
            taken.add(free_port())
        self.ports = dict(zip(PORTS, sorted(taken), strict=True))
        self.env.update({name: str(port) for name, port in self.ports.items()})
        self.env["SHOP_INSTANCE"] = f"shop-{uuid.uuid4().hex[:8]}"
        self.env["PG_BIN"] = str(postgres_bin())

    def url(self, path: str = "/") -> str:
        """``path`` through nginx."""
        return f"http://127.0.0.1:{self.ports['HTTP_PORT']}{path}"

    def leftovers(self) -> list[psutil.Process]:
        return leftovers(self.root, list(self.ports.values()))


@pytest.fixture
def production_stack() -> Iterator[Callable[[], ProductionStack]]:
    """Factory of private copies of the example (not started); all of it ends at teardown."""
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"the production stack needs {', '.join(missing)}: {INSTALL_HINT}")
    base = Path(tempfile.mkdtemp(prefix="mpsv3-prod-"))
    base.chmod(0o711)
    stacks: list[ProductionStack] = []

    def make() -> ProductionStack:
        stack = ProductionStack(base / f"shop{len(stacks) + 1}")
        stacks.append(stack)
        return stack

    yield make
    stop_all(stacks)
    left = end_leftovers(lambda: [proc for stack in stacks for proc in stack.leftovers()])
    shutil.rmtree(base, ignore_errors=True)
    if left:
        pytest.fail("the production stack left processes behind: " + "; ".join(left))
