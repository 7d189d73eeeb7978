"""SIP over TCP (RFC 3261 18.3): Content-Length framing, responses on the incoming connection.

Each accepted connection gets an id; a request's :class:`Peer` carries it so that responses go
back on the same connection (RFC 3261 18.2.2). Idle connections are closed after
``idle_timeout``. A framing error closes the connection after the answer is sent. Requests the
MF originates (BYE) reuse a live connection to the same address or open a new one. Inbound
connections count against the node's :class:`~avatar_mf.transport.limits.ConnectionLimits`
(one over a limit is closed as soon as it is accepted).

Given SSL contexts the same transport is SIP over TLS (RFC 3261 26.2, ``name`` "tls"): see
:mod:`avatar_mf.transport.tls`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from typing import cast

from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.parser import KeepAlivePing, StreamFramer
from avatar_mf.sip.peer import Peer
from avatar_mf.transport.base import TransportSink
from avatar_mf.transport.limits import ConnectionLimits

log = logging.getLogger(__name__)


class _Connection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport, conn_id: int, *, inbound: bool) -> None:
        self._owner = owner
        self.id = conn_id
        self._inbound = inbound
        self._counted = False
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self._framer = StreamFramer(max_size=owner.max_message_size)
        self._idle: asyncio.TimerHandle | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Peer(self._owner.name, str(host), int(port), self.id)
        limits = self._owner.limits
        if self._inbound and limits is not None:
            refusal = limits.acquire(self.peer.host)
            if refusal is not None:
                log.info(
                    "%s connection from %s refused: %s",
                    self._owner.name,
                    self.peer.host,
                    refusal.reason,
                )
                self.transport.abort()
                return
            self._counted = True
        self._owner.register(self)
        self._touch()

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self._owner.idle_timeout, self.close)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self._touch()
        if not self._owner.sink.admit(self.peer, len(data)):
            self.close()
            return
        for item in self._framer.feed(data):
            if isinstance(item, KeepAlivePing):
                # RFC 5626 3.5.1: answer a double-CRLF ping with a single CRLF pong.
                self.write(b"\r\n")
            elif isinstance(item, SipParseError):
                self._owner.sink.bad_message(item, self.peer)
                if item.close_connection:
                    self.close()
                    return
            else:
                self._owner.sink.message_received(item, self.peer)

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._owner.unregister(self)
        if self._counted and self._owner.limits is not None and self.peer is not None:
            self._counted = False
            self._owner.limits.release(self.peer.host)
        if not self.closed.done():
            self.closed.set_result(None)


class TcpTransport:
    def __init__(
        self,
        sink: TransportSink,
        *,
        max_message_size: int,
        idle_timeout: float,
        limits: ConnectionLimits | None = None,
        name: str = "tcp",
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        ssl_handshake_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.limits = limits
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._handshake_timeout = ssl_handshake_timeout
        self.sink = sink
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self._ids = itertools.count(1)
        self._conns: dict[int, _Connection] = {}
        self._by_addr: dict[tuple[str, int], int] = {}
        self._server: asyncio.Server | None = None
        self._port = 0

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, next(self._ids), inbound=True),
            host,
            port,
            reuse_address=True,
            ssl=self._server_ssl,
            ssl_handshake_timeout=self._handshake_timeout if self._server_ssl else None,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    def register(self, conn: _Connection) -> None:
        assert conn.peer is not None
        self._conns[conn.id] = conn
        self._by_addr[(conn.peer.host, conn.peer.port)] = conn.id

    def unregister(self, conn: _Connection) -> None:
        self._conns.pop(conn.id, None)
        if conn.peer is not None and self._by_addr.get((conn.peer.host, conn.peer.port)) == conn.id:
            del self._by_addr[(conn.peer.host, conn.peer.port)]

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    def send(self, data: bytes, host: str, port: int, connection_id: int | None) -> bool:
        conn = self._conns.get(connection_id) if connection_id is not None else None
        if conn is None:
            existing = self._by_addr.get((host, port))
            conn = self._conns.get(existing) if existing is not None else None
        if conn is not None:
            return conn.write(data)
        if connection_id is not None:
            # RFC 3261 18.2.2 would open a new connection to the Via's sent-by; a response whose
            # connection is gone is dropped (the UE retransmits over a new connection).
            return False
        asyncio.get_running_loop().create_task(self._connect_and_send(data, host, port))
        return True

    async def _connect_and_send(self, data: bytes, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(self, next(self._ids), inbound=False),
                host,
                port,
                ssl=self._client_ssl,
                ssl_handshake_timeout=self._handshake_timeout if self._client_ssl else None,
            )
        except OSError as exc:
            log.warning("%s connect to %s:%d failed: %s", self.name, host, port, exc)
            return
        conn.write(data)

    @property
    def local_port(self) -> int:
        return self._port

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            conn.close()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
        waits = [c.closed for c in self._conns.values()]
        if waits:
            await asyncio.wait(waits, timeout=2)
