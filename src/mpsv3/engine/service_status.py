"""One service's entry of the status document (``docs/status.schema.json``).

Why apart from the runner: the document is a contract read by the CLI, the UI and scripts;
its shape is built here, in one place, from what the runner knows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mpsv3.engine.events import utc_timestamp
from mpsv3.engine.resources import Usage, as_fields

if TYPE_CHECKING:
    from mpsv3.engine.runner import ServiceRunner


def service_status(runner: ServiceRunner, usage: Usage | None) -> dict[str, Any]:
    """The entry of ``runner``'s service; CPU and memory only when ``usage`` was sampled."""
    m, tree, spec, ctx = runner.model, runner.tree, runner.spec, runner.ctx
    now = ctx.clock()
    next_in = None if m.retry_at is None else round(max(0.0, m.retry_at - now), 3)
    ready_since = None
    if m.ready_since is not None:
        ready_since = utc_timestamp(ctx.wall_clock() - (now - m.ready_since))
    last = runner.last_exit
    return {
        "id": spec.id,
        "state": m.state.value,
        "pid": tree.pid if tree is not None else None,
        "pgid": tree.pgid if tree is not None else None,
        "restarts": m.restarts,
        "failures": runner.failures(),
        "last_exit": None if last is None else {"code": last.code, "signal": last.signal, "at": utc_timestamp(last.at)},
        "next_restart_in_s": next_in,
        "ready_since": ready_since,
        "reason": m.reason,
        "kind": spec.kind,
        "replica": spec.replica,
        "enabled": spec.enabled,
        **as_fields(usage),
    }
