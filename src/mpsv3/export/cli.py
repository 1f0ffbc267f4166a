"""The ``mpsv3 export TARGET`` click command: load, export, write the files, print warnings.

Why apart from the exporters: they are pure, and this is the one place of the feature that
reads the config file, writes the output folder and the project's build files, and prints.
For a container target the config is loaded twice: once as the host sees it (for its service
ids and folders), then with the variables a container sees (``containers.container_variables``:
the image's interpreter, ``/app``, every ``<ID>_HOST`` as the service's name), ``--set`` still
winning. Errors are raised, never printed here: ``ConfigInvalid`` (exit 78) and ``MpsvError``
(exit 2 for a usage error, 1 for a file that cannot be written or a host path that would leak)
reach ``cli.main()``, which reports them once. The lead registers ``export_command`` on the
``mpsv3`` group.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from mpsv3.config.loader import load_config, parse_overrides
from mpsv3.config.schema import Config
from mpsv3.errors import EXIT_FAILURE, EXIT_USAGE, MpsvError
from mpsv3.export import CONTAINER_TARGETS, TARGETS, export, name_in
from mpsv3.export.containerfile import GENERATED_MARK
from mpsv3.export.containers import container_variables
from mpsv3.export.model import ExportResult

__all__ = ["export_command", "host_paths", "parse_images", "write_files", "write_project_files"]

WARNING_PREFIX = "mpsv3 export: warning: "


@click.command("export")
@click.argument("target", type=click.Choice(TARGETS))
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("services.yaml"),
    show_default=True,
    help="The stack's config file.",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write the files into (default: ./export-TARGET).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="VAR=VALUE",
    help="Set a config variable (wins over the environment and env:).",
)
@click.option(
    "--image",
    "image_args",
    multiple=True,
    metavar="[ID=]IMAGE",
    help="Image of its own for service ID, or the project image's name (compose, kubernetes).",
)
@click.option(
    "--wait-image",
    default=None,
    help="Image of the Kubernetes init containers that wait for dependencies"
    " (default: the project image, else busybox:1.36).",
)
def export_command(
    target: str,
    config_path: Path,
    output: Path | None,
    sets: tuple[str, ...],
    image_args: tuple[str, ...],
    wait_image: str | None,
) -> None:
    """Export the stack to systemd units, a compose.yaml, or Kubernetes objects.

    For compose and kubernetes, services that run the project's code get an image built from
    a generated Containerfile (written next to the config). What the target cannot express
    is listed on stderr, one warning per line.
    """
    images, default_image = parse_images(image_args)
    overrides = parse_overrides(sets)
    folder = output if output is not None else Path(f"export-{target}")
    config = _load(target, config_path, overrides)
    result: ExportResult = export(
        target,
        config,
        images=images,
        default_image=default_image,
        wait_image=wait_image,
        which=shutil.which,
        host_paths=host_paths(),
        build_context=_relative(config.root, folder),
        build_ignore=[os.path.abspath(folder)],
    )
    for path in write_files(folder, result.files):
        click.echo(str(path))
    written, kept = write_project_files(config.root, result.project_files)
    for path in written:
        click.echo(str(path))
    for line in result.warnings:
        click.echo(WARNING_PREFIX + line, err=True)
    for path in kept:
        click.echo(
            f"{WARNING_PREFIX}{path} was not written by mpsv3 export: kept as it is, and"
            " the image is built from it",
            err=True,
        )


def _load(target: str, path: Path, overrides: dict[str, str]) -> Config:
    config = load_config(path, overrides)
    if target not in CONTAINER_TARGETS:
        return config
    variables = container_variables(config, name_in(target))
    return load_config(path, {**variables, **overrides})


def host_paths() -> list[str]:
    """Folders of this machine that must not leak into containers: the venv, the home folder."""
    paths = [str(Path.home())]
    if sys.prefix != sys.base_prefix:  # a virtualenv's interpreter is never in an image
        paths.append(sys.prefix)
    return paths


def _relative(root: Path, folder: Path) -> str:
    """The project folder as seen from the output folder (Compose resolves paths from there)."""
    return Path(os.path.relpath(root, os.path.abspath(folder))).as_posix()


def parse_images(values: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """Split ``--image`` values into images by service id and the project image's name.

    Raises:
        MpsvError: an empty image, a service given twice, or two defaults (exit 2).
    """
    images: dict[str, str] = {}
    default: str | None = None
    for value in values:
        service_id, sep, image = value.partition("=")
        if not sep:
            service_id, image = "", value
        if not image or (sep and not service_id):
            raise MpsvError(f"--image {value!r}: expected ID=IMAGE or IMAGE", EXIT_USAGE)
        if not sep:
            if default is not None:
                raise MpsvError(
                    f"--image {value!r}: a default image was already given ({default!r})",
                    EXIT_USAGE,
                )
            default = image
        elif service_id in images:
            raise MpsvError(f"--image {service_id}=...: given twice", EXIT_USAGE)
        else:
            images[service_id] = image
    return images, default


def write_files(folder: Path, files: dict[str, str]) -> list[Path]:
    """Write each file under ``folder`` (created as needed); other files there are kept.

    Raises:
        MpsvError: a file cannot be written (exit 1).
    """
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = folder / name
            path.write_text(text, encoding="utf-8", newline="\n")
            written.append(path)
    except OSError as exc:
        where = exc.filename or folder
        raise MpsvError(f"cannot write {where}: {exc.strerror or exc}", EXIT_FAILURE) from None
    return written


def write_project_files(root: Path, files: dict[str, str]) -> tuple[list[Path], list[Path]]:
    """Write the build files into the project folder, never over a hand-written one.

    Returns:
        The files written, and the files kept because they do not start with the mark.

    Raises:
        MpsvError: a file cannot be read or written (exit 1).
    """
    kept = [root / name for name in files if _hand_written(root / name)]
    to_write = {name: text for name, text in files.items() if root / name not in kept}
    return write_files(root, to_write) if to_write else [], kept


def _hand_written(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return not handle.readline().startswith(GENERATED_MARK)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise MpsvError(f"cannot read {path}: {exc.strerror or exc}", EXIT_FAILURE) from None
