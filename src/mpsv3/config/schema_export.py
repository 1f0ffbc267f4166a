"""The ``export:`` keys: how ``mpsv3 export compose|kubernetes`` builds and runs images.

Why apart from ``schema.py``: these keys matter only to the exporters, never to a running
supervisor. The top-level ``export`` names the image built from the project (a generated
``Containerfile``) and its base; a service's ``export`` says when it runs an image of its own,
with which command and which volumes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StackExportSpec(_Model):
    """``export:`` at the top level: the project's own image."""

    image: str | None = None
    base: str | None = None


class ServiceExportSpec(_Model):
    """``export:`` of one service: an image of its own, its command there, its volumes."""

    image: str | None = None
    cmd: list[str] | None = None
    volumes: list[str] = []
