"""The UDP sockets of one audio stream: RTP on an even port, RTCP on the next one unless
rtcp-mux (RFC 3550 section 11, RFC 5761), bound on ``[media] host`` from the configured range.

The sockets know nothing of RTP: datagrams go to the callbacks with their source address;
:class:`~avatar_mf.media.audio_stream.AudioStream` makes sense of them. Every transport is
tracked in the node's :class:`~avatar_mf.media.sockets.SocketLedger` so a leak shows in the
``/stats`` ``held`` counters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from avatar_mf.media.rtp_ports import PortRange, PortsExhausted
from avatar_mf.media.sockets import SocketLedger

log = logging.getLogger(__name__)

Address = tuple[str, int]
Receiver = Callable[[bytes, Address], None]

#: Bind attempts before giving up on the range (ports held by other processes are skipped).
_BIND_ATTEMPTS = 64


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: Callable[[], Receiver | None]) -> None:
        self._receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        receiver = self._receiver()
        if receiver is not None:
            receiver(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)


class RtpSocketPair:
    """The bound sockets of one stream (see the module docstring)."""

    def __init__(self, ports: PortRange, port: int) -> None:
        self._ports = ports
        self.port = port
        self.rtp: asyncio.DatagramTransport | None = None
        self.rtcp: asyncio.DatagramTransport | None = None
        self.on_rtp: Receiver | None = None
        self.on_rtcp: Receiver | None = None

    def _rtp_protocol(self) -> _Protocol:
        return _Protocol(lambda: self.on_rtp)

    def _rtcp_protocol(self) -> _Protocol:
        return _Protocol(lambda: self.on_rtcp)

    @classmethod
    async def open(
        cls, host: str, ports: PortRange, *, rtcp_mux: bool, ledger: SocketLedger | None = None
    ) -> RtpSocketPair:
        """Bind a free pair from ``ports``; raises PortsExhausted (503) when none binds."""
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for _ in range(_BIND_ATTEMPTS):
            port = ports.allocate()
            pair = cls(ports, port)
            try:
                rtp, _ = await loop.create_datagram_endpoint(
                    pair._rtp_protocol, local_addr=(host, port)
                )
                pair.rtp = rtp
                if ledger is not None:
                    ledger.track(rtp)
                if not rtcp_mux:
                    rtcp, _ = await loop.create_datagram_endpoint(
                        pair._rtcp_protocol, local_addr=(host, port + 1)
                    )
                    pair.rtcp = rtcp
                    if ledger is not None:
                        ledger.track(rtcp)
            except OSError as exc:
                last = exc
                pair.close()
                continue
            return pair
        raise PortsExhausted(f"no RTP port pair could be bound on {host}: {last}")

    def send_rtp(self, data: bytes, addr: Address) -> None:
        if self.rtp is not None and not self.rtp.is_closing():
            self.rtp.sendto(data, addr)

    def send_rtcp(self, data: bytes, addr: Address) -> None:
        transport = self.rtcp if self.rtcp is not None else self.rtp
        if transport is not None and not transport.is_closing():
            transport.sendto(data, addr)

    def close(self) -> None:
        for transport in (self.rtp, self.rtcp):
            if transport is not None:
                transport.close()
        self.rtp = self.rtcp = None
        self.on_rtp = self.on_rtcp = None
        self._ports.release(self.port)
