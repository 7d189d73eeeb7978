"""Admission control: trusted peers and the per-source token bucket (fake clock)."""

from __future__ import annotations

from avatar_mf.testing.clock import FakeClock
from avatar_mf.transport.admission import RateLimiter, TrustedPeers


def test_trusted_peers_cidrs() -> None:
    peers = TrustedPeers(["127.0.0.0/8", "::1/128", "10.1.0.0/16"])
    assert peers.allows("127.0.0.1")
    assert peers.allows("127.200.0.1")
    assert peers.allows("::1")
    assert peers.allows("[::1]")
    assert peers.allows("::ffff:10.1.2.3")  # IPv4-mapped
    assert not peers.allows("10.2.0.1")
    assert not peers.allows("2001:db8::1")
    assert not peers.allows("not-an-address")


def test_rate_limiter_burst_then_rate() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock, rate=10, burst=5)
    assert [rl.allow("a") for _ in range(6)] == [True] * 5 + [False]
    assert rl.allow("b")  # per source
    clock.advance(0.1)  # one token back
    assert rl.allow("a")
    assert not rl.allow("a")
    clock.advance(10)
    assert sum(rl.allow("a") for _ in range(10)) == 5  # never more than the burst
    assert rl.dropped == 1 + 1 + 5


def test_rate_zero_disables() -> None:
    rl = RateLimiter(FakeClock(), rate=0, burst=0)
    assert all(rl.allow("a") for _ in range(10000))
    assert rl.sources == 0


def test_source_table_stays_bounded() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock, rate=100, burst=1, max_sources=100)
    for i in range(1000):
        rl.allow(f"10.0.{i // 256}.{i % 256}")
        clock.advance(0.001)
    assert rl.sources <= 100


def test_a_full_table_forgets_the_least_recently_seen_source_only() -> None:
    # Issue 9: a full table used to clear every bucket, handing each flooding source a fresh
    # burst. Now only the source seen least recently loses its bucket.
    clock = FakeClock()
    rl = RateLimiter(clock, rate=1, burst=2, max_sources=3)
    for source in ("a", "b", "c"):
        assert rl.allow(source) and rl.allow(source)  # each bucket empty now
    assert not rl.allow("a")  # "a" is now the most recently seen
    assert rl.allow("d")  # table full: "b" (least recently seen) goes
    assert "b" not in rl and {"a", "c", "d"} <= {s for s in "abcd" if s in rl}
    assert rl.evicted == 1 and rl.sources == 3
    assert not rl.allow("a") and not rl.allow("c")  # their empty buckets were kept


def test_byte_budget_refuses_large_messages_within_the_message_rate() -> None:
    clock = FakeClock()
    rl = RateLimiter(clock, rate=1000, burst=1000, byte_rate=10_000, byte_burst=20_000)
    sizes = [6000, 6000, 6000, 6000]
    assert [rl.allow("a", s) for s in sizes] == [True, True, True, False]
    assert rl.allow("a", 2000)  # what is left of the byte bucket still serves small ones
    assert not rl.allow("a", 1)
    clock.advance(0.6)  # 6000 bytes back
    assert rl.allow("a", 6000)
    assert not rl.allow("a", 6000)
    assert rl.allow("b", 6000)  # per source
    assert rl.dropped == 3


def test_without_byte_rate_only_messages_count() -> None:
    rl = RateLimiter(FakeClock(), rate=10, burst=3)
    assert [rl.allow("a", 10_000_000) for _ in range(4)] == [True, True, True, False]
