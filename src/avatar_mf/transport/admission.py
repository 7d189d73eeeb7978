"""Admission control before any parsing: trusted peers and per-source rate limits.

The rate limit counts messages and bytes (a few large messages cost as much as many small
ones). Both are cheap, pure and driven by an injected clock so they can be unit-tested instantly.
The dialog cap (503 with Retry-After) lives in the user agent, where dialogs are counted.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
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


@dataclass(slots=True)
class _Bucket:
    tokens: float
    octets: float
    stamp: float


#: The one bucket every source outside the trusted peers shares (see :class:`RateLimiter`).
UNTRUSTED = "untrusted"


class RateLimiter:
    """A token bucket per source address, in messages and in bytes.

    ``rate`` messages per second with ``burst`` at once, and (when ``byte_rate`` is not 0)
    ``byte_rate`` bytes per second with ``byte_burst`` at once: a message passes when both
    buckets hold enough. A rate of 0 disables limiting (both buckets).

    The table holds at most ``max_sources`` buckets; when it is full the bucket of the source
    seen least recently is forgotten (that source starts again with a full bucket), never the
    whole table. Callers keep untrusted sources out of the table by charging them all to the
    shared key :data:`UNTRUSTED`, so addresses an attacker invents cannot push the trusted
    peers' buckets out.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        rate: float,
        burst: float,
        byte_rate: float = 0.0,
        byte_burst: float = 0.0,
        max_sources: int = 65536,
    ) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = max(burst, 1.0)
        self._byte_rate = byte_rate
        self._byte_burst = max(byte_burst, byte_rate, 1.0)
        self._max_sources = max(max_sources, 1)
        # Insertion order is recency order: a source seen again moves to the end.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        #: Messages refused (either bucket empty).
        self.dropped = 0
        #: Buckets forgotten because the table was full.
        self.evicted = 0

    def allow(self, source: str, size: int = 0) -> bool:
        """Charge one message of ``size`` bytes to ``source``; False when it must be dropped."""
        if self._rate <= 0:
            return True
        now = self._clock.now()
        buckets = self._buckets
        bucket = buckets.get(source)
        if bucket is None:
            if len(buckets) >= self._max_sources:
                buckets.popitem(last=False)
                self.evicted += 1
            bucket = _Bucket(self._burst, self._byte_burst, now)
            buckets[source] = bucket
        else:
            buckets.move_to_end(source)
            elapsed = now - bucket.stamp
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.octets = min(self._byte_burst, bucket.octets + elapsed * self._byte_rate)
            bucket.stamp = now
        if bucket.tokens < 1.0 or (self._byte_rate > 0 and bucket.octets < size):
            self.dropped += 1
            return False
        bucket.tokens -= 1.0
        if self._byte_rate > 0:
            bucket.octets -= size
        return True

    @property
    def sources(self) -> int:
        return len(self._buckets)

    def __contains__(self, source: object) -> bool:
        return source in self._buckets
