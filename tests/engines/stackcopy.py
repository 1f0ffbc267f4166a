"""The demo stack, exported for a container engine from a private copy of its folder.

Why a copy: the export writes the project image's ``Containerfile`` and ``.containerignore``
next to the config, and a test must not write into the repository. The copy leaves out the
local state and caches, which the image would leave out anyway.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mind-protocol"
MPSV3 = [sys.executable, "-m", "mpsv3"]
PORT_VARIABLES = ("FALKORDB_PORT", "WS_PORT", "DASHBOARD_PORT", "SIGNALS_PORT")
#: The project image of the tests; podman's build cache keeps its pip layer between runs.
PROJECT_IMAGE = "localhost/mpsv3-engines-mind:test"


@dataclass
class ExportedStack:
    """A copy of the demo and what ``mpsv3 export`` wrote for it."""

    root: Path
    output: Path
    ports: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.root / "services.yaml"


def export_demo(tmp: Path, target: str, base_image: str) -> ExportedStack:
    """Copy the demo under ``tmp`` and export it to ``target`` on free host ports."""
    root = tmp / "mind-protocol"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns(".mpsv3", "__pycache__", "export-*")
    )
    stack = ExportedStack(root, root / f"export-{target}")
    stack.ports = {name: free_port() for name in PORT_VARIABLES}
    sets = {
        "MIND_BASE_IMAGE": base_image,
        "MIND_IMAGE": PROJECT_IMAGE,
        "ENGINE_TICK_S": "0.2",
        **{name: str(port) for name, port in stack.ports.items()},
    }
    argv = [*MPSV3, "export", target, "-c", str(stack.config), "-o", str(stack.output)]
    for name, value in sets.items():
        argv += ["--set", f"{name}={value}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    stack.warnings = proc.stderr.splitlines()
    return stack
