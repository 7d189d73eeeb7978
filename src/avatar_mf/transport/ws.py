"""SIP over WebSocket (RFC 7118): the ``ws`` and ``wss`` transports, the MF as the server.

* Opening handshake (RFC 7118 section 4, RFC 6455 section 4): any request path; the client
  must offer the subprotocol ``sip`` and, when ``origins`` is set, come from an allowed page
  (:mod:`avatar_mf.transport.ws_handshake`). A refused handshake gets an HTTP answer (426,
  400 or 403) and no WebSocket.
* Limits (:mod:`avatar_mf.transport.limits`, as over TCP): the connection caps per node and
  per source host, and the file-descriptor reserve, apply as a socket is accepted, before any
  handshake (a refused socket is closed at once; the first refusal of a streak is logged); the
  opening handshake must be complete within ``message_timeout`` seconds of the connection (a
  trickle of header bytes cannot hold it; aiohttp alone would wait an hour); every message,
  keep-alive, ping and pong received is charged to the rate limit (``sink.admit``), and past
  it the connection is closed (1008); a connection whose peer does not read is closed once
  ``max_write_buffer`` bytes wait for it.
* Framing (RFC 7118 section 5.1): one SIP message per WebSocket message, text or binary; as
  for a datagram, Content-Length may be absent. Messages the node sends are text frames when
  they are UTF-8 (every SIP message the MF builds), binary otherwise. A message larger than
  ``max_message_size`` closes the connection with status 1009 (RFC 6455 section 7.4.1).
* Routing (RFC 7118 section 5.2 and 5.3): responses go back on the connection the request came
  on, and so do the requests the MF sends inside a dialog (BYE, UPDATE): a browser cannot be
  connected to, so a request whose connection is gone cannot be sent (``send`` returns False).
  The Via of those requests names ``WS``/``WSS`` and the node's host and port; the browser
  routes their responses back on the same connection, the only one it has.
* Keep-alive (RFC 7118 section 6): a WebSocket message made of a double CRLF is a RFC 5626
  section 4.4.1 ping, answered with a single CRLF; a lone CRLF (a pong) is ignored. WebSocket
  pings are answered with pongs (RFC 6455 section 5.5.2); the node pings a connection silent
  for ``ping_interval`` seconds. A connection that received nothing at all (message, keep-alive,
  ping or pong) for ``idle_timeout`` seconds is closed (1001).

Why aiohttp's WebSocket server rather than a handshake written over asyncio streams: aiohttp is
already a dependency (the admin listener), and it implements RFC 6455 completely (the opening
handshake, masking, fragmented messages, control frames, the closing handshake, the message
size limit) and runs over TLS for ``wss``. Writing that again would be a second, less tested
WebSocket implementation; what is specific to SIP (the handshake policy, one message per
frame, keep-alives, routing) stays in this module and in the sans-IO modules beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.parser import is_keepalive, parse_message
from avatar_mf.sip.peer import Peer
from avatar_mf.transport.base import TransportSink
from avatar_mf.transport.limits import ConnectionLimits, ConnectionTable, FdBudget
from avatar_mf.transport.ws_handshake import SIP_SUBPROTOCOL, handshake_refusal

__all__ = ["WebSocketTransport"]

log = logging.getLogger(__name__)

_PING = b"\r\n\r\n"
_PONG = b"\r\n"
#: Seconds the node waits for a WebSocket closing handshake, and for its handlers at shutdown.
_CLOSE_TIMEOUT = 2.0


class _Accepted:
    """A socket accepted on the listener: its source host, and the handshake deadline."""

    __slots__ = ("host", "port", "deadline")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.deadline: asyncio.TimerHandle | None = None


class _GuardedServer(web.Server):
    """aiohttp's low-level HTTP server, telling the transport of each socket accepted and lost
    (where the connection limits apply, before any request is read)."""

    def __init__(self, owner: WebSocketTransport, **kwargs: Any) -> None:
        super().__init__(owner._handle, **kwargs)
        self._owner = owner

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._owner._accept(handler, transport)

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        super().connection_lost(handler, exc)
        self._owner._lost(handler)


class _WsConnection:
    """One SIP WebSocket connection: its peer and its ordered outgoing queue."""

    def __init__(
        self,
        owner: WebSocketTransport,
        conn_id: int,
        peer: Peer,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
    ) -> None:
        self._owner = owner
        self.id = conn_id
        self.peer = peer
        self.ws = ws
        self.transport = transport
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued = 0  # bytes in the queue, not yet handed to aiohttp
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def write(self, data: bytes) -> bool:
        if self.ws.closed or self.transport.is_closing():
            return False
        limit = self._owner.limits.max_write_buffer
        waiting = self._queued + len(data) + self.transport.get_write_buffer_size()
        if limit and waiting > limit:
            log.warning(
                "%s: closing %s:%d, it does not read (%d bytes waiting, limit %d)",
                self._owner.name,
                self.peer.host,
                self.peer.port,
                waiting,
                limit,
                extra={
                    "source": f"{self.peer.host}:{self.peer.port}",
                    "transport": self._owner.name,
                },
            )
            self._owner.write_overflows += 1
            self.transport.abort()
            return False
        self._queued += len(data)
        self._queue.put_nowait(data)
        return True

    async def _write_loop(self) -> None:
        while True:
            data = await self._queue.get()
            if data is None or self.ws.closed:
                return
            self._queued -= len(data)
            try:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                # The peer went away while a message was queued: the transaction layer times
                # out, as it would over a connection closed under it.
                log.debug("ws send to %s failed: %s", self.peer.host, exc)
                return

    async def finish(self) -> None:
        """Stop the writer once the queue is sent (or at once if it is stuck: a peer that
        stopped reading)."""
        self._queue.put_nowait(None)
        await asyncio.wait({self._writer}, timeout=_CLOSE_TIMEOUT)
        if not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer


class WebSocketTransport:
    """The ``ws`` transport, or ``wss`` when given an SSL context."""

    def __init__(
        self,
        sink: TransportSink,
        *,
        table: ConnectionTable,
        limits: ConnectionLimits | None = None,
        fds: FdBudget | None = None,
        max_message_size: int,
        idle_timeout: float,
        ping_interval: float,
        origins: Iterable[str] = (),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = "wss" if ssl_context is not None else "ws"
        self.sink = sink
        #: The connections counted against the caps; shared by the node's connection transports.
        self.table = table
        self.limits = limits if limits is not None else ConnectionLimits()
        self._fds = fds
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.ping_interval = ping_interval
        self.origins = frozenset(origins)
        self._ssl = ssl_context
        self._ids = itertools.count(1)
        self._conns: dict[int, _WsConnection] = {}
        self._by_addr: dict[tuple[str, int], int] = {}
        self._accepted: dict[web.RequestHandler, _Accepted] = {}
        self._refusing: str | None = None
        self._runner: web.ServerRunner | None = None
        self._closing: asyncio.Task[None] | None = None
        self._port = 0
        #: Handshakes refused, by HTTP status.
        self.refused: dict[int, int] = {}
        #: Connections closed because their peer did not read / did not finish its handshake.
        self.write_overflows = 0
        self.message_timeouts = 0

    async def listen(self, host: str, port: int) -> None:
        server = _GuardedServer(self, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=_CLOSE_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=self._ssl, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    # -- accepting ----------------------------------------------------------------------

    def _accept(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        """A socket was accepted: count it against the caps and the descriptor reserve (or
        close it at once), and start its handshake deadline."""
        peername = transport.get_extra_info("peername")
        if not peername:
            asyncio.get_running_loop().call_soon(transport.abort)
            return
        host, port = str(peername[0]), int(peername[1])
        reason: str | None = None
        if self._fds is not None:
            sock = transport.get_extra_info("socket")
            if self._fds.low(sock.fileno() if sock is not None else -1):
                reason = f"fewer than {self._fds.reserve} file descriptors free"
                self.table.refused["fds"] = self.table.refused.get("fds", 0) + 1
        if reason is None:
            cap = self.table.admit(host)
            if cap is not None:
                reason = self.table.describe(cap, host)
        if reason is not None:
            if self._refusing != reason:
                log.warning(
                    "%s: refusing connections: %s",
                    self.name,
                    reason,
                    extra={"source": f"{host}:{port}", "transport": self.name},
                )
                self._refusing = reason
            # Not at once: aiohttp starts the handler's task after this call returns.
            asyncio.get_running_loop().call_soon(transport.abort)
            return
        if self._refusing is not None:
            log.info("%s: accepting connections again", self.name)
            self._refusing = None
        accepted = _Accepted(host, port)
        timeout = self.limits.message_timeout
        if timeout > 0:
            accepted.deadline = asyncio.get_running_loop().call_later(
                timeout, self._handshake_late, handler, transport
            )
        self._accepted[handler] = accepted

    def _handshake_late(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        accepted = self._accepted.get(handler)
        if accepted is None:
            return
        accepted.deadline = None
        log.info(
            "%s: closing %s:%d, no WebSocket handshake within %.0f s",
            self.name,
            accepted.host,
            accepted.port,
            self.limits.message_timeout,
            extra={"source": f"{accepted.host}:{accepted.port}", "transport": self.name},
        )
        self.message_timeouts += 1
        transport.abort()

    def _lost(self, handler: web.RequestHandler) -> None:
        accepted = self._accepted.pop(handler, None)
        if accepted is None:
            return  # refused when accepted: never counted
        if accepted.deadline is not None:
            accepted.deadline.cancel()
        self.table.release(accepted.host)

    # -- handshake --------------------------------------------------------------------

    def _refuse(self, status: int, reason: str, host: str) -> web.Response:
        self.refused[status] = self.refused.get(status, 0) + 1
        log.info("%s handshake from %s refused: %d %s", self.name, host, status, reason)
        headers = {"Upgrade": "websocket"} if status == 426 else None
        return web.Response(status=status, text=reason + "\n", headers=headers)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        if transport is None or not peername:
            raise web.HTTPBadRequest()
        host, port = str(peername[0]), int(peername[1])
        if request.method != "GET":
            return self._refuse(405, "a WebSocket handshake is a GET (RFC 6455 4.1)", host)
        ws = web.WebSocketResponse(
            protocols=(SIP_SUBPROTOCOL,),
            max_msg_size=self.max_message_size,
            autoping=False,
            compress=False,
            decode_text=False,
            timeout=_CLOSE_TIMEOUT,
        )
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._refuse(426, "a WebSocket handshake is expected here", host)
        refusal = handshake_refusal(
            subprotocols=request.headers.getall("Sec-WebSocket-Protocol", ()),
            origin=request.headers.get("Origin"),
            allowed_origins=self.origins,
        )
        if refusal is not None:
            return self._refuse(refusal.status, refusal.reason, host)
        if not ws.can_prepare(request).ok:
            return self._refuse(400, "not a valid WebSocket handshake (RFC 6455 4.2.1)", host)
        await ws.prepare(request)
        accepted = self._accepted.get(request.protocol)
        if accepted is not None and accepted.deadline is not None:
            accepted.deadline.cancel()  # the handshake is complete
            accepted.deadline = None
        conn_id = next(self._ids)
        conn = _WsConnection(self, conn_id, Peer(self.name, host, port, conn_id), ws, transport)
        self._register(conn)
        try:
            await self._serve(conn)
        finally:
            self._unregister(conn)
            await conn.finish()
        return ws

    # -- receiving --------------------------------------------------------------------

    async def _serve(self, conn: _WsConnection) -> None:
        ws = conn.ws
        loop = asyncio.get_running_loop()
        last = pinged = loop.time()  # the last frame received; the last ping sent
        while not ws.closed:
            now = loop.time()
            left = last + self.idle_timeout - now
            if left <= 0:
                log.debug("%s connection %d idle: closing", self.name, conn.id)
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"idle")
                return
            wait = left
            if self.ping_interval > 0:
                wait = min(wait, max(max(last, pinged) + self.ping_interval - now, 0.001))
            try:
                msg = await ws.receive(timeout=wait)
            except TimeoutError:
                now = loop.time()
                if self.ping_interval > 0 and now - max(last, pinged) >= self.ping_interval:
                    pinged = now
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.ping()
                continue
            last = loop.time()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                data = msg.data
                if isinstance(data, str):
                    data = data.encode("utf-8")
                if not self._message(conn, data):
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"rate limit")
                    return
            elif msg.type in (WSMsgType.PING, WSMsgType.PONG):
                if not self.sink.admit(conn.peer, len(msg.data)):
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"rate limit")
                    return
                if msg.type is WSMsgType.PING:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.pong(msg.data)
            else:  # CLOSE, CLOSING, CLOSED, ERROR (a message too big: closed with 1009)
                if msg.type is WSMsgType.ERROR:
                    log.info("%s connection %d from %s: %s", self.name, conn.id,
                             conn.peer.host, msg.data)  # fmt: skip
                return

    def _message(self, conn: _WsConnection, data: bytes) -> bool:
        """One WebSocket message; False to close the connection (rate limit)."""
        if not self.sink.admit(conn.peer, len(data)):
            return False
        if is_keepalive(data):
            if data == _PING:
                conn.write(_PONG)
            return True
        try:
            message = parse_message(data, datagram=True, max_size=self.max_message_size)
        except SipParseError as exc:
            self.sink.bad_message(exc, conn.peer)
            return True
        self.sink.message_received(message, conn.peer)
        return True

    # -- connections ------------------------------------------------------------------

    def _register(self, conn: _WsConnection) -> None:
        self._conns[conn.id] = conn
        self._by_addr[(conn.peer.host, conn.peer.port)] = conn.id

    def _unregister(self, conn: _WsConnection) -> None:
        self._conns.pop(conn.id, None)
        key = (conn.peer.host, conn.peer.port)
        if self._by_addr.get(key) == conn.id:
            del self._by_addr[key]

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    # -- SipTransport -----------------------------------------------------------------

    def send(self, data: bytes, host: str, port: int, connection_id: int | None) -> bool:
        conn = self._conns.get(connection_id) if connection_id is not None else None
        if conn is None and connection_id is None:
            existing = self._by_addr.get((host, port))
            conn = self._conns.get(existing) if existing is not None else None
        if conn is None:
            # RFC 7118 section 5: the node is the WebSocket server and never connects out.
            return False
        return conn.write(data)

    @property
    def local_port(self) -> int:
        return self._port

    def close(self) -> None:
        """Close every connection (1001) and the listener; :meth:`wait_closed` waits for it."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._shutdown())

    async def wait_closed(self) -> None:
        self.close()
        assert self._closing is not None
        await self._closing

    async def _shutdown(self) -> None:
        waits = [
            asyncio.ensure_future(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown"))
            for c in list(self._conns.values())
        ]
        if waits:
            await asyncio.wait(waits, timeout=_CLOSE_TIMEOUT)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
