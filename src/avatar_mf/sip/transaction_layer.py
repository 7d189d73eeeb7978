"""The SIP transaction layer: matching, timers and the TU interface (RFC 3261 17, RFC 6026).

:class:`TransactionLayer` sits between the transport and the transaction user (the UA core /
dialog layer). It is sans-IO except for the injected :class:`~avatar_mf.clock.Clock`, through
which it arms and cancels the transaction timers, and the injected ``send`` callable.

* Requests are matched to server transactions by RFC 3261 17.2.3: the top Via ``branch``
  (when it starts with the magic cookie ``z9hG4bK``), the top Via sent-by, and the method (an
  ACK matches the INVITE transaction). Requests whose branch lacks the cookie use the RFC 2543
  rules of the same section: Request-URI, To tag, From tag, Call-ID, CSeq number and top Via;
  an ACK matches an INVITE whose response carried the ACK's To tag.
* A CANCEL (RFC 3261 9.2) is matched to the transaction it cancels by the same rules with the
  method ignored. The layer answers the CANCEL itself: 200 when it matches a live server
  transaction (with the To tag of that transaction's response, as 9.2 recommends), then
  ``tu.on_cancel`` when that transaction is an INVITE still in Proceeding (the TU answers the
  INVITE with 487); 481 when it matches nothing. CANCELs never reach ``tu.on_request``.
* An ACK that matches no server transaction (the ACK for a 2xx, RFC 3261 13.2.2.4 / 17.1.1.3)
  goes to ``tu.on_ack``, and so does an ACK received by an INVITE transaction in the RFC 6026
  Accepted state.
* Responses are matched to client transactions by RFC 3261 17.1.3: top Via branch and CSeq
  method. A response that matches nothing is dropped and counted (RFC 6026 section 8: stray
  responses are not passed up).
* A retransmitted request is handled by its transaction (cached response re-sent, or absorbed)
  and never reaches the TU twice.
* Terminated transactions leave every table at once; ``len(layer)`` is the number of live
  transactions.
* Memory is bounded (:class:`TransactionLimits`): a server transaction keeps its whole request
  only until its final response is sent; from then on it keeps what matching and
  retransmission need (the response, and the request's Via, From, To, Call-ID and CSeq, no
  body). The bytes held by server transactions are counted per source host and for the node,
  and a new request that would pass ``max_transactions``, ``max_bytes`` or
  ``max_bytes_per_source`` is answered 503 with Retry-After statelessly (RFC 3261 21.5.4),
  without a transaction; ACKs and retransmissions of live transactions always pass.

Responses of a server transaction are sent with the request's ``source`` :class:`Peer`; applying
RFC 3261 18.2.2 / RFC 3581 (``received``/``rport``, the same connection for TCP) to it is the
transport's job (:func:`avatar_mf.sip.routing.response_destination`).

Exceptions raised by the TU while handling a new request are answered rather than propagated:
a :class:`~avatar_mf.sip.errors.SipError` with its own status, anything else with 500 (and a
logged traceback). Exceptions from the other TU callbacks are logged and swallowed, so a TU bug
degrades one call, never the transport loop.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from avatar_mf.clock import Clock, TimerHandle
from avatar_mf.sip.build import MAGIC_COOKIE, make_response, new_tag, response_for_error
from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.headers import Via, parse_cseq, parse_name_addr, parse_via
from avatar_mf.sip.message import Headers, Message, Request, Response, split_header_list
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.timers import TimerConfig, TimerName
from avatar_mf.sip.transaction import (
    Action,
    CancelTimer,
    InviteClient,
    InviteServer,
    NonInviteClient,
    NonInviteServer,
    Send,
    StartTimer,
    State,
    Terminated,
    Timeout,
    ToTU,
    TransactionError,
    TransportFailed,
)
from avatar_mf.sip.validate import validate_cancel

__all__ = [
    "MAGIC_COOKIE",
    "ClientTransaction",
    "Peer",
    "ServerTransaction",
    "Transaction",
    "TransactionError",
    "TransactionLayer",
    "TransactionLimits",
    "TransactionStats",
    "TransactionUser",
]

logger = logging.getLogger(__name__)

#: The part of a server match key shared by a request, its ACK and its CANCEL:
#: ``("z", branch, sent-by)`` for RFC 3261 branches, and for RFC 2543 requests
#: ``("2543", Request-URI, From tag, Call-ID, CSeq number, top Via, To tag)``.
MatchBase = tuple[str | int | None, ...]
ServerKey = tuple[MatchBase, str]
ClientKey = tuple[str, str]

_SendFn = Callable[[Message, Peer], None]

#: What a server transaction keeps of its request once the final response is sent: the
#: headers RFC 3261 8.2.6.2 copies into responses (for the CANCEL's 200 and matching).
_KEPT_HEADERS = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})


@dataclass(frozen=True, slots=True)
class TransactionLimits:
    """Caps on what the live server transactions may hold; 0 means no cap.

    Attributes:
        max_transactions: live server transactions (client ones are the node's own).
        max_bytes: bytes of requests and responses held by all server transactions.
        max_bytes_per_source: the same, for the transactions of one source host.
        retry_after: seconds in the Retry-After of the 503 answered past a cap.
    """

    max_transactions: int = 0
    max_bytes: int = 0
    max_bytes_per_source: int = 0
    retry_after: int = 5


def message_size(message: Message) -> int:
    """The size of ``message`` on the wire, within a few bytes (no serialization)."""
    size = len(message.body) + 32
    if isinstance(message, Request):
        size += len(message.method) + len(message.uri)
    else:
        size += len(message.reason)
    for name, value in message.headers.items:
        size += len(name) + len(value) + 4
    return size


def _slim(request: Request) -> Request:
    """What a server transaction keeps of ``request`` after its final response."""
    kept = Headers(tuple((n, v) for n, v in request.headers.items if n in _KEPT_HEADERS))
    return Request(request.method, request.uri, kept, b"", request.version)


class TransactionUser(Protocol):
    """What the transaction layer calls (the UA core / dialog layer implements it)."""

    def on_request(self, tx: ServerTransaction, request: Request) -> None:
        """A new request (not ACK, not CANCEL) created server transaction ``tx``.

        Answer with ``tx.respond(...)``, now or later. A 100 Trying was already sent for an
        INVITE. Raising :class:`SipError` answers with its status; any other exception with 500.
        """
        ...

    def on_ack(self, request: Request, source: Peer) -> None:
        """An ACK for a 2xx (it matched no transaction, or an INVITE transaction in Accepted)."""
        ...

    def on_cancel(self, tx: ServerTransaction, cancel: Request) -> None:
        """A CANCEL matched INVITE transaction ``tx`` before its final response.

        The CANCEL was already answered 200; the TU should answer ``tx`` with 487 (RFC 3261 9.2).
        """
        ...

    def on_response(self, tx: ClientTransaction, response: Response) -> None:
        """A response for client transaction ``tx``. In the RFC 6026 Accepted state every 2xx
        is passed (retransmissions included), so the TU can re-send its ACK."""
        ...

    def on_transaction_timeout(self, tx: Transaction) -> None:
        """Timer B, F or H fired: no response (client) or no ACK (INVITE server)."""
        ...

    def on_transport_error(self, tx: Transaction) -> None:
        """The transport failed to send a message of ``tx`` (``send`` raised OSError)."""
        ...


@dataclass(slots=True)
class TransactionStats:
    """Counters of one :class:`TransactionLayer` (mutable; read them, do not write them).

    Attributes:
        server_created: server transactions created, per method.
        client_created: client transactions created, per method.
        retransmissions_absorbed: requests (not ACK) matched to an existing server transaction;
            they were answered from the cache or absorbed, never passed to the TU.
        acks_absorbed: ACKs for non-2xx responses (and their retransmissions) consumed by an
            INVITE server transaction.
        acks_to_tu: ACKs passed to ``tu.on_ack``.
        responses_absorbed: responses matched to a client transaction and not passed up
            (retransmissions of a final response).
        retransmissions_sent: messages re-sent by a retransmission timer: requests (Timer A,
            E) and INVITE final responses (Timer G). Only over unreliable transports.
        stray_responses: responses that matched no client transaction (dropped).
        malformed: messages whose Via, CSeq, From or To could not be parsed for matching.
        overloaded: new requests answered 503 because a :class:`TransactionLimits` cap was
            reached (no transaction created).
        timeouts: transactions that ended with Timer B, F or H.
        transport_errors: transport failures reported to the TU.
        terminated: transactions removed from the tables.
        tu_errors: exceptions raised by TU callbacks (logged).
    """

    server_created: Counter[str] = field(default_factory=Counter)
    client_created: Counter[str] = field(default_factory=Counter)
    retransmissions_absorbed: int = 0
    acks_absorbed: int = 0
    acks_to_tu: int = 0
    responses_absorbed: int = 0
    retransmissions_sent: int = 0
    stray_responses: int = 0
    malformed: int = 0
    overloaded: int = 0
    timeouts: int = 0
    transport_errors: int = 0
    terminated: int = 0
    tu_errors: int = 0


class _Tx:
    """What server and client transaction handles share: timers and liveness."""

    __slots__ = ("_layer", "_timers", "alive")

    def __init__(self, layer: TransactionLayer) -> None:
        self._layer = layer
        self._timers: dict[TimerName, TimerHandle] = {}
        #: False once the transaction has terminated and left the layer's tables.
        self.alive = True

    @property
    def armed_timers(self) -> tuple[TimerName, ...]:
        """The timers armed on the clock for this transaction."""
        return tuple(self._timers)


class ServerTransaction(_Tx):
    """The TU's handle on a server transaction (RFC 3261 17.2).

    Attributes:
        request: the request that created the transaction; once the final response is sent,
            only its Via, From, To, Call-ID and CSeq (no body): the TU got the whole request.
        source: where it came from; responses are sent to this peer.
        key: the match key in the layer's table.
        local_tag: the To tag the TU will answer with, set by the TU as soon as it chooses
            one, so that a 200 to a CANCEL that arrives before any tagged response carries
            the same tag as the 487 that follows (RFC 3261 9.2).
    """

    __slots__ = (
        "_ack_key",
        "_base",
        "_charge",
        "_machine",
        "key",
        "local_tag",
        "request",
        "source",
    )

    def __init__(
        self,
        layer: TransactionLayer,
        machine: InviteServer | NonInviteServer,
        key: ServerKey,
        source: Peer,
        ack_key: MatchBase | None,
    ) -> None:
        super().__init__(layer)
        self._machine = machine
        self.request: Request = machine.request
        self.source = source
        self.key = key
        self._base = key[0]
        self._ack_key = ack_key
        self.local_tag: str | None = None
        # Bytes counted against the limits for this transaction (TransactionLayer._charge).
        self._charge = 0

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def state(self) -> State:
        return self._machine.state

    @property
    def last_response(self) -> Response | None:
        """The most recent response sent (the 100 Trying for a fresh INVITE)."""
        return self._machine.last_response

    @property
    def final_response(self) -> Response | None:
        return self._machine.final_response

    def respond(self, response: Response) -> None:
        """Send ``response`` through the transaction.

        Raises :class:`TransactionError` when the transaction cannot send it (a second final
        response, a provisional after a 2xx, a terminated transaction).
        """
        self._layer._run(self, self._machine.on_tu_response(response))
        if response.is_final and self.alive:
            self._layer._keep_minimum(self)

    def __repr__(self) -> str:
        return f"<ServerTransaction {self.method} {self.state.value} {self.key!r}>"


class ClientTransaction(_Tx):
    """The TU's handle on a client transaction (RFC 3261 17.1).

    Attributes:
        request: the request sent.
        destination: where it is sent (and retransmitted).
        key: ``(branch, method)``, the RFC 3261 17.1.3 match key.
    """

    __slots__ = ("_machine", "destination", "key", "request")

    def __init__(
        self,
        layer: TransactionLayer,
        machine: InviteClient | NonInviteClient,
        key: ClientKey,
        destination: Peer,
    ) -> None:
        super().__init__(layer)
        self._machine = machine
        self.request: Request = machine.request
        self.destination = destination
        self.key = key

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def state(self) -> State:
        return self._machine.state

    def abandon(self) -> None:
        """Destroy the transaction without notice, e.g. an INVITE still unanswered 64*T1 after
        its CANCEL (RFC 3261 9.1). Idempotent."""
        self._layer._run(self, self._machine.abandon())

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.method} {self.state.value} {self.key!r}>"


Transaction = ServerTransaction | ClientTransaction


def _top_via(message: Message) -> Via:
    first = message.headers.get("Via")
    if first is None:
        raise SipParseError(400, "Missing Via")
    if "," in first:
        elements = split_header_list(first)
        if not elements:
            raise SipParseError(400, "Empty Via")
        first = elements[0]
    return parse_via(first)


def _tag(value: str | None, name: str) -> str | None:
    if value is None:
        raise SipParseError(400, f"Missing {name}")
    return parse_name_addr(value).tag


def _response_tag(response: Response | None) -> str | None:
    if response is None:
        return None
    try:
        return parse_name_addr(response.headers.get("To") or "").tag
    except SipParseError:
        return None


class TransactionLayer:
    """Server and client transactions of one SIP endpoint.

    Args:
        clock: arms the transaction timers (``call_later``) and cancels them.
        timers: T1/T2/T4 and the timers derived from them.
        send: hands a message to the transport: ``send(message, peer)``. Requests go to the
            client transaction's destination; responses to the server transaction's source
            (the transport applies RFC 3261 18.2.2). Raising :class:`OSError` is a transport
            error for the transaction.
        tu: the transaction user.
        limits: caps on live server transactions and the bytes they hold (none by default).
    """

    def __init__(
        self,
        clock: Clock,
        timers: TimerConfig,
        send: _SendFn,
        tu: TransactionUser,
        limits: TransactionLimits | None = None,
    ) -> None:
        self._clock = clock
        self._config = timers
        self._send = send
        self._tu = tu
        self._limits = limits if limits is not None else TransactionLimits()
        #: Bytes held by live server transactions, in all and per source host.
        self.held_bytes = 0
        self._held_by_source: dict[str, int] = {}
        self._server: dict[ServerKey, ServerTransaction] = {}
        # CANCEL matching (RFC 3261 9.2): every live non-CANCEL server transaction by base.
        self._by_base: dict[MatchBase, ServerTransaction] = {}
        # RFC 2543 ACK matching: INVITE transactions by their base without the To tag.
        self._ack_2543: dict[MatchBase, ServerTransaction] = {}
        self._client: dict[ClientKey, ClientTransaction] = {}
        self.stats = TransactionStats()

    # -- introspection --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._server) + len(self._client)

    @property
    def active_count(self) -> int:
        """Live transactions (server and client)."""
        return len(self)

    @property
    def timers(self) -> TimerConfig:
        return self._config

    @property
    def limits(self) -> TransactionLimits:
        return self._limits

    def held_bytes_of(self, host: str) -> int:
        """Bytes held by the live server transactions of requests from ``host``."""
        return self._held_by_source.get(host, 0)

    def server_transactions(self) -> list[ServerTransaction]:
        return list(self._server.values())

    def client_transactions(self) -> list[ClientTransaction]:
        return list(self._client.values())

    # -- input from the transport ---------------------------------------------------------

    def receive(self, message: Message, source: Peer) -> None:
        """A message arrived from ``source``. Never raises for anything the peer sent."""
        if isinstance(message, Request):
            self._receive_request(message, source)
        else:
            self._receive_response(message)

    def _receive_request(self, request: Request, source: Peer) -> None:
        method = request.method
        try:
            base, ack_key = self._match_base(request)
        except SipParseError as exc:
            self.stats.malformed += 1
            if method != "ACK":
                self._reply_stateless(request, source, exc)
            return

        if method == "ACK":
            self._receive_ack(request, source, base, ack_key)
            return

        key: ServerKey = (base, method)
        tx = self._server.get(key)
        if tx is not None:
            self.stats.retransmissions_absorbed += 1
            self._run(tx, tx._machine.on_request(request))
            return
        size = message_size(request)
        if self._over_limits(source, size):
            self.stats.overloaded += 1
            retry = (("Retry-After", str(self._limits.retry_after)),)
            self._reply_stateless(request, source, SipError(503, headers=retry))
            return
        if method == "CANCEL":
            try:
                validate_cancel(request)  # RFC 3261 9.1: CSeq method CANCEL, else 400
            except SipError as exc:
                self.stats.malformed += 1
                self._reply_stateless(request, source, exc)
                return
            self._receive_cancel(request, source, key, size)
            return
        tx = self._create_server(request, source, key, ack_key, size)
        self._run(tx, tx._machine.start())

    def _receive_ack(
        self, ack: Request, source: Peer, base: MatchBase, ack_key: MatchBase | None
    ) -> None:
        if ack_key is None:
            tx = self._server.get((base, "INVITE"))
        else:
            # RFC 2543: the ACK's To tag must be the tag of the response the transaction sent.
            tx = self._ack_2543.get(ack_key)
            if tx is not None and base[-1] != _response_tag(tx.final_response):
                tx = None
        if tx is None:
            self._deliver_ack(ack, source)
            return
        actions = tx._machine.on_request(ack)
        if not any(isinstance(a, ToTU) for a in actions):
            self.stats.acks_absorbed += 1
        self._run(tx, actions, source)

    def _receive_cancel(self, cancel: Request, source: Peer, key: ServerKey, size: int) -> None:
        cancel_tx = self._create_server(cancel, source, key, None, size)
        cancel_tx._machine.start()  # the CANCEL itself is never passed up
        target = self._by_base.get(key[0])
        if target is None:
            cancel_tx.respond(response_for_error(cancel, SipError(481)))
            return
        # RFC 3261 9.2: the same To tag as the response to the request being cancelled.
        to_tag = _response_tag(target.last_response) or target.local_tag or new_tag()
        cancel_tx.respond(make_response(cancel, 200, to_tag=to_tag))
        if target.alive and target.method == "INVITE" and target.state is State.PROCEEDING:
            try:
                self._tu.on_cancel(target, cancel)
            except Exception:
                self._tu_failed("on_cancel")
                self._answer_failure(target, SipError(487))

    def _receive_response(self, response: Response) -> None:
        try:
            branch = _top_via(response).branch
            method = parse_cseq(response.headers.get("CSeq") or "").method
        except SipParseError:
            self.stats.malformed += 1
            return
        tx = self._client.get((branch or "", method))
        if tx is None:
            self.stats.stray_responses += 1
            return
        actions = tx._machine.on_response(response)
        if not any(isinstance(a, ToTU) for a in actions):
            self.stats.responses_absorbed += 1
        self._run(tx, actions)

    def _match_base(self, request: Request) -> tuple[MatchBase, MatchBase | None]:
        """The RFC 3261 17.2.3 match base and, for RFC 2543 requests, the ACK match key."""
        top = _top_via(request)
        branch = top.branch
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            return ("z", branch, top.sent_by.lower()), None
        headers = request.headers
        call_id = headers.get("Call-ID")
        if call_id is None:
            raise SipParseError(400, "Missing Call-ID")
        cseq = parse_cseq(headers.get("CSeq") or "")
        from_tag = _tag(headers.get("From"), "From")
        to_tag = _tag(headers.get("To"), "To")
        ack_key: MatchBase = ("2543", request.uri, from_tag, call_id, cseq.seq, str(top))
        return (*ack_key, to_tag), ack_key

    def _create_server(
        self,
        request: Request,
        source: Peer,
        key: ServerKey,
        ack_key: MatchBase | None,
        size: int,
    ) -> ServerTransaction:
        """A server transaction for ``request``, charged ``size`` (its :func:`message_size`,
        already computed for the limits check)."""
        method = request.method
        reliable = source.reliable
        machine: InviteServer | NonInviteServer
        if method == "INVITE":
            machine = InviteServer(request, reliable=reliable, config=self._config)
        else:
            machine = NonInviteServer(request, reliable=reliable, config=self._config)
        tx = ServerTransaction(self, machine, key, source, ack_key if method == "INVITE" else None)
        self._charge(tx, size)
        self._server[key] = tx
        if method != "CANCEL":
            self._by_base.setdefault(key[0], tx)
        if tx._ack_key is not None:
            self._ack_2543.setdefault(tx._ack_key, tx)
        self.stats.server_created[method] += 1
        return tx

    # -- memory limits --------------------------------------------------------------------

    def _over_limits(self, source: Peer, size: int) -> bool:
        limits = self._limits
        if limits.max_transactions and len(self._server) >= limits.max_transactions:
            return True
        if limits.max_bytes and self.held_bytes + size > limits.max_bytes:
            return True
        return bool(
            limits.max_bytes_per_source
            and self._held_by_source.get(source.host, 0) + size > limits.max_bytes_per_source
        )

    def _charge(self, tx: ServerTransaction, size: int) -> None:
        """Count ``size`` bytes for ``tx`` instead of what it was charged so far."""
        delta = size - tx._charge
        tx._charge = size
        self.held_bytes += delta
        host = tx.source.host
        held = self._held_by_source.get(host, 0) + delta
        if held > 0:
            self._held_by_source[host] = held
        else:
            self._held_by_source.pop(host, None)

    def _keep_minimum(self, tx: ServerTransaction) -> None:
        """The final response is sent: keep only what matching and retransmission need."""
        slim = _slim(tx.request)
        tx.request = slim
        tx._machine.request = slim
        final = tx.final_response
        self._charge(tx, message_size(slim) + (message_size(final) if final else 0))

    # -- input from the TU ----------------------------------------------------------------

    def send_request(self, request: Request, destination: Peer) -> ClientTransaction:
        """Start a client transaction for ``request`` (not ACK) towards ``destination``.

        The request must carry its top Via with an RFC 3261 branch (``new_branch()``) and a
        CSeq whose method is the request's. Callbacks for the transaction (even a transport
        error) may come before this returns.
        """
        method = request.method
        if method == "ACK":
            raise TransactionError("ACK is not sent in a transaction: use send_stateless()")
        try:
            branch = _top_via(request).branch
            cseq = parse_cseq(request.headers.get("CSeq") or "")
        except SipParseError as exc:
            raise TransactionError(f"cannot send {method}: {exc.reason}") from exc
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise TransactionError(f"the top Via branch must start with {MAGIC_COOKIE}")
        if cseq.method != method:
            raise TransactionError(f"CSeq method {cseq.method} differs from {method}")
        key: ClientKey = (branch, method)
        if key in self._client:
            raise TransactionError(f"a {method} transaction with branch {branch} exists")
        machine: InviteClient | NonInviteClient
        if method == "INVITE":
            machine = InviteClient(request, reliable=destination.reliable, config=self._config)
        else:
            machine = NonInviteClient(request, reliable=destination.reliable, config=self._config)
        tx = ClientTransaction(self, machine, key, destination)
        self._client[key] = tx
        self.stats.client_created[method] += 1
        self._run(tx, machine.start())
        return tx

    def send_stateless(self, message: Message, destination: Peer) -> None:
        """Send outside any transaction: the ACK for a 2xx (RFC 3261 13.2.2.4).

        Transport errors (:class:`OSError`) propagate to the caller.
        """
        self._send(message, destination)

    def close(self) -> None:
        """Drop every transaction and cancel every timer (shutdown)."""
        live: list[Transaction] = [*self._server.values(), *self._client.values()]
        for tx in live:
            self._remove(tx)

    # -- carrying out actions -------------------------------------------------------------

    def _run(self, tx: Transaction, actions: list[Action], source: Peer | None = None) -> None:
        """Carry out a machine's actions for ``tx`` in order.

        If the transaction terminates part-way (a failed send), the rest of the list is
        dropped: it was computed for a transaction that no longer exists, and the TU has been
        told through ``on_transport_error``.
        """
        for action in actions:
            if not tx.alive:
                return
            if isinstance(action, Send):
                self._transmit(tx, action.message)
            elif isinstance(action, StartTimer):
                old = tx._timers.get(action.name)
                if old is not None:
                    old.cancel()
                tx._timers[action.name] = self._clock.call_later(
                    action.delay, partial(self._fire, tx, action.name)
                )
            elif isinstance(action, CancelTimer):
                handle = tx._timers.pop(action.name, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, ToTU):
                self._to_tu(tx, action.message, source)
            elif isinstance(action, Terminated):
                self._remove(tx)
            elif isinstance(action, Timeout):
                self.stats.timeouts += 1
                try:
                    self._tu.on_transaction_timeout(tx)
                except Exception:
                    self._tu_failed("on_transaction_timeout")
            elif isinstance(action, TransportFailed):
                self.stats.transport_errors += 1
                try:
                    self._tu.on_transport_error(tx)
                except Exception:
                    self._tu_failed("on_transport_error")

    def _transmit(self, tx: Transaction, message: Message) -> None:
        peer = tx.source if isinstance(tx, ServerTransaction) else tx.destination
        try:
            self._send(message, peer)
        except OSError as exc:
            logger.info("transport error sending to %s: %s", peer, exc)
            self._run(tx, tx._machine.on_transport_error())

    def _fire(self, tx: Transaction, name: TimerName) -> None:
        tx._timers.pop(name, None)
        if tx.alive:
            actions = tx._machine.on_timer(name)
            # A timer's Send is always a retransmission (Timers A, E and G).
            self.stats.retransmissions_sent += sum(isinstance(a, Send) for a in actions)
            self._run(tx, actions)

    def _to_tu(self, tx: Transaction, message: Message, source: Peer | None) -> None:
        if isinstance(tx, ClientTransaction):
            assert isinstance(message, Response)
            try:
                self._tu.on_response(tx, message)
            except Exception:
                self._tu_failed("on_response")
            return
        assert isinstance(message, Request)
        if message is not tx.request:
            self._deliver_ack(message, source if source is not None else tx.source)
            return
        try:
            self._tu.on_request(tx, message)
        except SipError as exc:
            self._answer_failure(tx, exc)
        except Exception:
            self._tu_failed("on_request")
            self._answer_failure(tx, SipError(500))

    def _deliver_ack(self, ack: Request, source: Peer) -> None:
        self.stats.acks_to_tu += 1
        try:
            self._tu.on_ack(ack, source)
        except Exception:
            self._tu_failed("on_ack")

    def _answer_failure(self, tx: ServerTransaction, error: SipError) -> None:
        if not tx.alive or tx.final_response is not None:
            return
        try:
            tx.respond(response_for_error(tx.request, error))
        except (SipError, TransactionError):
            logger.exception("could not answer %s with %s", tx.method, error.status)

    def _tu_failed(self, callback: str) -> None:
        self.stats.tu_errors += 1
        logger.exception("transaction user failed in %s", callback)

    def _reply_stateless(self, request: Request, source: Peer, error: SipError) -> None:
        try:
            self._send(response_for_error(request, error), source)
        except (SipError, OSError):
            logger.info("dropped a malformed %s from %s: %s", request.method, source, error)

    def _remove(self, tx: Transaction) -> None:
        if not tx.alive:
            return
        tx.alive = False
        for handle in tx._timers.values():
            handle.cancel()
        tx._timers.clear()
        if isinstance(tx, ServerTransaction):
            self._charge(tx, 0)
            if self._server.get(tx.key) is tx:
                del self._server[tx.key]
            if self._by_base.get(tx._base) is tx:
                del self._by_base[tx._base]
            if tx._ack_key is not None and self._ack_2543.get(tx._ack_key) is tx:
                del self._ack_2543[tx._ack_key]
        elif self._client.get(tx.key) is tx:
            del self._client[tx.key]
        self.stats.terminated += 1
