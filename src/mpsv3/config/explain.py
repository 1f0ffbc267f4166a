"""``mpsv3 check --explain``: the effective config, every default filled in, as YAML.

Why: defaults live in one place (the schema), and an operator should not have to read it to
know what a service will really do. The output is itself a valid config: loading it back
gives the same stack, so ``$`` is written as ``$$`` (interpolation has already happened), and
only the probe kind a probe uses is printed. Two things are printed as written rather than as
resolved, so that the output stays true and loads back the same:

* a value written with ``${MPSV3_REPLICA}`` keeps that reference (each replica has its own
  value; a comment lists the replicas);
* variables that come from an ``env_file`` are not copied into ``env:`` (the file is named,
  its secrets stay in it).
"""

from __future__ import annotations

from typing import Any

import yaml

from mpsv3.config.schema import PROBE_KINDS, REPLICA_VARIABLE, Config


def explain(config: Config) -> str:
    """The effective config of ``config`` as YAML, with a comment naming its file."""
    data = config.stack.model_dump(mode="json")
    data = _escape(data)
    texts = config.provenance.replica_texts
    hidden = config.provenance.env_file_keys
    for service in data["services"]:
        for gate in ("readiness", "liveness"):
            if isinstance(service.get(gate), dict):
                service[gate] = _only_used_kind(service[gate])
        sid = service["id"]
        for key in hidden.get(sid, []):
            service["env"].pop(key, None)
        for path, text in texts.get(sid, []):
            _put(service, path, text)
    header = (
        f"# effective config of {config.path}\n"
        "# (defaults filled in, variables interpolated; a literal $ is written $$)\n"
    )
    header += "".join(_replica_comment(config, sid) for sid in _replicated(config))
    return header + yaml.safe_dump(
        data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )


def _replicated(config: Config) -> list[str]:
    return [spec.id for spec in config.services if spec.replicas is not None]


def _replica_comment(config: Config, sid: str) -> str:
    """``# worker runs as worker-1 … worker-4 (MPSV3_REPLICA = 1 … 4)``."""
    members = config.members(sid)
    return (
        f"# {sid} runs as {members[0]} … {members[-1]} "
        f"({REPLICA_VARIABLE} = 1 … {len(members)})\n"
    )


def _put(node: Any, path: tuple[str | int, ...], text: str) -> None:
    """Set the value at ``path`` under ``node`` to ``text`` (a written ``${MPSV3_REPLICA}``).

    The written form may be shorter than the model's (``cmd`` as one string instead of a
    list): the text replaces the value where the path stops matching.
    """
    for n, part in enumerate(path):
        found = (isinstance(node, dict) and isinstance(part, str) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if not found:
            return
        if n == len(path) - 1 or not isinstance(node[part], (dict, list)):
            node[part] = text
            return
        node = node[part]


def _only_used_kind(probe: dict[str, Any]) -> dict[str, Any]:
    """Drop the probe kinds that are not set (``tcp: null``, ``notify: false``, ...)."""
    return {
        key: value
        for key, value in probe.items()
        if key not in PROBE_KINDS or value not in (None, False)
    }


def _escape(value: Any) -> Any:
    """Write ``$`` as ``$$`` in every string, so that loading the output changes nothing."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: _escape(item) for key, item in value.items()}  # keys are never interpolated
    if isinstance(value, list):
        return [_escape(item) for item in value]
    return value
