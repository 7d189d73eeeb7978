"""Limits of connection-oriented SIP transports (TCP; TLS, WS and WSS reuse them).

One peer must not exhaust the node (RFC 3261 26.1.5 leaves denial of service to the
implementation; RFC 5626 and RFC 7118 keep connections open for long, which makes the caps
matter):

* :class:`ConnectionLimits` -- the settings: connections per node and per source host, the
  write buffer a connection may fill before it is closed (a peer that never reads), the time
  a whole message may take to arrive once its first byte came (a 1-byte-per-second trickle must
  not hold a connection forever), and the file descriptors kept free for everything else
  (the admin listener, media sockets, storage).
* :class:`ConnectionTable` -- counts live inbound connections per source host and says
  whether one more may be accepted.
* :class:`FdBudget` -- how many file descriptors the process may still open: the
  ``RLIMIT_NOFILE`` soft limit less the descriptors open now (``/proc/self/fd``), cached for a
  moment since counting costs a directory listing. New connections may not use the reserve;
  new calls (their media sockets) may use its upper half, so the node answers INVITE and
  OPTIONS 503 once fewer than half the reserve remain; the lower half is for the admin
  listener and storage.

Everything here is pure apart from :class:`FdBudget`'s default probes, which tests replace.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass

from avatar_mf.clock import Clock

__all__ = ["ConnectionLimits", "ConnectionTable", "FdBudget", "open_fds", "fd_limit"]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Caps of one connection-oriented transport; 0 means no cap.

    Attributes:
        max_connections: inbound connections open at once, for the node.
        max_connections_per_source: inbound connections open at once from one host.
        max_write_buffer: bytes queued for a peer that does not read; past it the connection
            is closed (its queued data dropped).
        message_timeout: seconds a message may take to arrive whole, from its first byte.
        fd_reserve: file descriptors kept free: no connection is accepted when fewer remain.
    """

    max_connections: int = 0
    max_connections_per_source: int = 0
    max_write_buffer: int = 0
    message_timeout: float = 0.0
    fd_reserve: int = 0


class ConnectionTable:
    """Live inbound connections, per source host, against :class:`ConnectionLimits`."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self._limits = limits
        self._by_source: dict[str, int] = {}
        self.total = 0
        #: Connections refused, by reason ("node", "source").
        self.refused: dict[str, int] = {}

    def admit(self, host: str) -> str | None:
        """Count a new connection from ``host``; the cap it would pass (then not counted)."""
        limits = self._limits
        reason: str | None = None
        if limits.max_connections and self.total >= limits.max_connections:
            reason = "node"
        elif (
            limits.max_connections_per_source
            and self._by_source.get(host, 0) >= limits.max_connections_per_source
        ):
            reason = "source"
        if reason is not None:
            self.refused[reason] = self.refused.get(reason, 0) + 1
            return reason
        self._by_source[host] = self._by_source.get(host, 0) + 1
        self.total += 1
        return None

    def release(self, host: str) -> None:
        """A connection counted by :meth:`admit` closed."""
        count = self._by_source.get(host, 0) - 1
        if count > 0:
            self._by_source[host] = count
        else:
            self._by_source.pop(host, None)
        self.total = max(0, self.total - 1)

    def of(self, host: str) -> int:
        return self._by_source.get(host, 0)

    def describe(self, cap: str, host: str) -> str:
        """Words for a refusal by :meth:`admit` (logs, a WebSocket handshake's 503)."""
        if cap == "node":
            return f"{self._limits.max_connections} connections open"
        return f"{self._limits.max_connections_per_source} connections open from {host}"


def open_fds() -> int:
    """File descriptors open in this process (Linux ``/proc``; 0 where it cannot be known)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def fd_limit() -> int:
    """The ``RLIMIT_NOFILE`` soft limit (a large number when unlimited)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 30


class FdBudget:
    """File descriptors still free, and whether they fell below ``reserve``.

    Args:
        clock: the time source of the cache.
        reserve: how many descriptors to keep free (0: never low).
        ttl: seconds a count is reused (counting lists ``/proc/self/fd``).
        count: how many descriptors are open (default :func:`open_fds`).
        limit: the most the process may open (default :func:`fd_limit`).
    """

    def __init__(
        self,
        clock: Clock,
        reserve: int,
        *,
        ttl: float = 0.5,
        count: Callable[[], int] = open_fds,
        limit: Callable[[], int] = fd_limit,
    ) -> None:
        self._clock = clock
        self.reserve = reserve
        self._ttl = ttl
        self._count = count
        self._limit = limit
        self._free = 0
        self._stamp: float | None = None

    def free(self) -> int:
        """Descriptors the process may still open (at most ``ttl`` seconds old)."""
        now = self._clock.now()
        if self._stamp is None or now - self._stamp >= self._ttl:
            self._free = self._limit() - self._count()
            self._stamp = now
        return self._free

    def low(self, fileno: int = -1, *, reserve: int | None = None) -> bool:
        """Fewer than ``reserve`` (default :attr:`reserve`) descriptors free. ``fileno``, a
        descriptor just opened, is a free and exact hint: descriptors are allocated lowest
        first, so all below it are open."""
        keep = self.reserve if reserve is None else reserve
        if keep <= 0:
            return False
        if fileno >= 0 and self._limit() - (fileno + 1) < keep:
            return True
        return self.free() < keep
