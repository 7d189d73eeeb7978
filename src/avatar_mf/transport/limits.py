"""Caps on the inbound connections of the stream transports (tcp, tls, ws, wss).

One :class:`ConnectionLimits` is shared by every connection transport of a node: at most
``max_total`` inbound connections at once, and at most ``max_per_source`` from one source
address, so that one host cannot take every connection a node can hold (RFC 7118 section 8
and RFC 5630 leave resource limits to the implementation; this is that limit). Pure
bookkeeping, no sockets: a transport asks :meth:`ConnectionLimits.acquire` when a connection
arrives and calls :meth:`ConnectionLimits.release` when it closes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConnectionLimits", "ConnectionRefusal"]


@dataclass(frozen=True, slots=True)
class ConnectionRefusal:
    """Why a connection was refused, and the HTTP status a WebSocket handshake gets for it."""

    reason: str
    status: int = 503


class ConnectionLimits:
    """Counts open inbound connections, in total and by source address."""

    def __init__(self, *, max_total: int, max_per_source: int) -> None:
        if max_total < 1 or max_per_source < 1:
            raise ValueError("connection limits must be at least 1")
        self.max_total = max_total
        self.max_per_source = max_per_source
        self._by_source: dict[str, int] = {}
        self._total = 0
        #: Connections refused since start, by reason ("node" or "source").
        self.refused_node = 0
        self.refused_source = 0

    def acquire(self, source: str) -> ConnectionRefusal | None:
        """Count one more connection from ``source``; a refusal (nothing counted) when a limit
        is reached."""
        if self._total >= self.max_total:
            self.refused_node += 1
            return ConnectionRefusal(f"connection limit reached ({self.max_total})")
        held = self._by_source.get(source, 0)
        if held >= self.max_per_source:
            self.refused_source += 1
            return ConnectionRefusal(f"connection limit per source reached ({self.max_per_source})")
        self._by_source[source] = held + 1
        self._total += 1
        return None

    def release(self, source: str) -> None:
        """One connection from ``source`` (counted by :meth:`acquire`) closed."""
        held = self._by_source.get(source, 0)
        if held <= 0:
            raise ValueError(f"no connection counted from {source}")
        if held == 1:
            del self._by_source[source]
        else:
            self._by_source[source] = held - 1
        self._total -= 1

    @property
    def total(self) -> int:
        """Inbound connections open now."""
        return self._total

    def from_source(self, source: str) -> int:
        """Inbound connections open now from ``source``."""
        return self._by_source.get(source, 0)
