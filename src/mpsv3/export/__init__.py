"""``mpsv3 export``: carry a stack over to systemd, Docker Compose or Kubernetes.

Why: a stack that outgrows one machine moves onto an engine that already runs fleets. The
exporters translate the validated config (never the raw YAML: defaults filled in, variables
interpolated) with one module per target, each owning its whole mapping, and say on stderr,
one line per item, what the target cannot express (``watch``, a ``log`` readiness gate in
Kubernetes, the exit codes 99 and 78, ...). Each exporter is pure; ``command.py`` writes files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mpsv3.config.schema import Config
from mpsv3.export import compose, kubernetes, systemd
from mpsv3.export.model import ExportError, ExportResult

__all__ = ["TARGETS", "ExportError", "ExportResult", "export"]

#: The targets, as named on the command line.
TARGETS = ("systemd", "compose", "kubernetes")


def export(
    target: str,
    config: Config,
    *,
    images: Mapping[str, str] | None = None,
    default_image: str | None = None,
    wait_image: str = kubernetes.DEFAULT_WAIT_IMAGE,
    which: Callable[[str], str | None] | None = None,
) -> ExportResult:
    """Export ``config`` to ``target`` (one of ``TARGETS``).

    Args:
        target: ``systemd``, ``compose`` or ``kubernetes``.
        config: the validated config.
        images: container images by service id (compose and kubernetes only).
        default_image: the image of services not in ``images`` (compose and kubernetes only).
        wait_image: the image of Kubernetes init containers that wait for dependencies.
        which: resolves bare program names for systemd's ``ExecStart=`` (``shutil.which``).

    Raises:
        ExportError: an option does not fit the target, or the target needs one that is missing.
    """
    if target == "systemd":
        if images or default_image:
            raise ExportError("--image applies to compose and kubernetes, not to systemd")
        return systemd.export(config, which=which)
    if target == "compose":
        return compose.export(config, images=images, default_image=default_image)
    if target == "kubernetes":
        return kubernetes.export(
            config, images=images, default_image=default_image, wait_image=wait_image
        )
    raise ExportError(f"unknown export target {target!r}: use one of {', '.join(TARGETS)}")
