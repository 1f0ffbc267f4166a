"""The ``engines`` marker: tests that run the exported stack on a real container engine.

Registered here because the marker list in pyproject.toml belongs to the lead. These tests
need root, podman, runc and debootstrap (``.ci/install-engines``) and take a few minutes;
without them they skip and say why. ``pytest -m engines`` runs only them, ``-m "not engines"``
leaves them out.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "engines: the exported stack on podman (podman-compose, podman kube play); needs root,"
        " podman, runc and debootstrap (.ci/install-engines)",
    )
