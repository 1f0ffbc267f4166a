"""The ``mpsv3 export TARGET`` click command: load, export, write the files, print warnings.

Why apart from the exporters: they are pure, and this is the one place of the feature that
reads the config file, writes the output folder and prints. Errors are raised, never printed
here: ``ConfigInvalid`` (exit 78) and ``MpsvError`` (exit 2 for a usage error such as a missing
image, 1 for a file that cannot be written) reach ``cli.main()``, which reports them once.
The lead registers ``export_command`` on the ``mpsv3`` group.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import click

from mpsv3.config.loader import load_config, parse_overrides
from mpsv3.errors import EXIT_FAILURE, EXIT_USAGE, MpsvError
from mpsv3.export import TARGETS, export
from mpsv3.export.kubernetes import DEFAULT_WAIT_IMAGE
from mpsv3.export.model import ExportResult

__all__ = ["export_command", "parse_images", "write_files"]

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
    help="Container image of service ID, or of every service without one (compose, kubernetes).",
)
@click.option(
    "--wait-image",
    default=DEFAULT_WAIT_IMAGE,
    show_default=True,
    help="Image of the Kubernetes init containers that wait for dependencies.",
)
def export_command(
    target: str,
    config_path: Path,
    output: Path | None,
    sets: tuple[str, ...],
    image_args: tuple[str, ...],
    wait_image: str,
) -> None:
    """Export the stack to systemd units, a compose.yaml, or Kubernetes objects.

    What the target cannot express is listed on stderr, one warning per line.
    """
    images, default_image = parse_images(image_args)
    config = load_config(config_path, parse_overrides(sets))
    result: ExportResult = export(
        target,
        config,
        images=images,
        default_image=default_image,
        wait_image=wait_image,
        which=shutil.which,
    )
    folder = output if output is not None else Path(f"export-{target}")
    for path in write_files(folder, result.files):
        click.echo(str(path))
    for line in result.warnings:
        click.echo(WARNING_PREFIX + line, err=True)


def parse_images(values: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """Split ``--image`` values into images by service id and the one default image.

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
