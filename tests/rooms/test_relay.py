"""Relay queues: stale animation units are dropped for slow receivers, memory stays bounded."""

from __future__ import annotations

from avatar_mf.rooms.relay import AnimationQueue, MessageQueue, Outlet
from avatar_mf.testing.clock import FakeClock


class FakeOutlet:
    """A channel whose send buffer drains only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.buffer = 0
        self.capacity_drained = True

    def send(self, data: str | bytes) -> None:
        self.sent.append(data)
        if not self.capacity_drained:
            self.buffer += len(data)

    def outlet(self) -> Outlet:
        return Outlet(self.send, lambda: self.buffer)


def test_fast_receiver_gets_everything_in_order() -> None:
    out = FakeOutlet()
    q = AnimationQueue(out.outlet(), FakeClock())
    q.offer("a", b"cfg", is_config=True)
    for i in range(100):
        q.offer("a", bytes([i]))
    assert out.sent == [b"cfg", *(bytes([i]) for i in range(100))]
    assert q.stats.dropped_stale == 0
    assert q.pending == 0


def test_slow_receiver_keeps_only_newest_units_and_config() -> None:
    clock = FakeClock()
    out = FakeOutlet()
    out.capacity_drained = False
    q = AnimationQueue(out.outlet(), clock, max_units=3, high_water=10)
    q.offer("a", b"C" * 10, is_config=True)  # fills the buffer: nothing else can go
    for i in range(1000):
        q.offer("a", i.to_bytes(2, "big"))
    assert q.pending == 3  # bounded, whatever the sender does
    assert q.stats.dropped_stale == 997
    out.buffer = 0  # the receiver catches up
    clock.advance(0.01)
    assert out.sent[1:] == [i.to_bytes(2, "big") for i in (997, 998, 999)]


def test_new_config_replaces_units_of_the_old_configuration() -> None:
    out = FakeOutlet()
    out.capacity_drained = False
    clock = FakeClock()
    q = AnimationQueue(out.outlet(), clock, high_water=1)
    q.offer("a", b"x")  # sent, buffer now full
    q.offer("a", b"old1")
    q.offer("a", b"cfg2", is_config=True)
    q.offer("a", b"new1")
    out.buffer = 0
    out.capacity_drained = True
    clock.advance(0.01)
    assert out.sent == [b"x", b"cfg2", b"new1"]


def test_senders_are_served_round_robin() -> None:
    out = FakeOutlet()
    out.capacity_drained = False
    clock = FakeClock()
    q = AnimationQueue(out.outlet(), clock, max_units=10, high_water=1)
    q.offer("z", b"z0")  # goes out, blocks the buffer
    for i in range(3):
        q.offer("a", f"a{i}".encode())
        q.offer("b", f"b{i}".encode())
    out.buffer = 0
    out.capacity_drained = True
    clock.advance(0.01)
    assert out.sent == [b"z0", b"a0", b"b0", b"a1", b"b1", b"a2", b"b2"]


def test_blocked_queue_arms_one_timer_and_close_cancels_it() -> None:
    clock = FakeClock()
    out = FakeOutlet()
    out.buffer = 100
    q = AnimationQueue(out.outlet(), clock, high_water=10)
    for i in range(50):
        q.offer("a", bytes([i]))
    assert clock.pending == 1
    q.close()
    assert clock.pending == 0
    assert q.pending == 0


def test_message_queue_is_reliable_until_its_byte_bound() -> None:
    clock = FakeClock()
    out = FakeOutlet()
    out.buffer = 100
    overflows: list[int] = []
    q = MessageQueue(
        out.outlet(), clock, max_bytes=1000, high_water=10,
        on_overflow=lambda: overflows.append(1),
    )
    for _ in range(9):
        q.offer("m" * 100)
    assert q.pending_bytes == 900 and not q.overflowed
    out.buffer = 0
    clock.advance(0.01)
    assert len(out.sent) == 9 and q.pending_bytes == 0
    out.buffer = 100
    for _ in range(11):
        q.offer("n" * 100)
    assert q.overflowed and overflows == [1]
    assert q.pending_bytes == 0  # memory released at once
    assert clock.pending == 0  # and no retry timer left behind
    q.offer("after")  # ignored once overflowed
    assert q.pending_bytes == 0


class CountingClock(FakeClock):
    reads = 0

    def now(self) -> float:
        self.reads += 1
        return super().now()


def test_a_receiver_that_keeps_up_gets_each_unit_without_queueing() -> None:
    """Nothing waiting and room in the channel: the unit goes out at once, with a relay
    latency of zero and no clock read (the queues are for a receiver that falls behind)."""
    from avatar_mf.rooms.relay import RelayMetrics

    clock = CountingClock()
    out = FakeOutlet()
    metrics = RelayMetrics()
    q = AnimationQueue(Outlet(out.send, lambda: out.buffer, metrics), clock, high_water=10)
    q.offer("a", b"cfg", is_config=True)
    q.offer("a", b"u1")
    q.offer("b", b"u2")
    assert out.sent == [b"cfg", b"u1", b"u2"]
    assert clock.reads == 0 and q.pending == 0
    assert metrics.animation.delivered == 3 and metrics.animation_latency.counts[0] == 3
    out.buffer = 10  # the channel is full: units queue, with their offer times
    q.offer("a", b"u3")
    assert out.sent[-1] == b"u2" and q.pending == 1 and clock.reads > 0
    out.buffer = 0
    clock.advance(0.01)
    assert out.sent[-1] == b"u3"


def test_observe_zero_counts_as_observe_of_zero() -> None:
    from avatar_mf.rooms.relay import FixedHistogram

    for bounds in ((0.0005, 0.001), (-1.0, 0.0, 1.0), (-2.0, -1.0)):
        fast, slow = FixedHistogram(bounds), FixedHistogram(bounds)
        for _ in range(3):
            fast.observe_zero()
            slow.observe(0.0)
        assert (fast.counts, fast.sum, fast.count) == (slow.counts, slow.sum, slow.count)
        assert fast.cumulative() == slow.cumulative()
