"""The MF's own initial INVITE, UAC side (RFC 3261 8.1, 9.1, 12.1.2, 13.2; RFC 4028 7.1, 7.2).

Used for the second leg of a two-leg call (``ua/b2bua.py``). Pure builders and one small
machine, :class:`OutgoingInvite`, driven by the user agent's transaction callbacks:

- :func:`build_invite` (8.1.1, 13.2.1): Request-URI, a loose Route to the outbound proxy
  (8.1.2: the request goes to the proxy, the Request-URI untouched), From with a fresh tag, To
  without one, a fresh Call-ID, CSeq, Max-Forwards, Contact, Allow, Supported: timer and the
  MF's Session-Expires/Min-SE (RFC 4028 7.1), the SDP offer.
- :func:`uac_dialog` (12.1.2): the dialog from the 2xx: route set from its Record-Route in
  reverse order, remote target from its Contact, remote tag from its To, local sequence from the
  INVITE's CSeq, remote sequence empty (0).
- :func:`build_ack` (13.2.2.4): the ACK for a 2xx, in the dialog, with the INVITE's CSeq number
  and a fresh branch (sent outside the transaction). :func:`build_cancel` (9.1): the CANCEL,
  with the INVITE's Request-URI, Call-ID, From, To, CSeq number, Route and top Via.
- :func:`leg_timer` (RFC 4028 7.2, 8): the session timer the 2xx sets, from the MF's side.
- :class:`OutgoingInvite`: sends the INVITE in a client transaction and reports provisional
  responses, the answer and the refusal to its :class:`InviteListener`. Every 2xx (its
  retransmissions too, RFC 6026 7.2) is ACKed; a 2xx that arrives after :meth:`~OutgoingInvite.
  cancel`, or from a second fork, is ACKed and ended with BYE (15). CANCEL is sent only once a
  provisional response came (9.1: "a CANCEL ... SHOULD NOT be sent" before one); a cancelled
  INVITE still unanswered 64*T1 after its CANCEL is abandoned (9.1).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from avatar_mf.clock import Clock, TimerHandle
from avatar_mf.sip.build import new_branch
from avatar_mf.sip.dialog import Dialog
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.headers import NameAddr, parse_cseq, parse_name_addr
from avatar_mf.sip.message import Headers, Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.session_timer import SessionTimer
from avatar_mf.sip.transaction_layer import ClientTransaction
from avatar_mf.sip.uri import SipUri, parse_uri

log = logging.getLogger(__name__)

__all__ = [
    "InviteListener",
    "InviteSpec",
    "OutgoingInvite",
    "build_ack",
    "build_cancel",
    "build_invite",
    "hop_peer",
    "leg_timer",
    "uac_dialog",
    "via_for",
]


def hop_peer(uri: str, default_transport: str = "udp") -> Peer:
    """Where a request to ``uri`` goes: its host and port (5060, 5061 for sips) over its
    ``transport`` parameter (default ``default_transport``). Host names are used as written
    (the transports resolve them). Raises SipError(400) for a URI that is not sip/sips."""
    parsed = parse_uri(uri)
    if not isinstance(parsed, SipUri):
        raise SipError(400, "Not A SIP URI")
    transport = (parsed.transport or default_transport).lower()
    port = parsed.port or (5061 if parsed.scheme == "sips" else 5060)
    return Peer(transport, parsed.host.strip("[]"), port)


def via_for(peer: Peer, host: str, port: int) -> str:
    """The MF's Via for a request to ``peer`` (fresh branch, rport asked, RFC 3581)."""
    return f"SIP/2.0/{peer.transport.upper()} {host}:{port};branch={new_branch()};rport"


