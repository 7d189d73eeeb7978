"""SIP over UDP (RFC 3261 18.1, 18.2): one socket, one datagram per message.

The socket asks for a receive buffer of :data:`RECEIVE_BUFFER` bytes (the kernel caps it at
``net.core.rmem_max``): with Linux's default (~208 KiB, about 90 INVITEs with SDP) a P-CSCF
sending 1,800 requests/s (600 calls/s) overflowed it during a 50 ms pause of the event loop,
and every dropped INVITE cost its caller 0.5-7.5 s of retransmissions (RFC 3261 Timer A).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import cast

from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.parser import is_keepalive, parse_message
from avatar_mf.sip.peer import Peer
from avatar_mf.transport.base import TransportSink

log = logging.getLogger(__name__)

RECEIVE_BUFFER = 4 * 1024 * 1024
"""SO_RCVBUF the SIP UDP socket asks for (bytes)."""


class UdpTransport(asyncio.DatagramProtocol):
    name = "udp"

    def __init__(self, sink: TransportSink, *, max_message_size: int) -> None:
        self._sink = sink
        self._max = max_message_size
        self._transport: asyncio.DatagramTransport | None = None
        self._port = 0

    @classmethod
    async def listen(
        cls, host: str, port: int, sink: TransportSink, *, max_message_size: int
    ) -> UdpTransport:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(sink, max_message_size=max_message_size), local_addr=(host, port)
        )
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's UDP transport is not an asyncio.DatagramTransport
        # subclass (an assert here closes the socket under uvloop, see stack-findings).
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sockname = transport.get_extra_info("sockname")
        self._port = int(sockname[1])

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        host, port = str(addr[0]), int(str(addr[1]))
        peer = Peer("udp", host, port, None)
        if is_keepalive(data):
            return
        if not self._sink.admit(peer, len(data)):
            return
        try:
            message = parse_message(data, datagram=True, max_size=self._max)
        except SipParseError as exc:
            self._sink.bad_message(exc, peer)
            return
        self._sink.message_received(message, peer)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) on a connectionless socket: nothing to close.
        log.debug("udp error: %s", exc)

    def send(self, data: bytes, host: str, port: int, connection_id: int | None) -> bool:
        if self._transport is None or self._transport.is_closing():
            return False
        self._transport.sendto(data, (host, port))
        return True

    @property
    def local_port(self) -> int:
        return self._port

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
