"""The SIP endpoint: transports below, the transaction layer above.

It is the :class:`~avatar_mf.transport.base.TransportSink` of every transport. Incoming packets
pass admission (per-source rate limit in messages and bytes, every untrusted source sharing one
bucket), are parsed by the transport, get their top Via stamped
(RFC 3261 18.2.1, RFC 3581), and reach the transaction layer; requests from outside the
trusted-peer list are answered 403 statelessly; unparsable requests are answered statelessly
(400, 505, 513 ...) when enough of them was read to build an answer (RFC 3261 8.2.6.2),
otherwise dropped. Outgoing responses go where RFC 3261 18.2.2 / RFC 3581 say.

Counters (read by ``/stats`` and ``/metrics``): ``stats``, an :class:`EndpointStats` (messages
by method or status and direction, refusals, responses sent by method of the CSeq and status).
Method names outside :data:`COUNTED_METHODS` count as ``other``, so a peer inventing methods
cannot grow them.

``tap``, when set (the SIP trace, :mod:`avatar_mf.node.trace`), sees every message received
(past the rate limit, before the trusted-peer check and the Via stamping) and every message
sent, with where it went. :meth:`SipEndpoint.set_admission` swaps the trusted peers and the
rate limiter of a running node (SIGHUP).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from avatar_mf.sip.build import new_tag, response_for_error
from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.message import Message, Request, Response, serialize
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.routing import response_destination, stamp_received
from avatar_mf.sip.transaction_layer import TransactionLayer
from avatar_mf.transport.admission import UNTRUSTED, RateLimiter, TrustedPeers
from avatar_mf.transport.base import SipTransport

log = logging.getLogger(__name__)

#: Methods counted under their own name (RFC 3261 and the extensions SIP peers send);
#: any other method is counted as "other".
COUNTED_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "REGISTER", "PRACK",
        "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE",
    }
)  # fmt: skip


def method_label(method: str) -> str:
    """``method`` if it is one of :data:`COUNTED_METHODS`, else ``"other"``."""
    return method if method in COUNTED_METHODS else "other"


def _response_method(response: Response) -> str:
    cseq = response.headers.get("CSeq") or ""
    return method_label(cseq.rpartition(" ")[2].strip())


def _source(peer: Peer) -> dict[str, object]:
    return {"source": f"{peer.host}:{peer.port}", "transport": peer.transport}


@dataclass(slots=True)
class EndpointStats:
    """The endpoint's counters since it started."""

    #: Requests received, by method label (:func:`method_label`).
    requests_received: Counter[str] = field(default_factory=Counter)
    #: Responses received, by status code.
    responses_received: Counter[int] = field(default_factory=Counter)
    #: Requests sent, by method label.
    requests_sent: Counter[str] = field(default_factory=Counter)
    #: Responses sent, by (CSeq method, status code).
    responses_sent: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: Packets refused by the per-source rate limit.
    rate_limited: int = 0
    #: Messages from outside the trusted peers.
    untrusted: int = 0
    #: Messages that could not be parsed.
    bad_message: int = 0

    def as_dict(self) -> dict[str, int]:
        """The flat form ``/stats`` shows (its ``sip`` object): ``rx_request_INVITE``,
        ``tx_response_200``, ``rate_limited`` ..., only the counters that counted."""
        flat: dict[str, int] = {}
        flat.update((f"rx_request_{m}", v) for m, v in self.requests_received.items())
        flat.update((f"rx_response_{c}", v) for c, v in self.responses_received.items())
        flat.update((f"tx_request_{m}", v) for m, v in self.requests_sent.items())
        by_status: Counter[int] = Counter()
        for (_method, status), count in self.responses_sent.items():
            by_status[status] += count
        flat.update((f"tx_response_{c}", v) for c, v in by_status.items())
        for name in ("rate_limited", "untrusted", "bad_message"):
            value: int = getattr(self, name)
            if value:
                flat[name] = value
        return flat


class MessageTap(Protocol):
    """Sees the messages of the s18 edge: ``direction`` "in" (``data`` None: the message as
    parsed) or "out" (``data``: the bytes sent, ``peer``: where they went)."""

    def tap(self, direction: str, message: Message, data: bytes | None, peer: Peer) -> None: ...


