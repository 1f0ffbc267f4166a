"""``mpsv3 check --explain``: the effective config, every default filled in, as YAML.

Why: defaults live in one place (the schema), and an operator should not have to read it to
know what a service will really do. The output is itself a valid config: loading it back
gives the same stack, so ``$`` is written as ``$$`` (interpolation has already happened), and
only the probe kind a probe uses is printed.
"""

from __future__ import annotations

from typing import Any

import yaml

from mpsv3.config.schema import PROBE_KINDS, Config


def explain(config: Config) -> str:
    """The effective config of ``config`` as YAML, with a comment naming its file."""
    data = config.stack.model_dump(mode="json")
    for service in data["services"]:
        for gate in ("readiness", "liveness"):
            if isinstance(service.get(gate), dict):
                service[gate] = _only_used_kind(service[gate])
    header = (
        f"# effective config of {config.path}\n"
        "# (defaults filled in, variables interpolated; a literal $ is written $$)\n"
    )
    return header + yaml.safe_dump(
        _escape(data), sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )


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
        return {key: _escape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escape(item) for item in value]
    return value
