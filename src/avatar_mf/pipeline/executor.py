"""A bounded executor for CPU-heavy stage work (mesh processing, text-to-animation, models).

Work never runs on the event loop. The executor has a fixed number of worker threads and a
bounded number of jobs waiting; past that, :meth:`StageExecutor.run` raises
:class:`StageBusy` at once, so a burst degrades the sessions that asked (they get an error
message) instead of queueing without bound and stalling everyone.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


class StageBusy(RuntimeError):
    """Too many stage jobs are waiting; retry later."""

    retryable = True


class StageExecutor:
    def __init__(self, *, workers: int = 2, max_pending: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="avatar-stage")
        self._max_pending = max_pending
        self._pending = 0

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self._pending >= self._max_pending:
            raise StageBusy(f"{self._pending} stage jobs already waiting")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        finally:
            self._pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
