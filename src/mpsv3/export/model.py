"""What every exporter shares: the result type, its error, and the few facts all targets read.

Why one module: the three targets (systemd, Compose, Kubernetes) each own their mapping, but
they must agree on what a service *is* once taken out of mpsv3: its stack name, its full
environment, its working directory, its image, and the shell command that runs a probe on a
host or in a container that has no mpsv3. Keeping those here means a probe is spelled the same
way in a systemd ``ExecStartPost=`` and in a Compose ``healthcheck``. Everything here is pure:
no file, process or environment is read.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from mpsv3.config.schema import (
    Config,
    ExecCheck,
    HttpGetCheck,
    RedisPingCheck,
    ServiceSpec,
    TcpCheck,
)
from mpsv3.errors import EXIT_USAGE, MpsvError

__all__ = [
    "ExportError",
    "ExportResult",
    "Warnings",
    "dump_yaml",
    "exec_shell",
    "probe_shell",
    "service_cwd",
    "service_env",
    "stack_name",
    "whole_seconds",
]


@dataclass(frozen=True)
class ExportResult:
    """The output of one exporter: files to write (relative path -> text) and what was lost.

    ``warnings`` holds one line per setting that has no equivalent in the target (or only an
    approximate one), without any prefix; the command prints each as
    ``mpsv3 export: warning: <line>``. ``project_image`` names the image built from the
    project folder when a service runs it; ``project_files`` are then the build files
    (``Containerfile``, ``.containerignore``), relative to the project folder.
    """

    files: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    project_image: str | None = None
    project_files: dict[str, str] = field(default_factory=dict)


class ExportError(MpsvError):
    """The config cannot be exported as asked (a missing image, an unusable name).

    Exit code 2 by default: the fix is an option on the command line, not in the config.
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message, exit_code)


class Warnings:
    """Collects an exporter's warning lines in a fixed form, in the order they are found.

    Owned by one ``export()`` call; the lines end up in ``ExportResult.warnings``.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.lines: list[str] = []

    def service(self, service_id: str, text: str) -> None:
        """A per-service line: ``service "ID": TEXT`` (once, however often it is found)."""
        line = f'service "{service_id}": {text}'
        if line not in self.lines:
            self.lines.append(line)

    def dropped(self, service_id: str, what: str, consequence: str = "dropped") -> None:
        """The usual line: ``service "ID": WHAT has no equivalent in TARGET; CONSEQUENCE``."""
        self.service(service_id, f"{what} has no equivalent in {self.target}; {consequence}")

    def stack(self, text: str) -> None:
        """A line about the whole stack (exit-code semantics, ``alert_cmd``)."""
        self.lines.append(text)


def stack_name(config: Config) -> str:
    """The instance name: ``name:``, or the config folder's name as the loader would pick it."""
    if config.stack.name:
        return config.stack.name
    return re.sub(r"[^A-Za-z0-9_.-]", "_", config.root.name) or "mpsv3"


def service_env(config: Config, spec: ServiceSpec) -> dict[str, str]:
    """The service's environment as mpsv3 adds it: global ``env`` then the service's own.

    The loader already merged them (and interpolated every value); merging again is a no-op
    for a loaded config and keeps a config built in code correct.
    """
    return {**config.stack.env, **spec.env}


def service_cwd(config: Config, spec: ServiceSpec) -> str:
    """The service's absolute working directory (the loader resolves it; code may not have)."""
    if os.path.isabs(spec.cwd):
        return spec.cwd
    return os.path.normpath(os.path.join(config.root, spec.cwd))


def probe_shell(check: TcpCheck | HttpGetCheck | RedisPingCheck, timeout_s: float) -> str:
    """A POSIX shell command that passes exactly when mpsv3's probe would.

    Used where the target can only run a command (a Compose healthcheck, a systemd
    ``ExecStartPost=`` loop, a Kubernetes exec probe for ``redis_ping``). It needs ``curl``
    (``http_get``), ``nc -z`` or ``bash`` (``tcp``), or ``redis-cli`` (``redis_ping``) where it
    runs, and ``timeout``; ``docs/export.md`` says so.

    Args:
        check: the probe's settings.
        timeout_s: the bound of one attempt, in seconds.
    """
    seconds = whole_seconds(timeout_s)
    if isinstance(check, HttpGetCheck):
        # The status must be exactly the expected one (curl -f would accept any 2xx).
        return (
            f"test \"$(curl -s -o /dev/null -w '%{{http_code}}' --max-time {seconds} "
            f'{shlex.quote(check.url)})" = {check.expect_status}'
        )
    if isinstance(check, TcpCheck):
        # nc where there is one (busybox images), else bash's /dev/tcp (Debian-like hosts).
        host = shlex.quote(check.host)
        bash_connect = shlex.quote(f"exec 3<>/dev/tcp/{check.host}/{check.port}")
        return (
            f"nc -z -w {seconds} {host} {check.port} 2>/dev/null"
            f" || timeout {seconds} bash -c {bash_connect}"
        )
    return (
        f"timeout {seconds} redis-cli -h {shlex.quote(check.host)} -p {check.port} ping"
        " | grep -qx PONG"
    )


def exec_shell(check: ExecCheck) -> str:
    """An ``exec`` probe's argv as one shell command line (quoted, no shell expansion)."""
    return shlex.join(check.cmd)


def whole_seconds(seconds: float) -> int:
    """Seconds rounded up to a whole number, at least 1: for tools and fields that take integers."""
    return max(1, math.ceil(seconds))


class _PlainDumper(yaml.SafeDumper):
    """A YAML dumper that writes a shared value twice instead of an ``&anchor``/``*alias``."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(documents: list[Any]) -> str:
    """YAML documents (``---`` between them), keys in insertion order, no anchors."""
    return yaml.dump_all(
        documents, Dumper=_PlainDumper, sort_keys=False, width=100, default_flow_style=False
    )
