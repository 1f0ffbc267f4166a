"""The dependency gate: may a service start, and if not, which dependency is it waiting for?

Why pure: the answer depends only on the states of the services it requires, and the reason
is what an operator reads in ``status`` ("waiting for falkordb (backoff)"), so both are
decided here from values and unit-tested. The supervisor asks again whenever a dependency
changes and posts the answer to the dependent's lifecycle (``DepsChanged``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mpsv3.policy.states import SATISFIES_DEPENDENTS, State

#: A dependency's (state, reason), or None when it is not supervised in this run.
Lookup = Callable[[str], "tuple[State, str | None] | None"]


def gate(requires: Sequence[str], lookup: Lookup) -> tuple[bool, str]:
    """``(True, "")`` when every dependency is ready (or completed), else the first that is not.

    Args:
        requires: the ids the service waits for, in order (replicas expanded).
        lookup: a dependency's current state and reason.
    """
    for dep in requires:
        found = lookup(dep)
        if found is None:
            return False, f"waiting for {dep} (not supervised)"
        state, reason = found
        if state in SATISFIES_DEPENDENTS:
            continue
        detail = f"quarantined: {reason}" if state is State.QUARANTINED else state.value
        return False, f"waiting for {dep} ({detail})"
    return True, ""
