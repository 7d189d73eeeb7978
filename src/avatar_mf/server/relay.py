"""Per-receiver relay queues: a slow receiver never grows the MF's memory or delays others.

Each receiver in a room has one :class:`ReceiverQueue` per relayed channel kind. Publishing
never blocks: the item is offered to every other receiver's queue, and each queue pushes to
its channel only while the channel's SCTP send buffer is below ``high_water`` bytes.

- Animation units are *perishable*: only the newest ``max_units`` per sender are kept; older
  ones are dropped (counted) when a newer one arrives, because a late animation frame is worse
  than a skipped one. A sender's CONFIG unit is never dropped: the latest CONFIG of each sender
  is kept aside and delivered before any later unit of that sender.
- Metadata messages are *reliable*: kept in order up to ``max_bytes``; past that the receiver
  is declared overloaded (``overflowed``), its metadata queue is cleared, and the caller tells
  it with an error message and may end its call.

A queue that could not push everything arms one timer (``retry_interval``) on the injected
clock and tries again; nothing else runs per receiver, so the cost of a stalled receiver is
one timer and a bounded buffer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from avatar_mf.clock import Clock, TimerHandle


class Outlet:
    """Where a queue delivers: a send function and the channel's buffered byte count."""

    def __init__(self, send: Callable[[str | bytes], None], buffered: Callable[[], int]) -> None:
        self.send = send
        self.buffered = buffered


@dataclass
class QueueStats:
    delivered: int = 0
    dropped_stale: int = 0
    overflowed: int = 0


def _size(data: str | bytes) -> int:
    return len(data) if isinstance(data, bytes) else len(data.encode())


class AnimationQueue:
    """Perishable animation units for one receiver, newest ``max_units`` per sender kept."""

    def __init__(
        self,
        outlet: Outlet,
        clock: Clock,
        *,
        max_units: int = 3,
        high_water: int = 65536,
        retry_interval: float = 0.005,
    ) -> None:
        self._outlet = outlet
        self._clock = clock
        self._max_units = max_units
        self._high_water = high_water
        self._retry = retry_interval
        self._configs: dict[str, bytes] = {}
        self._units: dict[str, deque[bytes]] = {}
        # Senders with something pending, each at most once, served round-robin.
        self._ready: deque[str] = deque()
        self._is_ready: set[str] = set()
        self._timer: TimerHandle | None = None
        self.stats = QueueStats()

    @property
    def pending(self) -> int:
        return len(self._configs) + sum(len(q) for q in self._units.values())

    def offer(self, sender: str, unit: bytes, *, is_config: bool = False) -> None:
        if is_config:
            self._configs[sender] = unit
            # Units queued before a new CONFIG belong to the old configuration.
            stale = self._units.pop(sender, None)
            if stale:
                self.stats.dropped_stale += len(stale)
        else:
            queue = self._units.setdefault(sender, deque())
            queue.append(unit)
            while len(queue) > self._max_units:
                queue.popleft()
                self.stats.dropped_stale += 1
        if sender not in self._is_ready:
            self._is_ready.add(sender)
            self._ready.append(sender)
        self.pump()

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()

    def pump(self) -> None:
        while self._ready:
            if self._outlet.buffered() >= self._high_water:
                self._arm()
                return
            sender = self._ready.popleft()
            config = self._configs.pop(sender, None)
            queue = self._units.get(sender)
            if config is not None:
                self._outlet.send(config)
            elif queue:
                self._outlet.send(queue.popleft())
            else:
                self._is_ready.discard(sender)
                continue
            self.stats.delivered += 1
            if queue:
                self._ready.append(sender)
            else:
                self._units.pop(sender, None)
                self._is_ready.discard(sender)

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self._clock.call_later(self._retry, self._on_timer)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._configs.clear()
        self._units.clear()
        self._ready.clear()
        self._is_ready.clear()


class MessageQueue:
    """Reliable, ordered messages for one receiver, bounded by ``max_bytes``."""

    def __init__(
        self,
        outlet: Outlet,
        clock: Clock,
        *,
        max_bytes: int = 1 << 20,
        high_water: int = 65536,
        retry_interval: float = 0.005,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self._outlet = outlet
        self._clock = clock
        self._max_bytes = max_bytes
        self._high_water = high_water
        self._retry = retry_interval
        self._on_overflow = on_overflow
        self._items: deque[str | bytes] = deque()
        self._bytes = 0
        self._timer: TimerHandle | None = None
        self.overflowed = False
        self.stats = QueueStats()

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def offer(self, message: str | bytes) -> None:
        if self.overflowed:
            return
        size = _size(message)
        if self._bytes + size > self._max_bytes:
            self.overflowed = True
            self.stats.overflowed += 1
            self.close()
            if self._on_overflow is not None:
                self._on_overflow()
            return
        self._items.append(message)
        self._bytes += size
        self.pump()

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()

    def pump(self) -> None:
        while self._items:
            if self._outlet.buffered() >= self._high_water:
                if self._timer is None:
                    self._timer = self._clock.call_later(self._retry, self._on_timer)
                return
            message = self._items.popleft()
            self._bytes -= _size(message)
            self._outlet.send(message)
            self.stats.delivered += 1

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._items.clear()
        self._bytes = 0
