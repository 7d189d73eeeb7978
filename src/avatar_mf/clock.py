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
