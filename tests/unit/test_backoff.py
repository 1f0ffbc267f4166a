"""The exit-code table and the backoff formula, as pure functions (no processes, no clock)."""

from __future__ import annotations

import random

import pytest

from mpsv3.config.schema import BackoffSpec, RestartSpec
from mpsv3.policy.backoff import (
    STORM_RESTARTS,
    BackoffPolicy,
    Ending,
    Verdict,
    decide,
    effective_failures,
    recent_immediate_restarts,
)


def spec(**kw: object) -> RestartSpec:
    backoff = kw.pop("backoff", BackoffSpec(base_ms=1000, factor=2, max_ms=60000))
    return RestartSpec(backoff=backoff, **kw)  # type: ignore[arg-type]


def test_delays_double_from_base_and_cap_at_max() -> None:
    policy = BackoffPolicy(base_s=1, factor=2, max_s=60)
    assert [policy.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert BackoffPolicy(base_s=1, factor=10, max_s=5).delay(10_000) == 5


def test_zero_base_restarts_at_once() -> None:
    assert BackoffPolicy(base_s=0, factor=2, max_s=60).delay(5) == 0


@pytest.mark.parametrize("attempt", [1, 2, 3, 6])
def test_jitter_stays_within_its_bound(attempt: int) -> None:
    policy = BackoffPolicy(base_s=1, factor=2, max_s=100, jitter=0.25)
    nominal = policy.nominal_delay(attempt)
    rng = random.Random(attempt)
    samples = [policy.delay(attempt, rng.random) for _ in range(2000)]
    assert min(samples) >= nominal * 0.75
    assert max(samples) <= nominal * 1.25
    assert max(samples) - min(samples) > nominal * 0.3  # it really spreads


def test_jitter_extremes() -> None:
    policy = BackoffPolicy(base_s=2, factor=2, max_s=100, jitter=0.5)
    assert policy.delay(1, lambda: 0.0) == 1.0
    assert policy.delay(1, lambda: 1.0) == 3.0


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(base_s=1, factor=2, max_s=60).delay(0)


# (policy, ending, exit code, failures before) -> (verdict, failures after)
TABLE = [
    ("on-failure", Ending.EXIT, 0, 3, Verdict.EXITED, 0),
    ("always", Ending.EXIT, 0, 3, Verdict.BACKOFF, 0),
    ("never", Ending.EXIT, 0, 0, Verdict.EXITED, 0),
    ("on-failure", Ending.EXIT, 99, 5, Verdict.RESTART_NOW, 0),
    ("never", Ending.EXIT, 99, 0, Verdict.RESTART_NOW, 0),
    ("on-failure", Ending.EXIT, 78, 0, Verdict.QUARANTINE, 0),
    ("always", Ending.EXIT, 78, 2, Verdict.QUARANTINE, 2),
    ("on-failure", Ending.EXIT, 1, 0, Verdict.BACKOFF, 1),
    ("always", Ending.EXIT, 1, 4, Verdict.BACKOFF, 5),
    ("on-failure", Ending.EXIT, None, 0, Verdict.BACKOFF, 1),  # killed by a signal
    ("on-failure", Ending.EXIT, 1, 9, Verdict.QUARANTINE, 10),  # the 10th failure
    ("never", Ending.EXIT, 1, 0, Verdict.EXITED, 1),
    ("on-failure", Ending.READINESS_TIMEOUT, None, 0, Verdict.BACKOFF, 1),
    ("always", Ending.READINESS_TIMEOUT, None, 0, Verdict.BACKOFF, 1),
    ("never", Ending.READINESS_TIMEOUT, None, 0, Verdict.EXITED, 1),
    ("on-failure", Ending.READINESS_TIMEOUT, None, 9, Verdict.QUARANTINE, 10),
    ("on-failure", Ending.LIVENESS, None, 1, Verdict.BACKOFF, 2),
    ("on-failure", Ending.SPAWN_FAILED, None, 0, Verdict.BACKOFF, 1),
]


@pytest.mark.parametrize(("policy", "ending", "code", "before", "verdict", "after"), TABLE)
def test_exit_code_table(
    policy: str, ending: Ending, code: int | None, before: int, verdict: Verdict, after: int
) -> None:
    decision = decide(spec(policy=policy, max_retries=10), ending, code, before, rand=lambda: 0.5)
    assert decision.verdict is verdict
    assert decision.failures == after


def test_backoff_delay_follows_failure_count() -> None:
    delays = [decide(spec(), Ending.EXIT, 1, n).delay_s for n in range(0, 5)]
    assert delays == [1, 2, 4, 8, 16]


def test_policy_always_waits_base_after_clean_exit() -> None:
    decision = decide(spec(policy="always"), Ending.EXIT, 0, 0)
    assert decision.delay_s == 1.0


def test_failed_reload_waits_for_a_change_without_counting() -> None:
    decision = decide(spec(max_retries=2), Ending.EXIT, 1, 1, after_reload=True)
    assert decision.verdict is Verdict.WAIT_FOR_CHANGE
    assert decision.failures == 1
    assert decision.reason == "waiting for a change after a failed reload"


def test_quarantine_reason_names_the_count_and_last_failure() -> None:
    decision = decide(spec(max_retries=3), Ending.EXIT, 2, 2)
    assert decision.reason == "3 consecutive failures (max_retries 3); last: exit 2"


@pytest.mark.parametrize(
    ("ready_since", "now", "reset_after", "expected"),
    [(None, 100, 60, False), (10, 69.9, 60, False), (10, 70, 60, True), (10, 10, 0, True)],
)
def test_failure_count_resets_after_a_good_run(
    ready_since: float | None, now: float, reset_after: float, expected: bool
) -> None:
    assert (effective_failures(4, ready_since, now, reset_after) == 0) is expected


def test_a_task_that_exits_0_is_completed() -> None:
    decision = decide(spec(), Ending.EXIT, 0, 2, task=True)
    assert (decision.verdict, decision.failures) == (Verdict.COMPLETED, 0)


@pytest.mark.parametrize(
    ("ending", "reason"),
    [(Ending.EXIT, "crash"), (Ending.READINESS_TIMEOUT, "crash"), (Ending.LIVENESS, "liveness"),
     (Ending.MEMORY, "memory"), (Ending.PORT_HELD, "port"), (Ending.SPAWN_FAILED, "crash")],
)
def test_restart_reason_names_the_ending(ending: Ending, reason: str) -> None:
    assert decide(spec(), ending, None, 0).restart_reason == reason


def test_exit_99_storm_falls_back_to_backoff() -> None:
    calm = decide(spec(), Ending.EXIT, 99, 0, immediate_restarts=STORM_RESTARTS - 1)
    storm = decide(spec(), Ending.EXIT, 99, 0, immediate_restarts=STORM_RESTARTS)
    assert calm.verdict is Verdict.RESTART_NOW
    assert storm.verdict is Verdict.BACKOFF and storm.failures == 1
    assert "restart storm" in storm.reason


def test_storm_window_forgets_old_restarts() -> None:
    times = (0.0, 1.0, 5.0, 9.0, 12.0)
    assert recent_immediate_restarts(times, 12.5) == (5.0, 9.0, 12.0)
