"""The MF's own INVITE, pure parts (``ua/uac_invite.py``): RFC 3261 8.1.1, 9.1, 12.1.2,
13.2.2.4 and RFC 4028 7.2 from the MF's side."""

from __future__ import annotations

import pytest

from avatar_mf.sip.build import make_response
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.headers import parse_cseq, parse_name_addr
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.session_timer import SessionTimer
from avatar_mf.ua.uac_invite import (
    InviteSpec,
    build_ack,
    build_cancel,
    build_invite,
    hop_peer,
    leg_timer,
    uac_dialog,
)

SPEC = InviteSpec(
    request_uri="sip:bob@ims.example.net",
    from_uri="sip:alice@ims.example.net",
    to_uri="sip:bob@ims.example.net",
    from_tag="mftag",
    call_id="leg2@10.0.0.2",
    cseq=41,
    contact="<sip:mf@10.0.0.2:5060;transport=udp>",
    route="<sip:10.0.0.9;lr>",
    max_forwards=69,
    session_expires=1800,
    min_se=90,
)
VIA = "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKinvite;rport"


def invite_and_ok(record_route: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    invite = build_invite(SPEC, VIA, b"v=0\r\n")
    headers = [("Contact", "<sip:bob@10.0.0.7:5062>"), *(("Record-Route", r) for r in record_route)]
    ok = make_response(invite, 200, to_tag="bobtag", headers=headers)
    return invite, ok


def test_invite_headers() -> None:
    invite, _ = invite_and_ok()
    h = invite.headers
    assert invite.uri == SPEC.request_uri
    assert h.get("Route") == "<sip:10.0.0.9;lr>" and h.get("Max-Forwards") == "69"
    assert parse_name_addr(h.get("From") or "").tag == "mftag"
    assert parse_name_addr(h.get("To") or "").tag is None
    assert h.get("Session-Expires") == "1800" and h.get("Min-SE") == "90"
    assert h.get("Content-Type") == "application/sdp"


def test_dialog_from_the_2xx_reverses_the_record_route() -> None:
    """12.1.2: route set = Record-Route of the 2xx in reverse; target = its Contact."""
    invite, ok = invite_and_ok(("<sip:p2;lr>", "<sip:p1;lr>"))
    dialog = uac_dialog(invite, ok)
    assert dialog.route_set == ("<sip:p1;lr>", "<sip:p2;lr>")
    assert dialog.remote_target == "sip:bob@10.0.0.7:5062"
    assert (dialog.local_tag, dialog.remote_tag, dialog.local_seq) == ("mftag", "bobtag", 41)
    assert dialog.first_hop() == "sip:p1;lr"


def test_2xx_without_contact_is_unusable() -> None:
    invite, ok = invite_and_ok()
    with pytest.raises(SipError):
        uac_dialog(invite, ok.with_headers(ok.headers.remove("Contact")))


def test_ack_keeps_the_invite_cseq_number_and_follows_the_route() -> None:
    invite, ok = invite_and_ok(("<sip:p1;lr>",))
    ack = build_ack(invite, uac_dialog(invite, ok), "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKack")
    assert ack.method == "ACK" and ack.uri == "sip:bob@10.0.0.7:5062"
    assert parse_cseq(ack.headers.get("CSeq") or "").seq == 41
    assert ack.headers.get("Route") == "<sip:p1;lr>"
    assert parse_name_addr(ack.headers.get("To") or "").tag == "bobtag"
    assert ack.body == b""


def test_cancel_copies_what_9_1_says() -> None:
    invite, _ = invite_and_ok()
    cancel = build_cancel(invite)
    for name in ("Via", "Route", "From", "To", "Call-ID"):
        assert cancel.headers.get(name) == invite.headers.get(name)
    assert cancel.headers.get("CSeq") == "41 CANCEL" and cancel.uri == invite.uri
    assert cancel.headers.get("Content-Type") is None and cancel.body == b""


@pytest.mark.parametrize(
    ("value", "timer"),
    [
        (None, SessionTimer()),
        ("1800;refresher=uac", SessionTimer(1800, "uas")),  # the MF (UAC) refreshes
        ("900;refresher=uas", SessionTimer(900, "uac")),  # UE2 refreshes, the MF watches
        ("600", SessionTimer(600, "uas")),  # no refresher: the UAC, the MF
        ("bad", SessionTimer()),
    ],
)
def test_leg_timer_from_the_mfs_side(value: str | None, timer: SessionTimer) -> None:
    _, ok = invite_and_ok()
    if value is not None:
        ok = ok.with_headers(ok.headers.add("Session-Expires", value))
    assert leg_timer(ok) == timer


def test_hop_peer() -> None:
    assert hop_peer("sip:10.0.0.9;lr") == Peer("udp", "10.0.0.9", 5060)
    assert hop_peer("sip:kam:5070;transport=TCP;lr") == Peer("tcp", "kam", 5070)
    with pytest.raises(SipError):
        hop_peer("tel:+123")
