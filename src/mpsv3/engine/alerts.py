"""The quarantine alert: an ``alert`` event, and the operator's ``alert_cmd`` if configured.

Why its own module: the alert command is a process of ours like any service, so it is started
with the same spawn path and ended with the same stop routine, and it may never hang the
supervisor: it gets ``ALERT_TIMEOUT_S`` to finish, then ``ALERT_GRACE_S`` to leave.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mpsv3 import platform
from mpsv3._compat import TaskGroup, timeout
from mpsv3.engine.events import EventBus

#: How long the alert command may run.
ALERT_TIMEOUT_S = 30.0
#: Then: the stop signal, and this long before SIGKILL.
ALERT_GRACE_S = 2.0


async def run_alert(
    bus: EventBus, argv: list[str], cwd: Path, env: dict[str, str], *, instance: str, service: str, reason: str
) -> None:
    """Emit ``alert`` and run ``argv`` with ``MPSV3_ALERT_*`` set (its output is discarded)."""
    env = dict(env, MPSV3_ALERT_SERVICE=service, MPSV3_ALERT_REASON=reason, MPSV3_ALERT_INSTANCE=instance)
    try:
        tree = await platform.spawn(argv, cwd, env)
    except platform.SpawnError as exc:
        bus.emit("alert", service, level="alert", reason=reason, alert_cmd_error=str(exc))
        return
    bus.emit("alert", service, level="alert", reason=reason, alert_cmd_pid=tree.pid)
    async with TaskGroup() as group:
        drain = group.create_task(tree.output.read())
        try:
            async with timeout(ALERT_TIMEOUT_S):
                await tree.wait()
        except (asyncio.TimeoutError, TimeoutError):
            await platform.terminate(tree, "SIGTERM", ALERT_GRACE_S)
        finally:
            drain.cancel()
