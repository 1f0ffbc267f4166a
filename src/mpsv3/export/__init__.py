"""``mpsv3 export``: carry a stack over to systemd, Docker Compose or Kubernetes.

Why: a stack that outgrows one machine moves onto an engine that already runs fleets. The
exporters translate the validated config (never the raw YAML: defaults filled in, variables
interpolated) with one module per target, each owning its whole mapping, and say on stderr,
one line per item, what the target cannot express (``watch``, a ``log`` readiness gate in
Kubernetes, the exit codes 99 and 78, ...). Each exporter is pure; ``cli.py`` reads the config,
writes the files and prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from mpsv3.config.schema import Config
from mpsv3.export import compose, kubernetes, systemd
from mpsv3.export.containerfile import (
    CONTAINERFILE,
    CONTAINERIGNORE,
    containerfile,
    containerignore,
)
from mpsv3.export.model import ExportError, ExportResult

__all__ = ["CONTAINER_TARGETS", "TARGETS", "ExportError", "ExportResult", "export", "name_in"]

#: The targets, as named on the command line.
TARGETS = ("systemd", "compose", "kubernetes")
#: The targets that run containers (a second load with the containers' variables, an image).
CONTAINER_TARGETS = ("compose", "kubernetes")


def name_in(target: str) -> Callable[[str], str]:
    """How a container target names a service (its DNS name there): ``<ID>_HOST`` values."""
    return compose.service_name if target == "compose" else kubernetes.object_name


def export(
    target: str,
    config: Config,
    *,
    images: Mapping[str, str] | None = None,
    default_image: str | None = None,
    wait_image: str | None = None,
    which: Callable[[str], str | None] | None = None,
    host_paths: Sequence[str] = (),
    build_context: str = ".",
    build_ignore: Sequence[str] = (),
) -> ExportResult:
    """Export ``config`` to ``target`` (one of ``TARGETS``).

    Args:
        target: ``systemd``, ``compose`` or ``kubernetes``.
        config: the validated config (for a container target, loaded with
            ``containers.container_variables``).
        images: images of their own by service id (compose and kubernetes only).
        default_image: the project image's name (compose and kubernetes only).
        wait_image: the image of Kubernetes init containers that wait for dependencies.
        which: resolves bare program names for systemd's ``ExecStart=`` (``shutil.which``).
        host_paths: host folders that must not leak into container output.
        build_context: the project folder relative to the output folder (Compose ``build``).
        build_ignore: more paths the project image leaves out (the output folder).

    Raises:
        ExportError: an option does not fit the target, or the config cannot be exported.
    """
    if target == "systemd":
        if images or default_image:
            raise ExportError("--image applies to compose and kubernetes, not to systemd")
        return systemd.export(config, which=which)
    if target == "compose":
        result = compose.export(
            config, images=images, default_image=default_image, host_paths=host_paths, build_context=build_context
        )
    elif target == "kubernetes":
        result = kubernetes.export(
            config, images=images, default_image=default_image, wait_image=wait_image, host_paths=host_paths
        )
    else:
        raise ExportError(f"unknown export target {target!r}: use one of {', '.join(TARGETS)}")
    if result.project_image is None:
        return result
    build = {
        CONTAINERFILE: containerfile(config, result.project_image),
        CONTAINERIGNORE: containerignore(config, build_ignore),
    }
    return replace(result, project_files=build)
