"""What a service becomes in a container, shared by the Compose and Kubernetes exporters.

Why one module: both targets must agree on a service's image, command, environment, working
directory and volumes, and on what may never leak into them (a path of the exporting host).
The rules:

* A service runs the project's image (built from the generated ``Containerfile``, the project
  folder copied to ``/app``) unless its ``export.image`` (or ``--image ID=IMAGE``) names one of
  its own. In the project image its command is ``export.cmd`` or its ``cmd``; in an image of its
  own it is ``export.cmd`` or the image's entrypoint.
* ``mpsv3 export`` loads the config a second time with the variables a container sees
  (``container_variables``): ``MPSV3_PYTHON`` is the image's ``python3``, ``MPSV3_CONFIG_DIR``
  is ``/app``, and every ``<ID>_HOST`` is that service's name in the target, so a peer address
  written ``${WS_API_HOST:-127.0.0.1}`` reaches ws_api by name there.
* The environment is the service's (global then its own), then the stack's ``export.env``, then
  the service's ``export.env``.
* A host path left in a command, an environment value or a probe is an error naming the
  service and the value: the image cannot see the host. A loopback address in an environment
  value is a warning: in a container it is the container itself.

Everything here is pure.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mpsv3.config.schema import Config, ExecCheck, ServiceSpec
from mpsv3.config.schema_export import VolumeMount
from mpsv3.errors import EXIT_FAILURE
from mpsv3.export.model import ExportError, Warnings, service_cwd, service_env, stack_name

__all__ = [
    "APP_DIR",
    "CONTAINER_PYTHON",
    "DEFAULT_BASE",
    "Container",
    "built_image",
    "container_variables",
    "host_variable",
    "plan_containers",
    "project_image",
]

#: Where the generated Containerfile puts the project folder.
APP_DIR = "/app"
#: The interpreter of the project image (``python3`` exists in Debian and in the Python images).
CONTAINER_PYTHON = "python3"
#: The ``FROM`` of the project image when ``export.base`` does not say.
DEFAULT_BASE = "docker.io/library/python:3.11-slim-bookworm"

_LOOPBACK = re.compile(r"(?<![\w.])(127\.0\.0\.1|localhost|\[::1\])(?![\w.])")


@dataclass(frozen=True)
class Container:
    """One service as a container: what the target's exporter writes for it.

    ``command`` is None when the image's own entrypoint runs; ``workdir`` is None when the
    image's working directory applies.
    """

    image: str
    builds: bool
    command: list[str] | None
    env: dict[str, str]
    workdir: str | None
    mounts: list[VolumeMount] = field(default_factory=list)


def built_image(plans: Iterable[Container]) -> str | None:
    """The project image when a service runs it (the export then writes its build files)."""
    return next((plan.image for plan in plans if plan.builds), None)


def host_variable(service_id: str) -> str:
    """The variable that holds a service's address: ``ws_api`` -> ``WS_API_HOST``."""
    return re.sub(r"[^A-Z0-9_]", "_", service_id.upper()) + "_HOST"


def project_image(config: Config, override: str | None = None) -> str:
    """The project image's name: ``--image IMAGE``, ``export.image``, or ``<name>:latest``."""
    if override:
        return override
    spec = config.stack.export
    if spec is not None and spec.image:
        return spec.image
    name = re.sub(r"[^a-z0-9_.-]", "-", stack_name(config).lower()).strip("-._") or "mpsv3"
    return f"{name}:latest"


def container_variables(config: Config, name_of: Callable[[str], str]) -> dict[str, str]:
    """The variables to load the config with for a container target (``--set`` wins over them).

    Args:
        config: the config as loaded for the host (for its service ids and folders).
        name_of: a service's name in the target (the Compose service, the Kubernetes Service).
    """
    variables = {
        "MPSV3_PYTHON": CONTAINER_PYTHON,
        "MPSV3_CONFIG_DIR": APP_DIR,
        "MPSV3_STATE_DIR": _in_app(config, config.stack.state_dir) or f"{APP_DIR}/.mpsv3",
    }
    variables.update({host_variable(spec.id): name_of(spec.id) for spec in config.services})
    return variables


