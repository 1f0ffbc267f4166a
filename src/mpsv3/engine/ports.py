"""The port check before a start: free, held by a leftover of ours (reclaimed), or held by a stranger.

Why before every start and not only the first: a port held by a process that is not ours is
the seed's PID-6924 incident; the service must not start into it (it would crash-loop on
``address in use``), and nothing of anybody else's may be killed. A holder that carries this
instance's marker is a leftover of ours and is stopped with the one stop routine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from mpsv3 import platform
from mpsv3.engine.events import EventBus
from mpsv3.plan import ServicePlan


class PortGuard:
    """Answers "may this service bind its ports now?" for one supervisor.

    Args:
        instance: the instance name (its marker identifies our leftovers).
        bus: where ``port_conflict`` and ``orphan_reclaimed`` go.
        reclaim: stops the processes of the given pids (they carry our marker).
    """

    def __init__(
        self, instance: str, bus: EventBus, reclaim: Callable[[list[int]], Awaitable[None]]
    ) -> None:
        self._instance = instance
        self._bus = bus
        self._reclaim = reclaim

    async def check(self, spec: ServicePlan) -> str | None:
        """None when every declared port is free (leftovers of ours are reclaimed first)."""
        for port in spec.ports:
            holders = await asyncio.to_thread(platform.port_holders, port)
            ours = await asyncio.to_thread(platform.marked_subset, [pid for pid, _ in holders], self._instance)
            if ours:
                await self._reclaim(ours)  # reports each as orphan_reclaimed
            for pid, cmdline in holders:
                if pid in ours:
                    continue
                self._bus.emit("port_conflict", spec.id, port=port, pid=pid, cmdline=cmdline, level="error")
                return f"port {port} is held by PID {pid} ({cmdline}), not ours"
        return None
