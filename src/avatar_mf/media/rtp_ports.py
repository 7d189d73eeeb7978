"""The RTP port range: even RTP ports, RTCP on the next (odd) one (RFC 3550 section 11).

A :class:`PortRange` hands out port pairs from ``[media] rtp_port_min .. rtp_port_max``
(rtpengine / FreeSWITCH / Asterisk style) and takes them back when a stream closes. It is pure
bookkeeping: the socket layer tries to bind the pair it gets and calls :meth:`PortRange.release`
and asks again when the system refuses one (a port taken by another process). Allocation goes
round-robin from the last port handed out, so a port just released is not reused at once
(late packets of the old call do not land in a new one); the node starts the round at a random
pair, so that several MF processes sharing a host and a range do not all try the same ports
first.
"""

from __future__ import annotations


class PortsExhausted(RuntimeError):
    """No free RTP port pair left in the range: the call is refused (503)."""

    status_hint = 503
    retryable = True


class PortRange:
    def __init__(self, low: int, high: int, *, start: int | None = None) -> None:
        if low % 2:
            low += 1
        if not 1024 <= low < high <= 65535:
            raise ValueError(f"bad RTP port range {low}-{high}")
        self.low = low
        self.high = high
        self._used: set[int] = set()
        self._next = low
        if start is not None:
            self._next = low + 2 * (start % self.capacity)

    @property
    def capacity(self) -> int:
        """Port pairs in the range (the RTCP port of the last pair must fit too)."""
        return (self.high - self.low + 1) // 2

    @property
    def in_use(self) -> int:
        return len(self._used)

    def allocate(self) -> int:
        """An even RTP port whose pair (port, port + 1) is free; raises PortsExhausted."""
        for _ in range(self.capacity):
            port = self._next
            self._next += 2
            if self._next + 1 > self.high:
                self._next = self.low
            if port not in self._used and port + 1 <= self.high:
                self._used.add(port)
                return port
        raise PortsExhausted(f"all {self.capacity} RTP port pairs {self.low}-{self.high} in use")

    def release(self, port: int) -> None:
        self._used.discard(port)