def plan_containers(
    config: Config,
    *,
    images: Mapping[str, str] | None = None,
    default_image: str | None = None,
    host_paths: Sequence[str] = (),
    warn: Warnings,
) -> dict[str, Container]:
    """Every service's container, in config order.

    Args:
        config: the config, loaded with ``container_variables``.
        images: images of their own by service id (``--image ID=IMAGE``; wins over
            ``export.image``).
        default_image: the project image's name (``--image IMAGE``).
        host_paths: absolute paths of the exporting machine that must not appear (the
            interpreter's prefix, the home folder); the config and state folders always count.
        warn: collects the loopback warnings.

    Raises:
        ExportError: ``--image`` names an unknown service (exit 2), or a host path would leak
            (exit 1, every leak listed).
    """
    own = dict(images or {})
    ids = [spec.id for spec in config.services]
    unknown = sorted(set(own) - set(ids))
    if unknown:
        raise ExportError(
            f"--image {unknown[0]}=...: no service {unknown[0]!r} in the config"
            f" (services: {', '.join(ids)})"
        )
    project = project_image(config, default_image)
    forbidden = _host_paths(config, host_paths)
    plans: dict[str, Container] = {}
    leaks: list[str] = []
    for spec in config.services:
        plans[spec.id] = _container(config, spec, own.get(spec.id), project, warn)
        leaks += _leaks(spec, plans[spec.id], forbidden)
        _warn_loopback(spec, plans[spec.id], warn)
    if leaks:
        raise ExportError(
            "a host path would leak into the containers (the image cannot see this machine;"
            " use export.cmd / export.env / export.volumes): " + "; ".join(leaks),
            EXIT_FAILURE,
        )
    return plans


def _container(
    config: Config, spec: ServiceSpec, image: str | None, project: str, warn: Warnings
) -> Container:
    export = spec.export
    own_image = image or (export.image if export is not None else None)
    command = list(export.cmd) if export is not None and export.cmd else None
    env = {**service_env(config, spec)}
    if config.stack.export is not None:
        env.update(config.stack.export.env)
    if export is not None:
        env.update(export.env)
    mounts = export.mounts() if export is not None else []
    if own_image:
        return Container(own_image, False, command, env, None, mounts)
    cwd = service_cwd(config, spec)
    workdir = _in_app(config, cwd)
    if workdir is None:
        warn.service(spec.id, f"cwd {cwd} is outside the project folder; {APP_DIR} applies")
        workdir = APP_DIR
    return Container(project, True, command or spec.argv(), env, workdir, mounts)


def _in_app(config: Config, path: str) -> str | None:
    """A host path inside the project folder as the same path under ``/app``, else None."""
    root = os.path.normpath(str(config.root))
    full = os.path.normpath(path if os.path.isabs(path) else os.path.join(root, path))
    if full != root and not full.startswith(root + os.sep):
        return None
    relative = os.path.relpath(full, root).replace(os.sep, "/")
    return APP_DIR if relative == "." else posixpath.join(APP_DIR, relative)


def _host_paths(config: Config, extra: Iterable[str]) -> list[str]:
    """The host folders whose paths must not appear, longest first (the most precise name)."""
    paths = {os.path.normpath(str(config.root))}
    state = config.stack.state_dir
    if os.path.isabs(state):
        paths.add(os.path.normpath(state))
    paths.update(os.path.normpath(path) for path in extra if path and os.path.isabs(path))
    paths.discard(os.sep)
    return sorted(paths, key=len, reverse=True)


def _leaks(spec: ServiceSpec, container: Container, forbidden: Sequence[str]) -> list[str]:
    """``service "ID": WHERE names host path VALUE`` for each value that holds a host path."""
    values: list[tuple[str, str]] = []
    values += [("the command", word) for word in container.command or []]
    values += [(f"env {key}", value) for key, value in container.env.items()]
    for kind, probe in (("readiness", spec.readiness), ("liveness", spec.liveness)):
        if probe is not None and probe.kind() == "exec":
            check = probe.check()
            assert isinstance(check, ExecCheck)
            values += [(f"the {kind} command", word) for word in check.cmd]
    found = []
    for where, value in values:
        path = next((p for p in forbidden if _names_path(value, p)), None)
        if path is not None:
            found.append(f'service "{spec.id}": {where} names the host path {path} ({value!r})')
    return found


def _names_path(value: str, path: str) -> bool:
    """Whether ``value`` holds ``path`` itself or a path below it (not a longer name)."""
    pattern = re.escape(path) + r"(?![^/\\:;,\s\"'])"
    return re.search(pattern, value) is not None


def _warn_loopback(spec: ServiceSpec, container: Container, warn: Warnings) -> None:
    for key, value in container.env.items():
        if _LOOPBACK.search(value):
            warn.service(
                spec.id,
                f"env {key}={value!r} points at loopback, which in a container is the container"
                " itself; write the peer's address as ${<ID>_HOST} (set to its name by the"
                " export) or set it in export.env",
            )
