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

A unit offered to a receiver with nothing waiting and room in its channel is sent at once
(the common case: the queues are for a receiver that falls behind). A queue that could not
push everything arms one timer (``retry_interval``) on the injected
clock and tries again; nothing else runs per receiver, so the cost of a stalled receiver is
one timer and a bounded buffer.

Node-wide relay figures (for ``/metrics``) go to the :class:`RelayMetrics` an :class:`Outlet`
carries: per queue kind, the units delivered, dropped stale and overflowed, and a
:class:`FixedHistogram` of relay latency, the time from a unit being offered to the
receiver's queue to it being handed to the channel, measured on the injected clock (one clock
read per offer and one per pump; zero while the receiver keeps up).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from avatar_mf.clock import Clock, TimerHandle

#: Upper bounds (seconds) of the relay latency buckets: sub-millisecond (the receiver keeps up)
#: to seconds (a stalled receiver whose units are about to go stale).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class FixedHistogram:
    """Counts of observations per fixed bucket, with their sum: cheap enough for a hot path
    (one bisect and three additions), read by the metrics collector at scrape time.

    ``counts[i]`` is the number of observations ``<= bounds[i]`` and ``> bounds[i-1]``; the last
    count is the ``+Inf`` bucket. :meth:`cumulative` gives them as Prometheus exposes them.
    """

    __slots__ = ("bounds", "counts", "sum", "count", "_zero")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bucket bounds must be a non-empty increasing sequence")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0
        self._zero = bisect_left(self.bounds, 0.0)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def observe_zero(self) -> None:
        """``observe(0.0)`` without the search: a unit a receiver got at once."""
        self.counts[self._zero] += 1
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` for every bucket, ``+Inf`` last."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


@dataclass
class QueueStats:
    delivered: int = 0
    dropped_stale: int = 0
    overflowed: int = 0


@dataclass
class RelayMetrics:
    """Node-wide relay figures, shared by every queue of the node (through their outlets)."""

    animation: QueueStats = field(default_factory=QueueStats)
    metadata: QueueStats = field(default_factory=QueueStats)
    animation_latency: FixedHistogram = field(default_factory=FixedHistogram)
    """Seconds from an animation unit offered to a receiver's queue to its send."""
    metadata_latency: FixedHistogram = field(default_factory=FixedHistogram)
    """Seconds from a metadata message offered to a receiver's queue to its send."""


class Outlet:
    """Where a queue delivers: a send function and the channel's buffered byte count, and
    optionally the node's :class:`RelayMetrics` the queue reports to."""

    def __init__(
        self,
        send: Callable[[str | bytes], None],
        buffered: Callable[[], int],
        metrics: RelayMetrics | None = None,
    ) -> None:
        self.send = send
        self.buffered = buffered
        self.metrics = metrics


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
        self._send = outlet.send
        self._buffered = outlet.buffered
        self._clock = clock
        self._max_units = max_units
        self._high_water = high_water
        self._retry = retry_interval
        # Each unit with the clock time it was offered at (for the latency histogram).
        self._configs: dict[str, tuple[float, bytes]] = {}
        self._units: dict[str, deque[tuple[float, bytes]]] = {}
        # Senders with something pending, each at most once, served round-robin.
        self._ready: deque[str] = deque()
        self._is_ready: set[str] = set()
        self._timer: TimerHandle | None = None
        self.stats = QueueStats()
        metrics = outlet.metrics
        self._node = metrics.animation if metrics is not None else None
        self._latency = metrics.animation_latency if metrics is not None else None

    @property
    def pending(self) -> int:
        return len(self._configs) + sum(len(q) for q in self._units.values())

    def offer(self, sender: str, unit: bytes, *, is_config: bool = False) -> None:
        if not self._ready and self._buffered() < self._high_water:
            # Nothing waits for this receiver and its channel takes more: the unit goes out
            # at once, as pump would send it (a relay latency of zero), without the queues.
            self._send(unit)
            self.stats.delivered += 1
            latency = self._latency
            if latency is not None:
                latency.observe_zero()
                if self._node is not None:
                    self._node.delivered += 1
            return
        now = self._clock.now()
        dropped = 0
        if is_config:
            self._configs[sender] = (now, unit)
            # Units queued before a new CONFIG belong to the old configuration.
            stale = self._units.pop(sender, None)
            if stale:
                dropped = len(stale)
        else:
            queue = self._units.setdefault(sender, deque())
            queue.append((now, unit))
            while len(queue) > self._max_units:
                queue.popleft()
                dropped += 1
        if dropped:
            self.stats.dropped_stale += dropped
            if self._node is not None:
                self._node.dropped_stale += dropped
        if sender not in self._is_ready:
            self._is_ready.add(sender)
            self._ready.append(sender)
        self.pump()

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()

    def pump(self) -> None:
        latency = self._latency
        now = self._clock.now() if latency is not None else 0.0
        while self._ready:
            if self._outlet.buffered() >= self._high_water:
                self._arm()
                return
            sender = self._ready.popleft()
            config = self._configs.pop(sender, None)
            queue = self._units.get(sender)
            if config is not None:
                offered, data = config
            elif queue:
                offered, data = queue.popleft()
            else:
                self._is_ready.discard(sender)
                continue
            self._outlet.send(data)
            self.stats.delivered += 1
            if latency is not None:
                latency.observe(now - offered)
                if self._node is not None:
                    self._node.delivered += 1
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
        # Each message with its size and the clock time it was offered at.
        self._items: deque[tuple[float, int, str | bytes]] = deque()
        self._bytes = 0
        self._timer: TimerHandle | None = None
        self.overflowed = False
        self.stats = QueueStats()
        metrics = outlet.metrics
        self._node = metrics.metadata if metrics is not None else None
        self._latency = metrics.metadata_latency if metrics is not None else None

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
            if self._node is not None:
                self._node.overflowed += 1
            self.close()
            if self._on_overflow is not None:
                self._on_overflow()
            return
        self._items.append((self._clock.now(), size, message))
        self._bytes += size
        self.pump()

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()

    def pump(self) -> None:
        latency = self._latency
        now = self._clock.now() if latency is not None else 0.0
        while self._items:
            if self._outlet.buffered() >= self._high_water:
                if self._timer is None:
                    self._timer = self._clock.call_later(self._retry, self._on_timer)
                return
            offered, size, message = self._items.popleft()
            self._bytes -= size
            self._outlet.send(message)
            self.stats.delivered += 1
            if latency is not None:
                latency.observe(now - offered)
                if self._node is not None:
                    self._node.delivered += 1

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._items.clear()
        self._bytes = 0
