"""The ws transport (RFC 7118) over real loopback sockets, with aiohttp's client as the browser:
one SIP message per WebSocket message, responses on the connection, keep-alives, the handshake
policy, the message size, idle and connection limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from avatar_mf.sip.message import Request
from avatar_mf.sip.peer import Peer
from avatar_mf.transport.limits import ConnectionLimits, ConnectionTable
from avatar_mf.transport.ws import WebSocketTransport

from .sinks import RecordingSink, eventually, options

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def make_ws() -> AsyncIterator[Callable[..., Any]]:
    made: list[WebSocketTransport] = []

    async def make(sink: RecordingSink, **options: Any) -> WebSocketTransport:
        settings: dict[str, Any] = {
            "table": ConnectionTable(ConnectionLimits()),
            "max_message_size": 65535,
            "idle_timeout": 30.0,
            "ping_interval": 0.0,
        }
        settings.update(options)
        transport = WebSocketTransport(sink, **settings)
        await transport.listen("127.0.0.1", 0)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.wait_closed()
        assert transport.table.total == 0


def url(transport: WebSocketTransport, path: str = "/") -> str:
    return f"ws://127.0.0.1:{transport.local_port}{path}"


async def test_one_message_per_frame_text_or_binary_answered_on_the_connection(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    sink = RecordingSink()
    ws_transport: WebSocketTransport = await make_ws(sink)
    sink.answer = ws_transport
    async with session.ws_connect(url(ws_transport, "/any/path?x=1"), protocols=("sip",)) as ws:
        assert ws.protocol == "sip"
        # Content-Length is optional over WebSocket (RFC 7118 5.1), as on a datagram.
        await ws.send_str(options("ws", "z9hG4bK-a", content_length=False).decode())
        await ws.send_bytes(options("ws", "z9hG4bK-b"))
        first, second = await ws.receive(timeout=5), await ws.receive(timeout=5)
    assert first.type is second.type is aiohttp.WSMsgType.TEXT
    assert first.data.startswith("SIP/2.0 200") and "z9hG4bK-a" in first.data
    assert "z9hG4bK-b" in second.data
    [(a, peer_a), (b, peer_b)] = sink.messages
    assert isinstance(a, Request) and isinstance(b, Request)
    assert peer_a == peer_b
    assert peer_a.transport == "ws" and peer_a.host == "127.0.0.1"
    assert peer_a.connection_id is not None and peer_a.reliable


async def test_crlf_keepalive_is_answered_and_a_pong_is_ignored(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    sink = RecordingSink()
    ws_transport: WebSocketTransport = await make_ws(sink)
    sink.answer = ws_transport
    async with session.ws_connect(url(ws_transport), protocols=("sip",)) as ws:
        await ws.send_str("\r\n\r\n")
        pong = await ws.receive(timeout=5)
        assert pong.type is aiohttp.WSMsgType.TEXT and pong.data == "\r\n"
        await ws.send_str("\r\n")  # the client's pong to a ping of ours: no answer
        await ws.send_str(options("ws").decode())
        after = await ws.receive(timeout=5)
        assert after.data.startswith("SIP/2.0 200")
    assert len(sink.messages) == 1 and not sink.errors


async def test_websocket_ping_gets_a_pong(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    ws_transport: WebSocketTransport = await make_ws(RecordingSink())
    async with session.ws_connect(url(ws_transport), protocols=("sip",), autoping=False) as ws:
        await ws.ping(b"hello")
        pong = await ws.receive(timeout=5)
        assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"hello")


async def test_a_silent_peer_is_pinged_then_closed_when_idle(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    ws_transport: WebSocketTransport = await make_ws(
        RecordingSink(), ping_interval=0.1, idle_timeout=0.6
    )
    loop = asyncio.get_running_loop()
    async with session.ws_connect(url(ws_transport), protocols=("sip",), autoping=False) as ws:
        start = loop.time()
        ping = await ws.receive(timeout=5)
        assert ping.type is aiohttp.WSMsgType.PING
        closing = await ws.receive(timeout=5)
        while closing.type is aiohttp.WSMsgType.PING:
            closing = await ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1001
        assert loop.time() - start >= 0.5


async def test_pongs_keep_a_live_peer_past_the_idle_timeout(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    sink = RecordingSink()
    ws_transport: WebSocketTransport = await make_ws(sink, ping_interval=0.1, idle_timeout=0.4)
    sink.answer = ws_transport
    async with session.ws_connect(url(ws_transport), protocols=("sip",)) as ws:
        # aiohttp's client answers pings while it waits here (autoping); its own receive
        # timeout restarts at every ping, so the wait is bounded from outside.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.receive(), 1.2)
        assert not ws.closed
        await ws.send_str(options("ws").decode())
        answer = await ws.receive(timeout=5)
        assert answer.data.startswith("SIP/2.0 200")


async def test_a_message_over_the_size_limit_closes_1009(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    sink = RecordingSink()
    ws_transport: WebSocketTransport = await make_ws(sink, max_message_size=2000)
    async with session.ws_connect(url(ws_transport), protocols=("sip",)) as ws:
        big = options("ws").replace(b"\r\n\r\n", b"\r\nX-Pad: " + b"a" * 2500 + b"\r\n\r\n")
        await ws.send_bytes(big)
        closing = await ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1009
    assert not sink.messages


async def test_an_unparsable_message_is_handed_up_and_the_connection_stays(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    sink = RecordingSink()
    ws_transport: WebSocketTransport = await make_ws(sink)
    sink.answer = ws_transport
    async with session.ws_connect(url(ws_transport), protocols=("sip",)) as ws:
        await ws.send_str("this is not SIP\r\n\r\n")
        await ws.send_str(options("ws").decode())
        answer = await ws.receive(timeout=5)
        assert answer.data.startswith("SIP/2.0 200")
    assert len(sink.errors) == 1 and len(sink.messages) == 1


@pytest.mark.parametrize(
    ("protocols", "headers", "status"),
    [
        ((), {}, 400),
        (("chat",), {}, 400),
        (("sip",), {"Origin": "https://elsewhere.example"}, 403),
    ],
    ids=["no-subprotocol", "other-subprotocol", "origin"],
)
async def test_refused_handshakes(
    make_ws: Callable[..., Any],
    session: aiohttp.ClientSession,
    protocols: tuple[str, ...],
    headers: dict[str, str],
    status: int,
) -> None:
    ws_transport: WebSocketTransport = await make_ws(
        RecordingSink(), origins={"https://lab.example"}
    )
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(url(ws_transport), protocols=protocols, headers=headers)
    assert refused.value.status == status
    assert ws_transport.refused == {status: 1}
    # An allowed page, and a client that is no browser page (no Origin), are served.
    for origin in ("https://lab.example", None):
        async with session.ws_connect(url(ws_transport), protocols=("sip",), origin=origin) as ws:
            assert ws.protocol == "sip"


async def test_plain_http_gets_426(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    ws_transport: WebSocketTransport = await make_ws(RecordingSink())
    async with session.get(f"http://127.0.0.1:{ws_transport.local_port}/") as response:
        assert response.status == 426
        assert response.headers.get("Upgrade") == "websocket"


async def test_connection_limit_per_source_closes_the_socket(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    # Over a cap the socket is closed as it is accepted, as over TCP (tests/transport/
    # test_ws_limits.py): no handshake is read, so no HTTP answer.
    limits = ConnectionTable(ConnectionLimits(max_connections=10, max_connections_per_source=2))
    ws_transport: WebSocketTransport = await make_ws(RecordingSink(), table=limits)
    first = await session.ws_connect(url(ws_transport), protocols=("sip",))
    second = await session.ws_connect(url(ws_transport), protocols=("sip",))
    with pytest.raises(aiohttp.ClientError):
        await session.ws_connect(url(ws_transport), protocols=("sip",))
    assert ws_transport.connection_count == 2 and limits.of("127.0.0.1") == 2
    assert limits.refused["source"] >= 1
    await first.close()
    await eventually(lambda: limits.total == 1)
    third = await session.ws_connect(url(ws_transport), protocols=("sip",))
    await second.close()
    await third.close()


async def test_send_follows_the_connection_and_never_connects_out(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    sink = RecordingSink()
    ws_transport: WebSocketTransport = await make_ws(sink)
    async with session.ws_connect(url(ws_transport), protocols=("sip",)) as ws:
        await ws.send_str(options("ws").decode())
        await sink.wait(1)
        peer = sink.messages[0][1]
        assert peer.connection_id is not None
        # By connection id, and by address when no id is given (RFC 3261 18.2.2 reuse).
        assert ws_transport.send(b"BYE 1", "ignored.invalid", 5060, peer.connection_id)
        assert ws_transport.send(b"BYE 2", peer.host, peer.port, None)
        assert (await ws.receive(timeout=5)).data == "BYE 1"
        assert (await ws.receive(timeout=5)).data == "BYE 2"
        # Not UTF-8: a binary frame.
        assert ws_transport.send(b"\xff\xfe", peer.host, peer.port, peer.connection_id)
        binary = await ws.receive(timeout=5)
        assert (binary.type, binary.data) == (aiohttp.WSMsgType.BINARY, b"\xff\xfe")
        assert not ws_transport.send(b"x", peer.host, peer.port, peer.connection_id + 1)
    await eventually(lambda: ws_transport.connection_count == 0)
    gone = Peer("ws", peer.host, peer.port, peer.connection_id)
    assert not ws_transport.send(b"x", gone.host, gone.port, gone.connection_id)
    assert not ws_transport.send(b"x", gone.host, gone.port, None)


async def test_a_rate_limited_peer_is_disconnected(
    make_ws: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    sink = RecordingSink(allow=False)
    ws_transport: WebSocketTransport = await make_ws(sink)
    async with session.ws_connect(url(ws_transport), protocols=("sip",)) as ws:
        await ws.send_str(options("ws").decode())
        closing = await ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1008
    assert not sink.messages