@dataclass(frozen=True, slots=True)
class InviteSpec:
    """What the MF's INVITE says.

    Attributes:
        request_uri: the callee's URI (for a two-leg call: the Request-URI UE1 dialled).
        from_uri, to_uri: the identities (From: the caller's, To: the callee's).
        from_tag, call_id, cseq: fresh for this INVITE (8.1.1.3, 8.1.1.4, 8.1.1.5).
        contact: the MF's Contact.
        route: the outbound proxy, as a Route value (``<sip:proxy;lr>``), or empty.
        max_forwards: 70, or one less than the incoming INVITE's.
        session_expires, min_se: the MF's session timer wish (RFC 4028 7.1); 0: none.
        headers: further headers (User-Agent ...).
    """

    request_uri: str
    from_uri: str
    to_uri: str
    from_tag: str
    call_id: str
    cseq: int
    contact: str
    route: str = ""
    max_forwards: int = 70
    session_expires: int = 0
    min_se: int = 90
    allow: str = ""
    headers: tuple[tuple[str, str], ...] = ()


def build_invite(spec: InviteSpec, via: str, offer: bytes) -> Request:
    """The initial INVITE of ``spec`` carrying ``offer`` (RFC 3261 8.1.1, 13.2.1)."""
    pairs: list[tuple[str, str]] = [
        ("Via", via),
        ("Max-Forwards", str(spec.max_forwards)),
    ]
    if spec.route:
        pairs.append(("Route", spec.route))
    pairs += [
        ("From", str(NameAddr(None, spec.from_uri, (("tag", spec.from_tag),)))),
        ("To", str(NameAddr(None, spec.to_uri, ()))),
        ("Call-ID", spec.call_id),
        ("CSeq", f"{spec.cseq} INVITE"),
        ("Contact", spec.contact),
        ("Supported", "timer"),
    ]
    if spec.allow:
        pairs.append(("Allow", spec.allow))
    if spec.session_expires:
        pairs.append(("Session-Expires", str(spec.session_expires)))
        pairs.append(("Min-SE", str(spec.min_se)))
    pairs.extend(spec.headers)
    if offer:
        pairs.append(("Content-Type", "application/sdp"))
    return Request("INVITE", spec.request_uri, Headers.of(pairs), offer)


def uac_dialog(invite: Request, ok: Response) -> Dialog:
    """The dialog a 2xx to the MF's ``invite`` creates (RFC 3261 12.1.2).

    Raises SipError(502) for a 2xx without Contact (8.1.1.8: a 2xx to INVITE must carry one).
    """
    frm = parse_name_addr(invite.headers.get("From") or "")
    to = parse_name_addr(ok.headers.get("To") or "")
    contacts = ok.headers.get_list("Contact")
    if not contacts:
        raise SipError(502, "No Contact In 2xx")
    target = parse_name_addr(contacts[0]).uri
    record_route = ok.headers.get_list("Record-Route")
    return Dialog(
        call_id=invite.headers.get("Call-ID") or "",
        local_tag=frm.tag or "",
        remote_tag=to.tag or "",
        local_uri=frm.uri,
        remote_uri=to.uri,
        remote_target=target,
        route_set=tuple(reversed(record_route)),
        remote_seq=0,
        local_seq=parse_cseq(invite.headers.get("CSeq") or "").seq,
        secure=invite.uri.lower().startswith("sips:"),
    )


def build_ack(invite: Request, dialog: Dialog, via: str) -> Request:
    """The ACK for a 2xx to ``invite`` (RFC 3261 13.2.2.4): built like a request in the dialog,
    with the INVITE's CSeq number (not a new one) and no body (the offer was in the INVITE)."""
    _, ack = dialog.next_request("ACK", contact="")
    seq = parse_cseq(invite.headers.get("CSeq") or "").seq
    headers = ack.headers.set("CSeq", f"{seq} ACK").remove("Contact").prepend("Via", via)
    return Request("ACK", ack.uri, headers)


