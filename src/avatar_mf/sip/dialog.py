"""Dialogs, UAS side (RFC 3261 section 12), sans-IO.

- 12.1.1: a dialog is created from a request and the 2xx the UAS answers it with: route set from
  Record-Route (in order), remote target from Contact (from the From URI for an RFC 2543
  INVITE without Contact, RFC 4475 3.4.1), remote sequence number from CSeq, local
  tag chosen by the UAS, remote tag from From.
- 12.2.1.1: requests the MF sends inside the dialog (BYE on session expiry or drop): Request-URI
  and Route built from the remote target and route set (loose routing only; a strict-routing
  first hop is handled by putting the remote target last, as 12.2.1.1 says).
- 12.2.2: requests received inside the dialog: CSeq lower than or equal to the last one seen is
  answered 500 (RFC 3261 12.2.2), target-refresh requests (re-INVITE, UPDATE) replace the remote
  target.

The dialog id is ``(Call-ID, local tag, remote tag)``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from avatar_mf.sip.build import MAGIC_COOKIE
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.headers import NameAddr, parse_cseq, parse_name_addr, parse_via
from avatar_mf.sip.message import Headers, Request, split_header_list

DialogId = tuple[str, str, str]

#: Methods that refresh the remote target (RFC 3261 12.2, RFC 3311 5.2).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE"})


def dialog_id_of(request: Request) -> DialogId | None:
    """The UAS-side dialog id a request belongs to, or None when it has no To tag."""
    call_id = request.headers.get("Call-ID")
    to = request.headers.get("To")
    frm = request.headers.get("From")
    if call_id is None or to is None or frm is None:
        return None
    local_tag = parse_name_addr(to).tag
    if not local_tag:
        return None
    return (call_id, local_tag, parse_name_addr(frm).tag or "")


def _contact_uri(request: Request) -> str | None:
    contacts = request.headers.get_list("Contact")
    if not contacts:
        return None
    return parse_name_addr(contacts[0]).uri


def _tag_param(tag: str) -> tuple[tuple[str, str | None], ...]:
    return (("tag", tag),) if tag else ()


def _rfc2543(request: Request) -> bool:
    """The request comes from an RFC 2543 element: its top Via branch lacks the magic cookie."""
    vias = request.headers.get_list("Via")
    if not vias:
        return False
    branch = parse_via(vias[0]).branch
    return branch is None or not branch.startswith(MAGIC_COOKIE)


@dataclass(frozen=True, slots=True)
class Dialog:
    """The state of one UAS dialog. Immutable: every change returns a new Dialog."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: tuple[str, ...]
    remote_seq: int
    local_seq: int
    secure: bool = False

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_request(cls, request: Request, local_tag: str) -> Dialog:
        """Create the dialog for a dialog-creating request answered by this UAS (12.1.1)."""
        call_id = request.headers.get("Call-ID")
        frm = request.headers.get("From")
        to = request.headers.get("To")
        cseq = request.headers.get("CSeq")
        if call_id is None or frm is None or to is None or cseq is None:
            raise SipError(400, "Missing dialog headers")
        remote = parse_name_addr(frm)
        target = _contact_uri(request)
        if target is None:
            if not _rfc2543(request):
                # RFC 3261 8.1.1.8: Contact is mandatory in a dialog-creating INVITE.
                raise SipError(400, "Missing Contact")
            # RFC 4475 3.4.1: an RFC 2543 UAC (no magic cookie in its Via branch) may omit
            # Contact; its From URI is where in-dialog requests go, as RFC 2543 had it.
            target = remote.uri
        return cls(
            call_id=call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local_uri=parse_name_addr(to).uri,
            remote_uri=remote.uri,
            remote_target=target,
            route_set=tuple(request.headers.get_list("Record-Route")),
            remote_seq=parse_cseq(cseq).seq,
            # 8.1.1.5: the local sequence starts at a random value below 2**31.
            local_seq=secrets.randbelow(2**30) + 1,
            secure=request.uri.lower().startswith("sips:"),
        )

    def receive(self, request: Request) -> Dialog:
        """Account for a request received in this dialog (12.2.2).

        Raises SipError(500) for an out-of-order CSeq. ACK and CANCEL carry the CSeq of the
        request they belong to and do not move the remote sequence.
        """
        cseq_value = request.headers.get("CSeq")
        if cseq_value is None:
            raise SipError(400, "Missing CSeq")
        cseq = parse_cseq(cseq_value)
        if request.method in ("ACK", "CANCEL"):
            return self
        if cseq.seq <= self.remote_seq:
            raise SipError(500, "CSeq out of order", headers=(("Retry-After", "1"),))
        updated = replace(self, remote_seq=cseq.seq)
        if request.method in TARGET_REFRESH_METHODS:
            target = _contact_uri(request)
            if target is not None:
                updated = replace(updated, remote_target=target)
        return updated

    def next_request(
        self, method: str, *, contact: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> tuple[Dialog, Request]:
        """Build a request inside the dialog (12.2.1.1); Via is added by the sender."""
        seq = self.local_seq + 1
        routes = list(self.route_set)
        uri = self.remote_target
        if routes and ";lr" not in parse_name_addr(routes[0]).uri.lower():
            # Strict routing: the first route becomes the Request-URI (12.2.1.1).
            uri = parse_name_addr(routes[0]).uri
            routes = [*routes[1:], f"<{self.remote_target}>"]
        pairs: list[tuple[str, str]] = [
            ("Max-Forwards", "70"),
            ("From", str(NameAddr(None, self.local_uri, (("tag", self.local_tag),)))),
            # An RFC 2543 peer's From had no tag: then its To gets none either.
            ("To", str(NameAddr(None, self.remote_uri, _tag_param(self.remote_tag)))),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} {method}"),
            ("Contact", contact),
        ]
        pairs.extend(("Route", r) for r in routes)
        pairs.extend(headers)
        return replace(self, local_seq=seq), Request(method, uri, Headers.of(pairs))

    def first_hop(self) -> str:
        """The URI the next in-dialog request is sent to: the first route, else the target."""
        if self.route_set:
            return parse_name_addr(split_header_list(self.route_set[0])[0]).uri
        return self.remote_target
