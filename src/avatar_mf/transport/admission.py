"""Admission control before any parsing: trusted peers and per-source rate limits.

Both are cheap, pure and driven by an injected clock so they can be unit-tested instantly.
The dialog cap (503 with Retry-After) lives in the user agent, where dialogs are counted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from avatar_mf.clock import Clock

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedPeers:
    """A CIDR allow-list. Requests from elsewhere are answered 403 (or dropped if unparsable)."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self._nets: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in cidrs
        )
        self._cache: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        hit = self._cache.get(host)
        if hit is not None:
            return hit
        try:
            addr = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            ok = False
        else:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            ok = any(addr in net for net in self._nets)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[host] = ok
        return ok


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per source address: ``rate`` packets per second, ``burst`` at once.

    A rate of 0 disables limiting. Buckets idle long enough to be full again are forgotten, so
    the table stays bounded by the number of recently active sources.
    """

    def __init__(
        self, clock: Clock, *, rate: float, burst: float, max_sources: int = 65536
    ) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = max(burst, 1.0)
        self._max_sources = max_sources
        self._buckets: dict[str, _Bucket] = {}
        self.dropped = 0

    def allow(self, source: str) -> bool:
        if self._rate <= 0:
            return True
        now = self._clock.now()
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self._max_sources:
                self._evict(now)
            bucket = _Bucket(self._burst, now)
            self._buckets[source] = bucket
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.stamp) * self._rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        self.dropped += 1
        return False

    def _evict(self, now: float) -> None:
        refill = self._burst / self._rate
        stale = [k for k, b in self._buckets.items() if now - b.stamp >= refill]
        for key in stale:
            del self._buckets[key]
        if len(self._buckets) >= self._max_sources:
            self._buckets.clear()

    @property
    def sources(self) -> int:
        return len(self._buckets)