def build_cancel(invite: Request) -> Request:
    """The CANCEL for ``invite`` (RFC 3261 9.1): the INVITE's Request-URI, top Via, Call-ID,
    From, To, CSeq number and Route headers, nothing else."""
    headers = invite.headers
    pairs: list[tuple[str, str]] = [("Via", headers.get_all("Via")[0])]
    pairs.extend(("Route", r) for r in headers.get_all("Route"))
    for name in ("Max-Forwards", "From", "To", "Call-ID"):
        value = headers.get(name)
        if value is not None:
            pairs.append((name, value))
    seq = parse_cseq(headers.get("CSeq") or "").seq
    pairs.append(("CSeq", f"{seq} CANCEL"))
    return Request("CANCEL", invite.uri, Headers.of(pairs))


def leg_timer(ok: Response) -> SessionTimer:
    """The session timer a 2xx to the MF's INVITE sets, from the MF's side (RFC 4028 7.2, 8).

    The returned :class:`SessionTimer` speaks the user agent's language (``refresher="uac"``:
    the other end refreshes, the MF watches; ``"uas"``: the MF refreshes), the reverse of the
    2xx's, whose ``uac`` is the MF. A 2xx without Session-Expires: no session timer (the MF, as
    refresher, could still refresh; it does not, and relies on BYE and media failure).
    """
    value = ok.headers.get("Session-Expires")
    if value is None:
        return SessionTimer()
    head, _, params = value.partition(";")
    try:
        expires = int(head.strip())
    except ValueError:
        return SessionTimer()
    refresher = "uac"  # RFC 4028 7.2: the UAS chose; absent, the UAC (the MF) refreshes
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = val.strip().lower()
    return SessionTimer(expires, "uas" if refresher == "uac" else "uac")


class InviteListener(Protocol):
    """What an :class:`OutgoingInvite` reports (once each, but provisional responses)."""

    def on_progress(self, response: Response) -> None:
        """A 101-199 response."""
        ...

    def on_answered(self, response: Response, dialog: Dialog) -> None:
        """The first 2xx (already ACKed)."""
        ...

    def on_refused(self, status: int, reason: str) -> None:
        """A 300-699 response, a timeout (408) or a transport error (503)."""
        ...


class SendRequest(Protocol):
    def __call__(self, request: Request, peer: Peer) -> ClientTransaction: ...


