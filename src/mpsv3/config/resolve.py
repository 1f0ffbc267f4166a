"""Resolution: a validated stack made runnable where it is (absolute paths, merged env).

Why a step of its own: validation says what is written is well-formed; resolution ties it to
this machine and this file's folder. Relative ``cwd``, ``state_dir`` and ``env_file`` entries
become absolute, the instance gets its default name, and each service's environment is
merged in one order: the global ``env:`` < its ``env_file`` files (a later file wins) < its own
``env:`` (< ``MPSV3_REPLICA`` for a replica). Reading the env files is the only I/O; each file
is read once per load, and each of its problems reported once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mpsv3.config.envfile import EnvFile, EnvFileResult, read_env_file
from mpsv3.config.schema import MAX_ID_LENGTH, RunnableService, ServiceSpec, StackSpec
from mpsv3.config.source import Source
from mpsv3.config.wording import show
from mpsv3.errors import ConfigError


class Resolver:
    """Resolves the services of one stack loaded from ``path``; owned by one load.

    Attributes:
        errors: env file problems, each once, in the order found.
    """

    def __init__(self, stack: StackSpec, path: Path, source: Source) -> None:
        self.stack = stack
        self.root = path.parent
        self.source = source
        self.errors: list[ConfigError] = []
        self._files: dict[Path, EnvFileResult] = {}
        self._reported: set[ConfigError] = set()

    def stack_spec(self, services: list[ServiceSpec]) -> StackSpec:
        """The stack with its name and state dir resolved, and ``services`` (resolved) in it."""
        name = self.stack.name or default_name(self.root)
        return self.stack.model_copy(
            update={
                "name": name,
                "state_dir": os.path.normpath(self.root / self.stack.state_dir),
                "services": services,
            }
        )

    def runnable(
        self, items: list[RunnableService], templates: list[ServiceSpec], varying: set[str]
    ) -> list[RunnableService]:
        """Each process resolved like its template.

        Args:
            items: the processes, unresolved.
            templates: the resolved templates, in config order.
            varying: the templates whose replicas differ (``${MPSV3_REPLICA}``); the replicas
                of the others are copies of their resolved template.
        """
        position = {spec.id: n for n, spec in enumerate(templates)}
        result = []
        for item in items:
            n = position[item.template]
            if item.replica is None:
                spec = templates[n]
            elif item.template in varying:
                spec = self.service(item.spec, n, item.template)[0]
            else:
                spec = templates[n].replica(item.replica)
            result.append(item.model_copy(update={"spec": spec}))
        return result

    def service(
        self, spec: ServiceSpec, position: int, written_id: str | None = None
    ) -> tuple[ServiceSpec, list[str]]:
        """``spec`` resolved, and the env keys whose value came from its env files.

        Args:
            spec: a validated service (a template or a replica).
            position: the index of its service item in the document (for error lines).
            written_id: the id written in the config (a replica's template), for messages.
        """
        from_files: dict[str, str] = {}
        entries: list[str] = []
        for j, entry in enumerate(spec.env_file):
            env_file = EnvFile.of(entry, self.root, self.source.shown)
            entries.append(env_file.written())
            result = self._read(env_file)
            if result.problem:
                path = self.source.service_path(position, "env_file", j)
                owner = show(written_id or spec.id)
                message = f"service {owner}: env_file[{j}]: {result.problem}"
                self._report(self.source.error(path, message))
            for error in result.errors:
                self._report(error)
            from_files.update(result.values)
        resolved = spec.model_copy(
            update={
                "env": {**self.stack.env, **from_files, **spec.env},
                "cwd": os.path.normpath(os.path.join(self.root, spec.cwd)),
                "env_file": entries,
            }
        )
        return resolved, [key for key in from_files if key not in spec.env]

    def _read(self, env_file: EnvFile) -> EnvFileResult:
        result = self._files.get(env_file.path)
        if result is None:
            result = self._files[env_file.path] = read_env_file(env_file)
        return result

    def _report(self, error: ConfigError) -> None:
        if error not in self._reported:
            self._reported.add(error)
            self.errors.append(error)


def default_name(root: Path) -> str:
    """The config folder's name, made a valid instance name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", root.name)[:MAX_ID_LENGTH] or "mpsv3"
