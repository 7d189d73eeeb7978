"""The ws transport against one abusive peer (issue 9), as the TCP transport is tested in
test_tcp_limits.py: the file-descriptor reserve and the connection caps at accept (before any
handshake), a deadline for the opening handshake (a trickle of header bytes), the rate limit
charged for keep-alives and pings too, and the write-buffer limit (a peer that never reads).
Real loopback sockets; the WebSocket client is written by hand where it must misbehave."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from avatar_mf.sip.peer import Peer
from avatar_mf.testing.clock import FakeClock
from avatar_mf.transport.limits import ConnectionLimits, ConnectionTable, FdBudget
from avatar_mf.transport.ws import WebSocketTransport

from .sinks import RecordingSink, eventually, options

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"


@dataclass
class BudgetSink(RecordingSink):
    """Admits ``budget`` items (messages, keep-alives, pings), then refuses; records sizes."""

    budget: int = 1_000_000
    admitted: list[int] = field(default_factory=list)

    def admit(self, peer: Peer, size: int) -> bool:
        self.admitted.append(size)
        return len(self.admitted) <= self.budget


@pytest.fixture
async def make_ws() -> AsyncIterator[Callable[..., Any]]:
    made: list[WebSocketTransport] = []

    async def make(sink: RecordingSink, limits: ConnectionLimits, **options: Any) -> Any:
        settings: dict[str, Any] = {
            "table": ConnectionTable(limits),
            "limits": limits,
            "max_message_size": 65535,
            "idle_timeout": 30.0,
            "ping_interval": 0.0,
        }
        settings.update(options)
        transport = WebSocketTransport(sink, **settings)
        await transport.listen(HOST, 0)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.wait_closed()
        assert transport.table.total == 0


def url(transport: WebSocketTransport) -> str:
    return f"ws://{HOST}:{transport.local_port}/"


async def connect(port: int, *, local: str = HOST) -> tuple[asyncio.StreamReader, Any]:
    return await asyncio.open_connection(HOST, port, local_addr=(local, 0))


async def closed_by_peer(reader: asyncio.StreamReader, within: float = 3.0) -> bool:
    """True when the node closed the connection (EOF or reset) within ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while True:
                if not await reader.read(65536):
                    return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def handshake_request() -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: sip\r\n\r\n"
    ).encode()


async def test_no_connection_is_accepted_inside_the_fd_reserve(
    make_ws: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    open_now = [10]
    fds = FdBudget(FakeClock(), 100, ttl=0.0, count=lambda: open_now[0], limit=lambda: 10_000)
    sink = RecordingSink()
    ws_transport = await make_ws(sink, ConnectionLimits(fd_reserve=100), fds=fds)
    sink.answer = ws_transport
    async with aiohttp.ClientSession() as session:
        ok = await session.ws_connect(url(ws_transport), protocols=("sip",))
        open_now[0] = 9_950  # 50 free: inside the reserve
        with caplog.at_level(logging.WARNING, "avatar_mf.transport.ws"):
            refused = [await connect(ws_transport.local_port) for _ in range(3)]
            for reader, writer in refused:
                writer.write(handshake_request())
                assert await closed_by_peer(reader)
                writer.close()
        assert caplog.text.count("file descriptors") == 1  # logged once, not per connection
        assert ws_transport.table.refused == {"fds": 3}
        assert ws_transport.connection_count == 1
        open_now[0] = 10
        again = await session.ws_connect(url(ws_transport), protocols=("sip",))
        await again.send_str(options("ws").decode())
        assert (await again.receive(timeout=5)).data.startswith("SIP/2.0 200")
        await ok.close()
        await again.close()


async def test_connections_are_capped_at_accept_before_any_handshake(
    make_ws: Callable[..., Any],
) -> None:
    # Sockets that never send a handshake count: a peer cannot hold more than its share of
    # the node's descriptors by staying silent (aiohttp alone would keep them for an hour).
    limits = ConnectionLimits(max_connections=3, max_connections_per_source=2)
    ws_transport = await make_ws(RecordingSink(), limits)
    silent = [await connect(ws_transport.local_port) for _ in range(2)]
    third = await connect(ws_transport.local_port)
    assert await closed_by_peer(third[0])
    other = await connect(ws_transport.local_port, local="127.0.0.2")
    fourth = await connect(ws_transport.local_port, local="127.0.0.2")  # over the node's cap
    assert await closed_by_peer(fourth[0])
    assert ws_transport.table.refused == {"source": 1, "node": 1}
    assert not await closed_by_peer(silent[0][0], within=0.2)
    # A closed socket frees its place, and the place serves a handshake.
    silent[0][1].close()
    await eventually(lambda: ws_transport.table.total == 2)
    reader, writer = await connect(ws_transport.local_port)
    writer.write(handshake_request())
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 101")
    for _r, w in (*silent, third, other, fourth, (reader, writer)):
        w.close()


async def test_a_handshake_trickle_cannot_hold_a_connection(
    make_ws: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    ws_transport = await make_ws(RecordingSink(), ConnectionLimits(message_timeout=0.3))
    reader, writer = await connect(ws_transport.local_port)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, "avatar_mf.transport.ws"):
        for byte in handshake_request()[:100]:  # a byte every 20 ms: 2 s for 100
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                break
            if reader.at_eof() or ws_transport.table.total == 0:
                break
            await asyncio.sleep(0.02)
        closed = await closed_by_peer(reader, within=2.0)
    assert closed and time.monotonic() - started < 2.0
    assert ws_transport.message_timeouts == 1
    assert "no WebSocket handshake within" in caplog.text
    await eventually(lambda: ws_transport.table.total == 0)
    writer.close()


async def test_a_prompt_handshake_outlives_the_deadline(make_ws: Callable[..., Any]) -> None:
    sink = RecordingSink()
    ws_transport = await make_ws(sink, ConnectionLimits(message_timeout=0.2))
    sink.answer = ws_transport
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(ws_transport), protocols=("sip",)) as ws:
            await asyncio.sleep(0.5)
            await ws.send_str(options("ws").decode())
            assert (await ws.receive(timeout=5)).data.startswith("SIP/2.0 200")
    assert ws_transport.message_timeouts == 0