class SipEndpoint:
    def __init__(
        self,
        *,
        trusted: TrustedPeers,
        limiter: RateLimiter,
        server_header: str,
    ) -> None:
        self._trusted = trusted
        self._limiter = limiter
        self._server_header = server_header
        self._transports: dict[str, SipTransport] = {}
        self._layer: TransactionLayer | None = None
        self.stats = EndpointStats()
        #: The SIP trace, when one is attached (None: no message is looked at).
        self.tap: MessageTap | None = None

    def attach(self, layer: TransactionLayer, transports: dict[str, SipTransport]) -> None:
        self._layer = layer
        self._transports = transports

    def set_admission(self, trusted: TrustedPeers, limiter: RateLimiter) -> None:
        """Use ``trusted`` and ``limiter`` from the next message on (a configuration reload)."""
        self._trusted = trusted
        self._limiter = limiter

    def local_port(self, transport: str) -> int:
        t = self._transports.get(transport.lower())
        return t.local_port if t is not None else 0

    # -- TransportSink --------------------------------------------------------------------

    def admit(self, peer: Peer, size: int) -> bool:
        # Untrusted sources share one bucket: they get 403 at most, and the addresses they
        # invent never take a place in the table that the trusted peers' buckets need.
        source = peer.host if self._trusted.allows(peer.host) else UNTRUSTED
        if self._limiter.allow(source, size):
            return True
        self.stats.rate_limited += 1
        return False

    def message_received(self, message: Message, peer: Peer) -> None:
        assert self._layer is not None
        if self.tap is not None:
            self.tap.tap("in", message, None, peer)
        if isinstance(message, Request):
            self.stats.requests_received[method_label(message.method)] += 1
            try:
                message = stamp_received(message, peer)
            except SipParseError as err:
                self._answer_statelessly(message, err, peer)
                return
            if not self._trusted.allows(peer.host):
                self.stats.untrusted += 1
                log.debug(
                    "%s from untrusted %s: 403",
                    message.method,
                    peer.host,
                    extra={"call_id": message.headers.get("Call-ID") or "", **_source(peer)},
                )
                self._answer_statelessly(message, SipError(403, "Not A Trusted Peer"), peer)
                return
        else:
            self.stats.responses_received[message.status] += 1
            if not self._trusted.allows(peer.host):
                self.stats.untrusted += 1
                return
        self._layer.receive(message, peer)

    def bad_message(self, error: SipParseError, peer: Peer) -> None:
        self.stats.bad_message += 1
        extra = _source(peer)
        if error.partial is not None:
            extra["call_id"] = error.partial.headers.get("Call-ID") or ""
        log.info(
            "unparsable message from %s:%d: %s", peer.host, peer.port, error.reason, extra=extra
        )
        if error.partial is not None and self._trusted.allows(peer.host):
            try:
                request = stamp_received(error.partial, peer)
            except SipParseError:
                request = error.partial
            self._answer_statelessly(request, error, peer)

    def _answer_statelessly(self, request: Request, err: SipError, peer: Peer) -> None:
        if request.method == "ACK":
            return
        try:
            response = response_for_error(request, err, new_tag())
            response = response.with_headers(response.headers.add("Server", self._server_header))
            self.send(response, peer)
        except SipError:
            # Not even enough to answer: no Via, or one too broken to route by (18.2.2).
            log.debug(
                "no answer possible to %s: %s", request.method, err.reason, extra=_source(peer)
            )
        except OSError as exc:
            log.info("cannot answer %s: %s", request.method, exc, extra=_source(peer))

    # -- down to the transports -----------------------------------------------------------

    def send(self, message: Message, peer: Peer) -> None:
        """Send ``message``: a response to the source of its request, a request to ``peer``."""
        transport = self._transports.get(peer.transport.lower())
        if transport is None:
            raise OSError(f"no {peer.transport} transport")
        data = serialize(message)
        if isinstance(message, Response):
            self.stats.responses_sent[_response_method(message), message.status] += 1
            dest = response_destination(message, peer)
            ok = transport.send(data, dest.host, dest.port, dest.connection_id)
            if self.tap is not None:
                self.tap.tap("out", message, data, Peer(peer.transport, dest.host, dest.port))
        else:
            self.stats.requests_sent[method_label(message.method)] += 1
            ok = transport.send(data, peer.host, peer.port, peer.connection_id)
            if not ok and peer.connection_id is not None:
                # The connection the dialog started on is gone: open a new one.
                ok = transport.send(data, peer.host, peer.port, None)
            if self.tap is not None:
                self.tap.tap("out", message, data, peer)
        if not ok:
            raise OSError(f"cannot send to {peer.transport}:{peer.host}:{peer.port}")
