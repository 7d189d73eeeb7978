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