@pytest.mark.parametrize("kind", ["crlf", "ping"])
async def test_keepalives_and_pings_are_charged_to_the_rate_limit(
    make_ws: Callable[..., Any], kind: str
) -> None:
    # A flood of double-CRLF keep-alives or WebSocket pings each cost an answer: over TCP a
    # keep-alive is charged like a message, so it is over WebSocket too.
    sink = BudgetSink(budget=3)
    ws_transport = await make_ws(sink, ConnectionLimits())
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(ws_transport), protocols=("sip",), autoping=False) as ws:
            for _ in range(10):
                if ws.closed:
                    break
                if kind == "crlf":
                    await ws.send_str("\r\n\r\n")
                else:
                    await ws.ping(b"p")
            seen = [await ws.receive(timeout=5)]
            while seen[-1].type is not aiohttp.WSMsgType.CLOSE:
                seen.append(await ws.receive(timeout=5))
    assert seen[-1].data == 1008
    # The answers to the three admitted (pongs queued behind the close may be lost).
    answer = aiohttp.WSMsgType.TEXT if kind == "crlf" else aiohttp.WSMsgType.PONG
    assert len(seen) <= 4 and all(m.type is answer for m in seen[:-1])
    assert len(sink.admitted) == 4
    assert sink.admitted[0] == (4 if kind == "crlf" else 1)


async def test_a_peer_that_never_reads_is_closed_past_the_write_buffer_limit(
    make_ws: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    sink = RecordingSink()
    ws_transport = await make_ws(sink, ConnectionLimits(max_write_buffer=256 * 1024))
    # A hand-made client with a small receive window: the handshake, then it never reads.
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(client, (HOST, ws_transport.local_port))
    await loop.sock_sendall(client, handshake_request())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await asyncio.wait_for(loop.sock_recv(client, 1), 5)
    assert answer.startswith(b"HTTP/1.1 101")
    await eventually(lambda: ws_transport.connection_count == 1)
    conn_id = next(iter(ws_transport._conns))
    chunk = b"x" * 65536
    sent = 0
    with caplog.at_level(logging.WARNING, "avatar_mf.transport.ws"):
        for _ in range(1000):  # at most 64 MB: far beyond kernel buffers plus the limit
            if not ws_transport.send(chunk, HOST, 0, conn_id):
                break
            sent += 1
            await asyncio.sleep(0)
        else:
            pytest.fail("the connection was never closed")
    await eventually(lambda: ws_transport.connection_count == 0)
    assert ws_transport.write_overflows == 1
    assert "does not read" in caplog.text
    assert sent * len(chunk) < 64 * 1024 * 1024
    client.close()
