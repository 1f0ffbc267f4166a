"""The ``export:`` keys: how ``mpsv3 export compose|kubernetes`` builds and runs images.

Why apart from ``schema.py``: these keys matter only to the exporters, never to a running
supervisor. The top-level ``export`` names the image built from the project (a generated
``Containerfile``), its base, the requirements it installs and the environment that differs in
a container; a service's ``export`` says when it runs an image of its own, with which command,
which volumes and which environment. Nothing here may name a host path: an image cannot see
the host, so a volume is a named volume (Compose) or a claim (Kubernetes), never a bind mount.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator

__all__ = ["VOLUME", "ServiceExportSpec", "StackExportSpec", "VolumeMount"]

#: ``NAME:/path/in/container`` with an optional ``:ro``. NAME is a named volume, never a path.
VOLUME = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_.-]*):(?P<path>/[^:]*)(?::(?P<mode>ro|rw))?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_value(value: Any) -> Any:
    """A number in an ``env`` mapping is its text (YAML reads ``30`` as an int); a bool is not."""
    if isinstance(value, dict):
        return {
            key: str(item)
            if isinstance(item, (int, float)) and not isinstance(item, bool)
            else item
            for key, item in value.items()
        }
    return value


ExportEnv = Annotated[dict[str, str], BeforeValidator(_env_value)]


class VolumeMount(_Model):
    """One parsed ``NAME:/path[:ro]`` of a service's ``export.volumes``."""

    name: str
    path: str
    read_only: bool = False

    @classmethod
    def parse(cls, text: str) -> VolumeMount:
        match = VOLUME.match(text)
        if match is None:  # validated by ServiceExportSpec; never reached for a loaded config
            raise ValueError(f"bad volume {text!r}")
        return cls(name=match["name"], path=match["path"], read_only=match["mode"] == "ro")


class StackExportSpec(_Model):
    """``export:`` at the top level: the project's own image and the containers' environment.

    ``image`` names the image built from the project folder (default ``<name>:latest``),
    ``base`` its ``FROM`` (default a Debian-based Python image), ``requirements`` a pip
    requirements file of the project installed into the image's virtualenv, and ``env`` the
    values that differ in every container (a server binding ``0.0.0.0`` instead of loopback).
    """

    image: str | None = None
    base: str | None = None
    requirements: str | None = None
    env: ExportEnv = {}

    @field_validator("requirements")
    @classmethod
    def _inside_the_project(cls, value: str | None) -> str | None:
        if value is None:
            return None
        normal = posixpath.normpath(value.replace("\\", "/"))
        if not value or normal.startswith(("/", "../")) or normal == "..":
            raise ValueError(
                f"requirements {value!r} must be a file inside the project folder (the build"
                " context), relative to the config file"
            )
        return normal


class ServiceExportSpec(_Model):
    """``export:`` of one service: an image of its own, its command there, volumes, environment.

    Without ``image`` the service runs in the project's image; ``cmd`` replaces its command in
    the container (for an image of its own, the default is the image's own entrypoint).
    ``volumes`` are ``NAME:/path[:ro]``: data that must outlive the container.
    """

    image: str | None = None
    cmd: list[str] | None = None
    volumes: list[str] = []
    env: ExportEnv = {}

    @field_validator("cmd", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"cannot split command {value!r}: {exc}") from exc
        return value

    @field_validator("cmd")
    @classmethod
    def _nonempty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0]):
            raise ValueError("command is empty")
        return value

    @field_validator("volumes")
    @classmethod
    def _named_volumes(cls, volumes: list[str]) -> list[str]:
        for text in volumes:
            if VOLUME.match(text) is None:
                raise ValueError(
                    f"bad volume {text!r}: expected NAME:/path/in/container[:ro] with NAME of"
                    " lowercase letters, digits, '_', '.' and '-' (a host path is not exported)"
                )
        return volumes

    def mounts(self) -> list[VolumeMount]:
        """The parsed volumes."""
        return [VolumeMount.parse(text) for text in self.volumes]
