"""A small SIP user agent client for the test UE: one socket or connection, loopback first.

The protocol work is done by the product's own sans-IO stack: :class:`~avatar_mf.sip.
transaction_layer.TransactionLayer` runs the client transactions (RFC 3261 17.1: Timer A/B
retransmission and timeout of the INVITE, Timer E/F for BYE, the ACK for a non-2xx answer, the
RFC 6026 Accepted state that passes every 2xx up) and the server transactions of requests the
MF sends inside a dialog (BYE, UPDATE refreshes). This module only adds the asyncio edges:

* a UDP socket bound to ``local_host`` (RFC 3261 18.1), or one TCP connection to the MF framed by
  :class:`~avatar_mf.sip.parser.StreamFramer` (RFC 3261 18.3); over TCP the MF's own requests
  come back on that connection, because the Contact names its local port;
* the same connection over TLS (``"tls"``, RFC 3261 26.2: the MF's certificate is verified
  with the context given, by default the system's trust store), or one WebSocket connection
  with the subprotocol ``sip`` (``"ws"``, ``"wss"``, RFC 7118: one SIP message per WebSocket
  message, the MF's requests back on the connection, as a browser client does);
* :meth:`SipClient.request`: send a request in a client transaction and await its final
  response (provisionals go to a callback);
* the ACK for a 2xx, sent outside any transaction and re-sent for every retransmitted 2xx
  (RFC 3261 13.2.2.4);
* dispatch of incoming requests to the dialog they name (RFC 3261 12.2.2); a request naming no
  known dialog is answered 481, OPTIONS 200, anything else 405/501;
* a listening UE (:class:`~avatar_mf.ue.listener.UeListener`) takes new INVITEs, their CANCEL
  and the ACK of its 2xx through :meth:`SipClient.set_uas` (RFC 3261 13.3); without one an
  INVITE is answered 405.

It is a test tool: no DNS, no authentication, no forking beyond ACKing what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, cast

import aiohttp

from avatar_mf.clock import LoopClock
from avatar_mf.sip.build import make_response, new_branch, new_tag
from avatar_mf.sip.dialog import DialogId, dialog_id_of
from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.headers import parse_cseq, parse_via
from avatar_mf.sip.message import Headers, Message, Request, Response, serialize
from avatar_mf.sip.parser import KeepAlivePing, StreamFramer, parse_message
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.routing import response_destination
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.sip.transaction_layer import (
    ClientTransaction,
    ServerTransaction,
    Transaction,
    TransactionLayer,
)

__all__ = [
    "DEFAULT_USER_AGENT",
    "DialogHandler",
    "SipClient",
    "SipTransportName",
    "UasHandler",
]

log = logging.getLogger(__name__)

SipTransportName = Literal["udp", "tcp", "tls", "ws", "wss"]
_TRANSPORTS: tuple[SipTransportName, ...] = ("udp", "tcp", "tls", "ws", "wss")
DEFAULT_USER_AGENT = "avatar-mf-ue/0.1"

#: Answers a request received inside a dialog; returns the response to send (built with
#: :func:`~avatar_mf.sip.build.make_response`). Raising :class:`SipError` answers its status.
DialogHandler = Callable[[Request], Response]

_ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"


class UasHandler(Protocol):
    """What takes the calls a listening UE receives (see :meth:`SipClient.set_uas`)."""

    def on_invite(self, tx: ServerTransaction, invite: Request) -> None:
        """A new INVITE (no To tag); a 100 Trying was sent. Answer through ``tx``."""
        ...

    def on_cancel(self, tx: ServerTransaction, cancel: Request) -> None:
        """A CANCEL matched INVITE ``tx`` before its final response (it was answered 200)."""
        ...

    def on_ack(self, ack: Request) -> None:
        """An ACK for a 2xx the UE sent."""
        ...


_KNOWN = frozenset({"REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER"})


@dataclass(eq=False, slots=True)
class _Pending:
    """A client transaction the caller awaits."""

    tx: ClientTransaction | None
    future: asyncio.Future[Response]
    on_provisional: Callable[[Response], None] | None
    ack: Request | None = None


class _Wire:
    """The socket below the transaction layer (UDP datagrams or one TCP connection)."""

    local_host: str
    local_port: int

    def send(self, data: bytes, host: str, port: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _UdpWire(_Wire, asyncio.DatagramProtocol):
    def __init__(self, client: SipClient) -> None:
        self._client = client
        self._transport: asyncio.DatagramTransport | None = None
        self.local_host = ""
        self.local_port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's UDP transport is not an asyncio.DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        host, port = transport.get_extra_info("sockname")[:2]
        self.local_host, self.local_port = str(host), int(port)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if data.strip(b"\r\n\x00") == b"":
            return  # keep-alive
        peer = Peer("udp", str(addr[0]), int(str(addr[1])))
        try:
            message = parse_message(data, datagram=True)
        except SipParseError as exc:
            self._client._bad_message(exc, peer)
            return
        self._client._receive(message, peer)

    def error_received(self, exc: Exception) -> None:
        log.debug("ue udp error: %s", exc)

    def send(self, data: bytes, host: str, port: int) -> None:
        if self._transport is None or self._transport.is_closing():
            raise OSError("the UE's SIP socket is closed")
        self._transport.sendto(data, (host, port))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _TcpWire(_Wire, asyncio.Protocol):
    """One TCP connection, or TLS over it (``name`` "tls")."""

    #: The connection id carried by every Peer of this (single) connection.
    CONNECTION_ID = 1

    def __init__(self, client: SipClient, name: str = "tcp") -> None:
        self._client = client
        self._name = name
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer()
        self.local_host = ""
        self.local_port = 0
        self.peer = Peer(name, "", 0, self.CONNECTION_ID)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        host, port = transport.get_extra_info("sockname")[:2]
        self.local_host, self.local_port = str(host), int(port)
        remote_host, remote_port = transport.get_extra_info("peername")[:2]
        self.peer = Peer(self._name, str(remote_host), int(remote_port), self.CONNECTION_ID)

    def data_received(self, data: bytes) -> None:
        for item in self._framer.feed(data):
            if isinstance(item, KeepAlivePing):
                self.send(b"\r\n", self.peer.host, self.peer.port)
            elif isinstance(item, SipParseError):
                self._client._bad_message(item, self.peer)
                if self._framer.closed:
                    self.close()
                    return
            else:
                self._client._receive(item, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._client._connection_lost(exc)

    def send(self, data: bytes, host: str, port: int) -> None:
        if self._transport is None or self._transport.is_closing():
            raise OSError("the UE's SIP connection is closed")
        self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


class _WsWire(_Wire):
    """One WebSocket connection (subprotocol ``sip``): one SIP message per WebSocket message."""

    CONNECTION_ID = 1

    def __init__(
        self,
        client: SipClient,
        session: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        name: str,
    ) -> None:
        self._client = client
        self._session = session
        self._ws = ws
        host, port = ws.get_extra_info("sockname")[:2]
        self.local_host, self.local_port = str(host), int(port)
        remote = ws.get_extra_info("peername")
        self.peer = Peer(name, str(remote[0]), int(remote[1]), self.CONNECTION_ID)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read_loop())
        self._writer = loop.create_task(self._write_loop())

    async def _read_loop(self) -> None:
        error: Exception | None = None
        try:
            async for msg in self._ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    continue
                data = msg.data.encode() if isinstance(msg.data, str) else bytes(msg.data)
                if data == b"\r\n\r\n":
                    self.send(b"\r\n", self.peer.host, self.peer.port)
                    continue
                if not data.strip(b"\r\n"):
                    continue  # a CRLF pong
                try:
                    message = parse_message(data, datagram=True)
                except SipParseError as exc:
                    self._client._bad_message(exc, self.peer)
                    continue
                self._client._receive(message, self.peer)
        except Exception as exc:  # the connection broke under the reader
            error = exc
        self._client._connection_lost(error)

    async def _write_loop(self) -> None:
        while (data := await self._queue.get()) is not None:
            try:
                await self._ws.send_str(data.decode())
            except (ConnectionError, RuntimeError, UnicodeDecodeError) as exc:
                log.info("ue: ws send failed: %s", exc)
                return

    def send(self, data: bytes, host: str, port: int) -> None:
        if self._ws.closed:
            raise OSError("the UE's SIP WebSocket is closed")
        self._queue.put_nowait(data)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def aclose(self) -> None:
        self.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._writer), 2.0)
        await self._ws.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
        await self._session.close()


class SipClient:
    """The SIP endpoint of one test UE (a transaction user of :class:`TransactionLayer`).

    Build it with :meth:`open`. Requests go to :attr:`server` (the MF, used as the outbound
    proxy for every request of the UE, whatever the Request-URI says).

    Attributes:
        server: where requests are sent.
        transport: ``"udp"``, ``"tcp"``, ``"tls"``, ``"ws"`` or ``"wss"``.
        user_agent: the User-Agent header value.
        layer: the transaction layer (its ``stats`` count retransmissions, timeouts...).
    """

    def __init__(
        self,
        server: Peer,
        *,
        timers: TimerConfig,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.server = server
        transport = server.transport.lower()
        self.transport: SipTransportName = next((t for t in _TRANSPORTS if t == transport), "udp")
        self.user_agent = user_agent
        self._wire: _Wire | None = None
        self.layer = TransactionLayer(LoopClock(), timers, self._send, self)
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._dialogs: dict[DialogId, DialogHandler] = {}
        self._local: tuple[str, int] = ("", 0)
        self._closed = False
        self._uas: UasHandler | None = None

    @classmethod
    async def open(
        cls,
        server_host: str,
        server_port: int,
        *,
        transport: SipTransportName = "udp",
        local_host: str = "127.0.0.1",
        local_port: int = 0,
        timers: TimerConfig | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        tls: ssl.SSLContext | None = None,
        ws_path: str = "/",
        origin: str | None = None,
    ) -> SipClient:
        """Bind a UDP socket on ``local_host`` (``local_port``, 0: any free port), or connect
        from there to the MF (or proxy) over TCP, TLS or WebSocket (``ws://server:port/ws_path``,
        ``wss://`` for ``"wss"``).

        ``tls`` verifies the MF's certificate over tls and wss (default: the system's trust
        store; the server host is the name checked). ``origin``: the WebSocket ``Origin``
        header a browser page would send (none by default).
        """
        if transport not in _TRANSPORTS:
            raise ValueError(f"unsupported SIP transport {transport!r}")
        secure = transport in ("tls", "wss")
        context = tls if tls is not None or not secure else ssl.create_default_context()
        connection_id = None if transport == "udp" else _TcpWire.CONNECTION_ID
        server = Peer(transport, server_host, server_port, connection_id)
        client = cls(server, timers=timers or TimerConfig(), user_agent=user_agent)
        loop = asyncio.get_running_loop()
        if transport == "udp":
            _, udp = await loop.create_datagram_endpoint(
                lambda: _UdpWire(client), local_addr=(local_host, local_port)
            )
            client._wire = udp
            client._local = (udp.local_host, udp.local_port)
        elif transport in ("tcp", "tls"):
            _, tcp = await loop.create_connection(
                lambda: _TcpWire(client, transport),
                server_host,
                server_port,
                local_addr=(local_host, local_port),
                ssl=context,
                server_hostname=server_host if context is not None else None,
            )
            client._wire = tcp
            client._local = (tcp.local_host, tcp.local_port)
        else:
            host = f"[{server_host}]" if ":" in server_host else server_host
            url = f"{'wss' if secure else 'ws'}://{host}:{server_port}{ws_path}"
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(local_host, local_port))
            )
            try:
                ws = await session.ws_connect(
                    url,
                    protocols=("sip",),
                    origin=origin,
                    ssl=context if context is not None else True,
                )
            except BaseException:
                await session.close()
                raise
            wire = _WsWire(client, session, ws, transport)
            client._wire = wire
            client._local = (wire.local_host, wire.local_port)
        return client

    # -- addresses ------------------------------------------------------------------------

    @property
    def local_host(self) -> str:
        """The address of the UE's SIP socket."""
        return self._local[0]

    @property
    def local_port(self) -> int:
        """The port of the UE's SIP socket (over TCP: the local end of the connection)."""
        return self._local[1]

    @property
    def closed(self) -> bool:
        return self._closed

    def _host_for_uri(self) -> str:
        host = self.local_host
        return f"[{host}]" if ":" in host else host

    def via(self) -> str:
        """A fresh top Via for a request (new branch, RFC 3581 ``rport``)."""
        return (
            f"SIP/2.0/{self.transport.upper()} {self._host_for_uri()}:{self.local_port}"
            f";branch={new_branch()};rport"
        )

    def contact(self, user: str = "ue", *, feature_tags: str = "") -> str:
        """The Contact of this UE: its own socket (over TCP: the local end of the connection,
        so the MF's in-dialog requests come back on it)."""
        return (
            f"<sip:{user}@{self._host_for_uri()}:{self.local_port};transport={self.transport}>"
            f"{feature_tags}"
        )

    # -- sending --------------------------------------------------------------------------

    def with_via(self, request: Request) -> Request:
        """``request`` with a fresh top Via (and a User-Agent if it has none)."""
        headers = request.headers.prepend("Via", self.via())
        if "User-Agent" not in headers:
            headers = headers.add("User-Agent", self.user_agent)
        return request.with_headers(headers)

    async def request(
        self,
        request: Request,
        *,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> Response:
        """Send ``request`` (without Via: one is added) in a client transaction and return its
        final response. For an INVITE the caller must :meth:`send_ack` a 2xx.

        Raises :class:`TimeoutError` on Timer B/F, :class:`ConnectionError` when the transport
        fails. Cancelling the wait does not stop the transaction (CANCEL it, or let it time
        out).
        """
        if self._closed:
            raise ConnectionError("the SIP client is closed")
        loop = asyncio.get_running_loop()
        pending = _Pending(None, loop.create_future(), on_provisional)
        request = self.with_via(request)
        key = (parse_via(request.headers.get("Via") or "").branch or "", request.method)
        self._pending[key] = pending
        self._prune()
        try:
            pending.tx = self.layer.send_request(request, self.server)
        except BaseException:
            del self._pending[key]
            raise
        return await pending.future

    def send_ack(self, ack: Request) -> None:
        """Send the ACK for a 2xx (RFC 3261 13.2.2.4), without a Via yet (a fresh one is
        added), and remember it: every retransmission of that 2xx gets it again."""
        ack = self.with_via(ack)
        call_id = ack.headers.get("Call-ID")
        seq = parse_cseq(ack.headers.get("CSeq") or "").seq
        for pending in self._pending.values():
            tx = pending.tx
            if (
                tx is not None
                and tx.method == "INVITE"
                and tx.request.headers.get("Call-ID") == call_id
                and parse_cseq(tx.request.headers.get("CSeq") or "").seq == seq
            ):
                pending.ack = ack
        self.layer.send_stateless(ack, self.server)

    async def cancel(self, call_id: str) -> Response | None:
        """CANCEL the INVITE of ``call_id`` still waiting for its final response (RFC 3261
        9.1: the INVITE's Request-URI, Call-ID, To, From and CSeq number, and its top Via, so
        it matches the INVITE's server transaction at the next hop). Returns the CANCEL's own
        final response, or None when no such INVITE is pending (nothing is sent)."""
        for pending in list(self._pending.values()):
            tx = pending.tx
            answered = pending.future.done() and not pending.future.cancelled()
            if (
                tx is None
                or tx.method != "INVITE"
                or answered  # a final response came: nothing to cancel (its wait may be gone)
                or tx.request.headers.get("Call-ID") != call_id
            ):
                continue
            invite = tx.request
            pairs = [
                (name, value)
                for name, value in invite.headers.items
                if name in ("From", "To", "Call-ID", "Max-Forwards", "Route")
            ]
            seq = parse_cseq(invite.headers.get("CSeq") or "1 INVITE").seq
            headers = Headers.of(
                [("Via", invite.headers.get("Via") or ""), *pairs, ("CSeq", f"{seq} CANCEL")]
            )
            cancel = Request("CANCEL", invite.uri, headers)
            loop = asyncio.get_running_loop()
            waiter = _Pending(None, loop.create_future(), None)
            key = (parse_via(invite.headers.get("Via") or "").branch or "", "CANCEL")
            self._pending[key] = waiter
            waiter.tx = self.layer.send_request(cancel, self.server)
            return await waiter.future
        return None

    # -- dialogs --------------------------------------------------------------------------

    def add_dialog(self, dialog_id: DialogId, handler: DialogHandler) -> None:
        """Route requests carrying ``dialog_id`` (Call-ID, our tag, the MF's tag) to
        ``handler``."""
        self._dialogs[dialog_id] = handler

    def remove_dialog(self, dialog_id: DialogId) -> None:
        self._dialogs.pop(dialog_id, None)

    def set_uas(self, handler: UasHandler | None) -> None:
        """Take new INVITEs (and their CANCEL and 2xx ACK) with ``handler``; None: 405."""
        self._uas = handler

    def resend_response(self, response: Response, peer: Peer) -> None:
        """Send ``response`` again outside its transaction (a 2xx to an INVITE, retransmitted
        by the UAS core until its ACK, RFC 3261 13.3.1.4) to ``peer`` (the INVITE's source)."""
        self.layer.send_stateless(response, peer)

    # -- TransactionUser ------------------------------------------------------------------

    def on_request(self, tx: ServerTransaction, request: Request) -> None:
        did = dialog_id_of(request)
        handler = self._dialogs.get(did) if did is not None else None
        if handler is not None:
            tx.respond(self._stamp(handler(request)))
            return
        if request.method == "INVITE" and did is None and self._uas is not None:
            self._uas.on_invite(tx, request)
            return
        if request.method == "OPTIONS":
            response = make_response(request, 200, to_tag=new_tag(), headers=[("Allow", _ALLOW)])
        elif did is not None or request.method in ("BYE", "UPDATE"):
            raise SipError(481)
        elif request.method in _KNOWN or request.method == "INVITE":
            raise SipError(405, headers=(("Allow", _ALLOW),))
        else:
            raise SipError(501, headers=(("Allow", _ALLOW),))
        tx.respond(self._stamp(response))

    def on_ack(self, request: Request, source: Peer) -> None:
        """The ACK of a 2xx the UE sent (a listening UE's incoming call)."""
        if self._uas is not None:
            self._uas.on_ack(request)

    def on_cancel(self, tx: ServerTransaction, cancel: Request) -> None:
        """A CANCEL for an incoming INVITE still unanswered (the layer answered it 200)."""
        if self._uas is not None:
            self._uas.on_cancel(tx, cancel)

    def on_response(self, tx: ClientTransaction, response: Response) -> None:
        pending = self._pending.get(tx.key)
        if pending is None:
            return
        if response.status < 200:
            if pending.on_provisional is not None and not pending.future.done():
                pending.on_provisional(response)
            return
        if not pending.future.done():
            pending.future.set_result(response)
        elif 200 <= response.status < 300 and pending.ack is not None:
            # A retransmitted 2xx (RFC 6026 Accepted state): the ACK was lost; send it again.
            self.layer.send_stateless(pending.ack, self.server)

    def on_transaction_timeout(self, tx: Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            self._fail(tx, TimeoutError(f"no final response to {tx.method} (Timer B/F)"))

    def on_transport_error(self, tx: Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            self._fail(tx, ConnectionError(f"transport error sending {tx.method}"))

    # -- below: the wire ------------------------------------------------------------------

    def _send(self, message: Message, peer: Peer) -> None:
        if self._wire is None or self._closed:
            raise OSError("the SIP client is closed")
        if isinstance(message, Response) and peer.transport == "udp":
            dest = response_destination(message, peer)
            self._wire.send(serialize(message), dest.host, dest.port)
        else:
            self._wire.send(serialize(message), peer.host, peer.port)

    def _receive(self, message: Message, peer: Peer) -> None:
        if self._closed:
            return
        self.layer.receive(message, peer)

    def _bad_message(self, error: SipParseError, peer: Peer) -> None:
        log.info("ue: unparsable SIP message from %s:%d: %s", peer.host, peer.port, error.reason)

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        error = ConnectionError(f"SIP connection to the MF lost: {exc or 'closed by peer'}")
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)

    def _fail(self, tx: ClientTransaction, error: Exception) -> None:
        pending = self._pending.get(tx.key)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(error)

    def _stamp(self, response: Response) -> Response:
        if "Server" in response.headers:
            return response
        return response.with_headers(response.headers.add("Server", self.user_agent))

    def _prune(self) -> None:
        """Forget awaited transactions that are over (their entries only serve 2xx re-ACKs)."""
        done = [
            key
            for key, p in self._pending.items()
            if p.tx is not None and not p.tx.alive and p.future.done()
        ]
        for key in done:
            del self._pending[key]

    # -- closing --------------------------------------------------------------------------

    async def close(self) -> None:
        """Drop every transaction and timer, close the socket or connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(ConnectionError("the SIP client was closed"))
            with contextlib.suppress(asyncio.CancelledError, Exception):
                pending.future.exception()  # mark retrieved: no "never retrieved" warnings
        self._pending.clear()
        self._dialogs.clear()
        self.layer.close()
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.close()
            if isinstance(wire, _TcpWire):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(wire.closed), 2.0)
            elif isinstance(wire, _WsWire):
                await wire.aclose()
            else:
                await asyncio.sleep(0)  # let the transport run its close callbacks
