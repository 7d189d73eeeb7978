"""SIP over TCP (RFC 3261 18.3): Content-Length framing, responses on the incoming connection.

Each accepted connection gets an id; a request's :class:`Peer` carries it so that responses go
back on the same connection (RFC 3261 18.2.2), whatever transport its top Via names. Idle
connections are closed after ``idle_timeout``. A framing error closes the connection after the
answer is sent. Requests the MF originates (BYE) reuse a live connection to the same address or
open a new one.

One peer cannot exhaust the node (:mod:`avatar_mf.transport.limits`):

* the rate limit (``sink.admit``) is charged per SIP message, with the bytes read for it, not
  per socket read; a message over the limit closes the connection;
* inbound connections are capped per node and per source host, and none is accepted while
  fewer than ``fd_reserve`` file descriptors are free (so the admin listener and the media
  still get theirs); a refused connection is closed at once, and the first refusal of a
  streak is logged;
* a connection whose peer does not read is closed once ``max_write_buffer`` bytes wait;
* a message must arrive whole within ``message_timeout`` seconds of its first byte.

Given SSL contexts the same transport is SIP over TLS (RFC 3261 26.2, ``name`` "tls"): see
:mod:`avatar_mf.transport.tls`. Every connection transport of a node (tcp, tls, ws, wss) may
share one :class:`~avatar_mf.transport.limits.ConnectionTable`, so the caps hold for all of
them together.
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
from avatar_mf.transport.limits import ConnectionLimits, ConnectionTable, FdBudget

log = logging.getLogger(__name__)


class _Connection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport, conn_id: int, *, inbound: bool = True) -> None:
        self._owner = owner
        self.id = conn_id
        self.inbound = inbound
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.counted = False
        self._framer = StreamFramer(max_size=owner.max_message_size)
        self._idle: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._unbilled = 0  # bytes read since the last message was charged to the rate limit
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = Peer(self._owner.name, str(host), int(port), self.id)
        if self.inbound and not self._owner.accept(self):
            self.transport.abort()
            return
        self._owner.register(self)
        self._touch()

    def _touch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self._owner.idle_timeout, self.close)

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.transport is None or self.transport.is_closing():
            return
        self._touch()
        self._unbilled += len(data)
        items = self._framer.feed(data)
        for item in items:
            size, self._unbilled = self._unbilled, 0
            if not self._owner.sink.admit(self.peer, size):
                self.close()
                return
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
        self._watch_message(restart=bool(items))

    def _watch_message(self, *, restart: bool) -> None:
        """Arm the whole-message deadline while part of a message waits in the framer."""
        timeout = self._owner.limits.message_timeout
        if timeout <= 0:
            return
        if self._deadline is not None and (restart or not self._framer.buffered):
            self._deadline.cancel()
            self._deadline = None
        if self._framer.buffered and self._deadline is None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(timeout, self._message_timed_out)

    def _message_timed_out(self) -> None:
        self._deadline = None
        assert self.peer is not None
        log.info(
            "%s: closing %s:%d, no whole message within %.0f s (%d bytes held)",
            self._owner.name,
            self.peer.host,
            self.peer.port,
            self._owner.limits.message_timeout,
            self._framer.buffered,
            extra={"source": f"{self.peer.host}:{self.peer.port}", "transport": self._owner.name},
        )
        self._owner.message_timeouts += 1
        self.close()

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        limit = self._owner.limits.max_write_buffer
        if limit and self.transport.get_write_buffer_size() > limit:
            assert self.peer is not None
            log.warning(
                "%s: closing %s:%d, it does not read (%d bytes waiting, limit %d)",
                self._owner.name,
                self.peer.host,
                self.peer.port,
                self.transport.get_write_buffer_size(),
                limit,
                extra={
                    "source": f"{self.peer.host}:{self.peer.port}",
                    "transport": self._owner.name,
                },
            )
            self._owner.write_overflows += 1
            self.transport.abort()
            return False
        return True

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        for handle in (self._idle, self._deadline):
            if handle is not None:
                handle.cancel()
        self._owner.unregister(self)
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
        fds: FdBudget | None = None,
        table: ConnectionTable | None = None,
        name: str = "tcp",
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        ssl_handshake_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._handshake_timeout = ssl_handshake_timeout
        self.sink = sink
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.limits = limits if limits is not None else ConnectionLimits()
        self._fds = fds
        #: The connections counted against the caps; shared by the node's connection transports.
        self.table = table if table is not None else ConnectionTable(self.limits)
        self._ids = itertools.count(1)
        self._conns: dict[int, _Connection] = {}
        self._by_addr: dict[tuple[str, int], int] = {}
        self._server: asyncio.Server | None = None
        self._port = 0
        self._refusing: str | None = None
        #: Connections closed because their peer did not read / did not finish a message.
        self.write_overflows = 0
        self.message_timeouts = 0

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

    def accept(self, conn: _Connection) -> bool:
        """Whether an inbound connection may stay open (caps, file descriptors)."""
        assert conn.peer is not None and conn.transport is not None
        reason: str | None = None
        if self._fds is not None:
            sock = conn.transport.get_extra_info("socket")
            fileno = sock.fileno() if sock is not None else -1
            if self._fds.low(fileno):
                reason = f"fewer than {self._fds.reserve} file descriptors free"
                self.table.refused["fds"] = self.table.refused.get("fds", 0) + 1
        if reason is None:
            cap = self.table.admit(conn.peer.host)
            if cap is not None:
                reason = self.table.describe(cap, conn.peer.host)
        if reason is None:
            conn.counted = True
            if self._refusing is not None:
                log.info("%s: accepting connections again", self.name)
                self._refusing = None
            return True
        if self._refusing != reason:
            log.warning(
                "%s: refusing connections: %s",
                self.name,
                reason,
                extra={"source": f"{conn.peer.host}:{conn.peer.port}", "transport": self.name},
            )
            self._refusing = reason
        return False

    def register(self, conn: _Connection) -> None:
        assert conn.peer is not None
        self._conns[conn.id] = conn
        self._by_addr[(conn.peer.host, conn.peer.port)] = conn.id

    def unregister(self, conn: _Connection) -> None:
        if self._conns.pop(conn.id, None) is None:
            return
        if conn.counted and conn.peer is not None:
            conn.counted = False
            self.table.release(conn.peer.host)
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
