"""SIP over TCP against one abusive peer (issue 9), on loopback sockets.

Per-message rate limiting, the write-buffer limit (a peer that never reads), connection caps
per source and per node, the file-descriptor reserve, and the whole-message deadline (a
trickle of bytes). Each test is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

import pytest

from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.message import Message
from avatar_mf.sip.peer import Peer
from avatar_mf.testing.clock import FakeClock
from avatar_mf.transport.admission import RateLimiter
from avatar_mf.transport.limits import ConnectionLimits, FdBudget
from avatar_mf.transport.tcp import TcpTransport

HOST = "127.0.0.1"


def options(n: int) -> bytes:
    return (
        f"OPTIONS sip:mf@{HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {HOST}:5999;branch=z9hG4bK-{n}\r\n"
        f"From: <sip:ue@{HOST}>;tag=f{n}\r\n"
        f"To: <sip:mf@{HOST}>\r\n"
        f"Call-ID: c{n}\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class Sink:
    """A TransportSink that records what it gets; ``limiter`` decides admission."""

    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self.limiter = limiter
        self.messages: list[tuple[Message, Peer]] = []
        self.admitted: list[int] = []

    def admit(self, peer: Peer, size: int) -> bool:
        self.admitted.append(size)
        return self.limiter is None or self.limiter.allow(peer.host, size)

    def message_received(self, message: Message, peer: Peer) -> None:
        self.messages.append((message, peer))

    def bad_message(self, error: SipParseError, peer: Peer) -> None:
        pass


async def start(sink: Sink, **kwargs: object) -> TcpTransport:
    tcp = TcpTransport(sink, max_message_size=65535, idle_timeout=30.0, **kwargs)  # type: ignore[arg-type]
    await tcp.listen(HOST, 0)
    return tcp


async def connect(
    port: int, *, local: str = HOST
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port, local_addr=(local, 0))


async def wait_for(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def closed_by_peer(reader: asyncio.StreamReader, within: float = 3.0) -> bool:
    """True when the MF side closed the connection (EOF or reset) within ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while True:
                if not await reader.read(65536):
                    return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


async def test_rate_limit_is_charged_per_message_not_per_read() -> None:
    # Ten requests in one segment: one socket read. Before, one token paid for all ten.
    limiter = RateLimiter(FakeClock(), rate=1, burst=3)
    sink = Sink(limiter)
    tcp = await start(sink)
    reader, writer = await connect(tcp.local_port)
    data = b"".join(options(i) for i in range(10))
    writer.write(data)
    await writer.drain()
    assert await closed_by_peer(reader)
    assert len(sink.messages) == 3
    # Four admissions (three passed, the fourth closed the connection), bytes charged with them.
    assert len(sink.admitted) == 4
    assert sink.admitted[0] >= len(options(0)) and sum(sink.admitted) <= len(data)
    writer.close()
    tcp.close()
    await tcp.wait_closed()


async def test_a_peer_that_never_reads_is_closed_past_the_write_buffer_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    tcp = await start(sink, limits=ConnectionLimits(max_write_buffer=256 * 1024))
    # A small receive window, and the client never reads.
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(client, (HOST, tcp.local_port))
    await wait_for(lambda: tcp.connection_count == 1)
    conn_id = next(iter(tcp._conns))
    chunk = b"x" * 65536
    sent = 0
    with caplog.at_level(logging.WARNING, "avatar_mf.transport.tcp"):
        for _ in range(1000):  # at most 64 MB: far beyond kernel buffers plus the limit
            if not tcp.send(chunk, HOST, 0, conn_id):
                break
            sent += 1
            await asyncio.sleep(0)
        else:
            pytest.fail("the connection was never closed")
    await wait_for(lambda: tcp.connection_count == 0)
    assert tcp.write_overflows == 1
    assert "does not read" in caplog.text
    assert sent * len(chunk) < 64 * 1024 * 1024
    client.close()
    tcp.close()
    await tcp.wait_closed()


