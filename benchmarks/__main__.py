"""Entry point: ``python -m benchmarks`` from the repository root.

The benchmark needs the project's virtualenv (psutil, PyYAML, and mpsv3 itself); when started
with another interpreter it re-executes itself with ``.venv/bin/python`` if that exists, so the
documented command works from a plain shell.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _ensure_interpreter() -> None:
    try:
        import psutil  # noqa: F401
        import yaml  # noqa: F401
    except ImportError:
        venv = Path(__file__).resolve().parent.parent / ".venv"
        venv_python = venv / "bin" / "python"
        if venv_python.exists() and Path(sys.prefix).resolve() != venv.resolve():
            os.execv(str(venv_python), [str(venv_python), "-m", "benchmarks", *sys.argv[1:]])
        raise SystemExit(
            "the benchmark needs psutil and PyYAML: run it with .venv/bin/python"
        ) from None


def _main() -> int:
    _ensure_interpreter()
    from benchmarks.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(_main())
