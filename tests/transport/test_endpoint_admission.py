"""The endpoint's admission: untrusted sources share one rate-limit bucket (issue 9)."""

from __future__ import annotations

from avatar_mf.sip.peer import Peer
from avatar_mf.testing.clock import FakeClock
from avatar_mf.transport.admission import UNTRUSTED, RateLimiter, TrustedPeers
from avatar_mf.transport.endpoint import SipEndpoint


def _endpoint(limiter: RateLimiter) -> SipEndpoint:
    return SipEndpoint(
        trusted=TrustedPeers(["127.0.0.0/8"]), limiter=limiter, server_header="test"
    )


def test_untrusted_sources_never_enter_the_source_table() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock, rate=10, burst=5, max_sources=16)
    ep = _endpoint(limiter)
    trusted = Peer("udp", "127.0.0.7", 5060)
    assert all(ep.admit(trusted, 100) for _ in range(4))  # one token left
    for i in range(1000):  # a spoofed flood from 1000 addresses (never sent: sans-IO)
        ep.admit(Peer("udp", f"198.51.100.{i % 250}", 5060 + i), 100)
    assert limiter.sources == 2
    assert UNTRUSTED in limiter and "127.0.0.7" in limiter
    # The trusted peer's bucket was neither cleared nor refilled by the flood.
    assert ep.admit(trusted, 100)
    assert not ep.admit(trusted, 100)
    # The flood shares one bucket: five got through, the rest were counted as rate limited.
    assert ep.stats.rate_limited == 1000 - 5 + 1


def test_untrusted_bucket_is_charged_in_bytes_too() -> None:
    limiter = RateLimiter(FakeClock(), rate=100, burst=100, byte_rate=1000, byte_burst=1000)
    ep = _endpoint(limiter)
    assert ep.admit(Peer("udp", "198.51.100.1", 5060), 900)
    assert not ep.admit(Peer("udp", "198.51.100.2", 5060), 900)
    assert ep.admit(Peer("udp", "127.0.0.1", 5060), 900)