async def test_connections_are_capped_per_source_and_per_node(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    limits = ConnectionLimits(max_connections=3, max_connections_per_source=2)
    tcp = await start(sink, limits=limits)
    with caplog.at_level(logging.WARNING, "avatar_mf.transport.tcp"):
        a1 = await connect(tcp.local_port)
        a2 = await connect(tcp.local_port)
        a3 = await connect(tcp.local_port)  # third from 127.0.0.1: refused
        assert await closed_by_peer(a3[0])
        b1 = await connect(tcp.local_port, local="127.0.0.2")
        b2 = await connect(tcp.local_port, local="127.0.0.2")  # fourth on the node: refused
        assert await closed_by_peer(b2[0])
    assert tcp.connection_count == 3
    assert tcp.table.refused == {"source": 1, "node": 1}
    assert "refusing connections" in caplog.text
    for _reader, writer in (a1, a2, b1):
        writer.write(options(1))
    await wait_for(lambda: len(sink.messages) == 3)
    # A closed connection frees its place.
    a1[1].close()
    await wait_for(lambda: tcp.connection_count == 2)
    a4 = await connect(tcp.local_port)
    a4[1].write(options(4))
    await wait_for(lambda: len(sink.messages) == 4)
    for _reader, writer in (a2, a3, b1, b2, a4):
        writer.close()
    tcp.close()
    await tcp.wait_closed()


async def test_no_connection_is_accepted_inside_the_fd_reserve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_now = [10]
    fds = FdBudget(FakeClock(), 100, ttl=0.0, count=lambda: open_now[0], limit=lambda: 10_000)
    sink = Sink()
    tcp = await start(sink, limits=ConnectionLimits(fd_reserve=100), fds=fds)
    ok = await connect(tcp.local_port)
    open_now[0] = 9_950  # 50 free: inside the reserve
    with caplog.at_level(logging.WARNING, "avatar_mf.transport.tcp"):
        refused = [await connect(tcp.local_port) for _ in range(3)]
        for reader, _writer in refused:
            assert await closed_by_peer(reader)
    assert caplog.text.count("file descriptors") == 1  # logged once, not per connection
    assert tcp.table.refused == {"fds": 3}
    open_now[0] = 10
    again = await connect(tcp.local_port)
    again[1].write(options(1))
    await wait_for(lambda: len(sink.messages) == 1)
    for _reader, writer in (ok, *refused, again):
        writer.close()
    tcp.close()
    await tcp.wait_closed()


async def test_a_trickle_cannot_hold_a_connection(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    tcp = await start(sink, limits=ConnectionLimits(message_timeout=0.3))
    reader, writer = await connect(tcp.local_port)
    # A complete message first, then one that trickles in a byte every 20 ms: each byte
    # would reset the 30 s idle timer, but not the whole-message deadline.
    writer.write(options(1))
    started = time.monotonic()
    data = options(2)
    closed = False
    with caplog.at_level(logging.INFO, "avatar_mf.transport.tcp"):
        for byte in data[:100]:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                break
            if reader.at_eof() or tcp.connection_count == 0:
                break
            await asyncio.sleep(0.02)
        closed = await closed_by_peer(reader, within=2.0)
    elapsed = time.monotonic() - started
    assert closed and elapsed < 2.0
    assert len(sink.messages) == 1 and tcp.message_timeouts == 1
    assert "no whole message within" in caplog.text
    writer.close()
    tcp.close()
    await tcp.wait_closed()


async def test_messages_that_each_arrive_in_time_keep_the_connection() -> None:
    sink = Sink()
    tcp = await start(sink, limits=ConnectionLimits(message_timeout=0.3))
    _reader, writer = await connect(tcp.local_port)
    stream = b"".join(options(i) for i in range(4))
    half = len(options(0)) // 2 + 1
    # 0.1 s between half-messages: 0.8 s in all, but each message whole within 0.2 s.
    for start_at in range(0, len(stream), half):
        writer.write(stream[start_at : start_at + half])
        await asyncio.sleep(0.1)
    assert tcp.connection_count == 1 and tcp.message_timeouts == 0
    assert len(sink.messages) == 4
    writer.close()
    tcp.close()
    await tcp.wait_closed()
