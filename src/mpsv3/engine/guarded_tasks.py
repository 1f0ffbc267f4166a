"""The tasks of one runner: none may fail its task group, and our own trouble is retried.

Why: a task group fails as a whole when one of its tasks raises, and the supervisor's group
would take every service down with it. So each task of a runner runs guarded: an exception
is reported (``engine/trouble.py``) and handed to the task's own ``on_error``, which decides
whether it is the service's failure (a spawn that raised) or the supervisor's own shortage
(EMFILE while checking ports), retried after a growing pause without counting anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from mpsv3._compat import TaskGroup

#: The longest pause before retrying what failed for the supervisor's own reasons (EMFILE).
TROUBLE_BACKOFF_MAX_S = 30.0

Report = Callable[[str, "BaseException | str", "str | None"], None]


class GuardedTasks:
    """Owned by one runner; ``group`` is its task group while the runner runs."""

    def __init__(self, report: Report, service: str) -> None:
        self.group: TaskGroup | None = None
        self._report = report
        self._service = service
        self._retries = 0

    def start(
        self, coro: Coroutine[Any, Any, None], kind: str = "task",
        on_error: Callable[[BaseException], None] | None = None,
    ) -> asyncio.Task[None]:
        assert self.group is not None, "the runner is not running"
        return self.group.create_task(self._guarded(coro, kind, on_error))

    async def _guarded(
        self, coro: Coroutine[Any, Any, None], kind: str, on_error: Callable[[BaseException], None] | None
    ) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # fault isolation: one service's error stays its own
            self._report(f"{kind}:{type(exc).__name__}", exc, self._service)
            if on_error is not None:
                on_error(exc)

    def retry_later(self, action: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[BaseException], None]:
        """An ``on_error`` that runs ``action`` again after 1 s, 2 s ... up to 30 s."""

        def retry(_: BaseException) -> None:
            self._retries += 1
            delay = min(TROUBLE_BACKOFF_MAX_S, 0.5 * 2 ** min(self._retries, 8))
            asyncio.get_running_loop().call_later(delay, lambda: self.start(action(), "retry", retry))

        return retry
