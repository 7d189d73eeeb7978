"""Time as a dependency: every timer in the product goes through a :class:`Clock`.

Protocol state machines never read the wall clock or touch the event loop; they are handed a
Clock. Production uses :class:`LoopClock`; tests use :class:`avatar_mf.testing.clock.FakeClock`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once, ``delay`` seconds from now, unless cancelled."""
        ...


class LoopClock:
    """A Clock backed by the running asyncio event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self._loop.call_later(max(0.0, delay), callback)


async def sleep(clock: Clock, delay: float) -> None:
    """Wait ``delay`` seconds of ``clock`` time (a fake clock's ``advance`` ends it)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    handle = clock.call_later(delay, wake)
    try:
        await done
    finally:
        handle.cancel()
