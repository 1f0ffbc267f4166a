"""The settings of one service that its lifecycle decides by, taken from its plan once.

Why not the plan itself: ``lifecycle.step`` runs for every event, and a small frozen value
with the few facts it needs (and the same fields the backoff policy reads) keeps the pure
tests short: a test builds ``Rules`` directly instead of a whole service plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpsv3.plan import BackoffPlan, RestartPlan, ServicePlan, StopPlan, WatchPlan

DEFAULT_RESTART = RestartPlan("on-failure", BackoffPlan(1000, 2.0, 60000, 0.0), 10, 60.0)
DEFAULT_STOP = StopPlan("SIGTERM", 10.0)


@dataclass(frozen=True)
class Rules:
    restart: RestartPlan = DEFAULT_RESTART
    stop: StopPlan = DEFAULT_STOP
    watch: WatchPlan | None = None
    is_task: bool = False
    has_readiness: bool = False
    has_liveness: bool = False
    liveness_threshold: int = 3
    criticality: str = "core"

    @classmethod
    def of(cls, plan: ServicePlan) -> Rules:
        return cls(
            restart=plan.restart,
            stop=plan.stop,
            watch=plan.watch,
            is_task=plan.is_task,
            has_readiness=plan.readiness is not None,
            has_liveness=plan.liveness is not None,
            liveness_threshold=plan.liveness.failure_threshold if plan.liveness is not None else 3,
            criticality=plan.criticality,
        )
