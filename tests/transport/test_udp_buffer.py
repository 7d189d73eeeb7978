"""The SIP UDP socket's receive buffer (transport/udp.py): a burst of requests that arrives
while the event loop is busy waits in the kernel instead of being dropped."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from avatar_mf.transport.udp import RECEIVE_BUFFER, UdpTransport

from .sinks import RecordingSink

REQUEST = (
    "OPTIONS sip:mf@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-{n}\r\n"
    "From: <sip:ue@127.0.0.1>;tag=f{n}\r\nTo: <sip:mf@127.0.0.1>\r\n"
    "Call-ID: burst-{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
    "Content-Length: {length}\r\n\r\n{body}"
)


def _rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


async def test_a_burst_bigger_than_the_default_buffer_arrives_whole() -> None:
    sink = RecordingSink()
    udp = await UdpTransport.listen("127.0.0.1", 0, sink, max_message_size=65535)
    # 400 requests of ~1 KiB (an INVITE with its SDP) while the loop does not read: the
    # kernel's default buffer (~208 KiB) keeps about 90 of them.
    burst = 400
    if min(RECEIVE_BUFFER, _rmem_max()) < burst * 2304:  # truesize of ~1 KiB on loopback
        burst = 60  # the host caps SO_RCVBUF: still check nothing is lost below the cap
    body = "v" * 900
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for n in range(burst):
            data = REQUEST.format(n=n, length=len(body), body=body).encode()
            sender.sendto(data, ("127.0.0.1", udp.local_port))
        async with asyncio.timeout(5):
            while len(sink.messages) < burst:
                sink.arrived.clear()
                await sink.arrived.wait()
    udp.close()
    assert len(sink.messages) == burst and not sink.errors
