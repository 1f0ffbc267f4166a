"""What the production-key tests (test_production_keys.py, test_production_replicas.py) share
beyond ``support``: their long-running service and the interpreter another user can run."""

from __future__ import annotations

from support import py

SLEEPER = py("import time\nprint('up', flush=True)\nwhile True: time.sleep(1)")
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every user, unlike a venv under /root