class OutgoingInvite:
    """One INVITE the MF sends, from the request to its final response (see the module doc).

    Args:
        request: the INVITE (:func:`build_invite`).
        peer: where it goes (the outbound proxy).
        send_request: starts a client transaction (the UA transport's ``send_request``).
        send_ack: sends an ACK outside any transaction (``send_stateless``).
        make_via: the Via for a new request to a peer (:func:`via_for` with the MF's address).
        clock, abandon_after: the 64*T1 after a CANCEL before the INVITE is abandoned.
        listener: told of the outcome.
        on_finished: called once, when the INVITE got its final response, failed or was
            abandoned.
    """

    def __init__(
        self,
        request: Request,
        peer: Peer,
        *,
        send_request: SendRequest,
        send_ack: Callable[[Request, Peer], None],
        make_via: Callable[[Peer], str],
        clock: Clock,
        abandon_after: float,
        listener: InviteListener,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self.request = request
        self._on_finished = on_finished
        self.peer = peer
        self._send_request = send_request
        self._send_ack = send_ack
        self._make_via = make_via
        self._clock = clock
        self._abandon_after = abandon_after
        self._listener: InviteListener | None = listener
        self.tx: ClientTransaction | None = None
        #: A provisional response came (a CANCEL may be sent).
        self.proceeding = False
        #: A final response came (or the transaction failed).
        self.done = False
        #: The dialog of the 2xx the MF kept, once it came.
        self.dialog: Dialog | None = None
        self._cancel_wanted = False
        self._cancel_sent = False
        #: ACKs sent, by the To tag of the 2xx they acknowledge (re-sent on retransmissions).
        self._acks: dict[str, tuple[Request, Peer]] = {}
        self._abandon: TimerHandle | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancel_wanted

    def start(self) -> ClientTransaction:
        self.tx = self._send_request(self.request, self.peer)
        return self.tx

    def cancel(self) -> None:
        """Give up the call attempt: CANCEL now if a provisional came, else when one does;
        a 2xx that still comes is ACKed and ended with BYE. Idempotent; nothing more is
        reported to the listener."""
        self._listener = None
        if self._cancel_wanted or self.done:
            return
        self._cancel_wanted = True
        if self.proceeding:
            self._send_cancel()

    def _send_cancel(self) -> None:
        if self._cancel_sent or self.done:
            return
        self._cancel_sent = True
        try:
            self._send_request(build_cancel(self.request), self.peer)
        except Exception:
            log.exception("could not send CANCEL", extra=self._log_extra)
        self._abandon = self._clock.call_later(self._abandon_after, self._give_up)

    def _give_up(self) -> None:
        """9.1: no final response 64*T1 after the CANCEL: destroy the INVITE transaction."""
        self._abandon = None
        if not self.done and self.tx is not None:
            self.tx.abandon()
        self._finish()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self._abandon is not None:
            self._abandon.cancel()
            self._abandon = None
        if self._on_finished is not None:
            self._on_finished()

    @property
    def _log_extra(self) -> dict[str, object]:
        return {"call_id": self.request.headers.get("Call-ID") or ""}

    # -- from the user agent's transaction callbacks --------------------------------------

    def on_response(self, response: Response) -> None:
        status = response.status
        if status < 200:
            if self.done:
                return
            self.proceeding = True  # RFC 3261 9.1: any provisional response allows a CANCEL
            if self._cancel_wanted:
                self._send_cancel()
            elif status != 100 and self._listener is not None:
                self._listener.on_progress(response)
            return
        if status < 300:
            self._on_2xx(response)
            return
        if self.done:
            return
        self._finish()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.on_refused(status, response.reason)

    def _on_2xx(self, response: Response) -> None:
        tag = parse_name_addr(response.headers.get("To") or "").tag or ""
        known = self._acks.get(tag)
        if known is not None:
            self._ack(*known)  # a retransmission: the ACK again (13.2.2.4)
            return
        try:
            dialog = uac_dialog(self.request, response)
        except SipError:
            log.info("2xx without Contact: cannot acknowledge it", extra=self._log_extra)
            if not self.done:
                self._finish()
                listener, self._listener = self._listener, None
                if listener is not None:
                    listener.on_refused(502, "Bad 2xx")
            return
        peer = hop_peer(dialog.first_hop(), self.peer.transport)
        ack = build_ack(self.request, dialog, self._make_via(peer))
        self._acks[tag] = (ack, peer)
        self._ack(ack, peer)
        if self.dialog is not None or self._cancel_wanted:
            # A second fork, or an answer to a call given up: end that dialog (RFC 3261 15).
            self._bye(dialog, peer)
            self._finish()
            return
        self.dialog = dialog
        self._finish()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.on_answered(response, dialog)

    def _ack(self, ack: Request, peer: Peer) -> None:
        try:
            self._send_ack(ack, peer)
        except OSError as exc:
            log.info("could not send ACK: %s", exc, extra=self._log_extra)

    def _bye(self, dialog: Dialog, peer: Peer) -> None:
        _, bye = dialog.next_request(
            "BYE",
            contact=self.request.headers.get("Contact") or "",
            headers=(("Reason", 'SIP;cause=487;text="call attempt given up"'),),
        )
        bye = bye.with_headers(bye.headers.prepend("Via", self._make_via(peer)))
        with contextlib.suppress(Exception):
            self._send_request(bye, peer)

    def on_failed(self, *, timeout: bool) -> None:
        """The INVITE transaction timed out (Timer B: 408) or could not be sent (503)."""
        if self.done:
            return
        self._finish()
        listener, self._listener = self._listener, None
        if listener is not None:
            if timeout:
                listener.on_refused(408, "Request Timeout")
            else:
                listener.on_refused(503, "Service Unavailable")
