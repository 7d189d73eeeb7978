"""RFC 3261 section 12 at the UAS: dialog creation, in-dialog requests, CSeq ordering."""

from __future__ import annotations

import pytest

from avatar_mf.sip.dialog import Dialog, dialog_id_of
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.headers import parse_cseq, parse_name_addr
from avatar_mf.sip.message import Headers, Request


def _invite(*extra: tuple[str, str], cseq: int = 10) -> Request:
    pairs = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1"),
        ("From", '"UE" <sip:ue@127.0.0.1>;tag=ue-tag'),
        ("To", "<sip:mf@127.0.0.1>"),
        ("Call-ID", "call-1"),
        ("CSeq", f"{cseq} INVITE"),
        ("Contact", "<sip:ue@127.0.0.1:5090;transport=udp>"),
        ("Max-Forwards", "70"),
        *extra,
    ]
    return Request("INVITE", "sip:mf@127.0.0.1", Headers.of(pairs))


def _in_dialog(method: str, cseq: int, *extra: tuple[str, str]) -> Request:
    pairs = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK2"),
        ("From", "<sip:ue@127.0.0.1>;tag=ue-tag"),
        ("To", "<sip:mf@127.0.0.1>;tag=mf-tag"),
        ("Call-ID", "call-1"),
        ("CSeq", f"{cseq} {method}"),
        *extra,
    ]
    return Request(method, "sip:mf@127.0.0.1", Headers.of(pairs))


def test_dialog_from_invite() -> None:
    rr = ("Record-Route", "<sip:p1.invalid;lr>, <sip:p2.invalid;lr>")
    d = Dialog.from_request(_invite(rr), "mf-tag")
    assert d.id == ("call-1", "mf-tag", "ue-tag")
    assert d.remote_target == "sip:ue@127.0.0.1:5090;transport=udp"
    assert d.route_set == ("<sip:p1.invalid;lr>", "<sip:p2.invalid;lr>")
    assert d.remote_seq == 10
    assert d.remote_uri == "sip:ue@127.0.0.1"
    assert 0 < d.local_seq < 2**31


def test_invite_without_contact_is_400() -> None:
    req = _invite()
    req = req.with_headers(req.headers.remove("Contact"))
    with pytest.raises(SipError) as err:
        Dialog.from_request(req, "t")
    assert err.value.status == 400


def test_dialog_id_of_in_dialog_request() -> None:
    assert dialog_id_of(_in_dialog("BYE", 11)) == ("call-1", "mf-tag", "ue-tag")
    assert dialog_id_of(_invite()) is None


def test_cseq_must_grow() -> None:
    d = Dialog.from_request(_invite(), "mf-tag")
    d2 = d.receive(_in_dialog("UPDATE", 11))
    assert d2.remote_seq == 11
    for stale in (11, 10, 3):
        with pytest.raises(SipError) as err:
            d2.receive(_in_dialog("BYE", stale))
        assert err.value.status == 500


def test_ack_and_cancel_do_not_move_the_sequence() -> None:
    d = Dialog.from_request(_invite(), "mf-tag")
    assert d.receive(_in_dialog("ACK", 10)) is d


def test_target_refresh_replaces_remote_target() -> None:
    d = Dialog.from_request(_invite(), "mf-tag")
    new_contact = ("Contact", "<sip:ue@127.0.0.2:6000>")
    assert d.receive(_in_dialog("INVITE", 11, new_contact)).remote_target == "sip:ue@127.0.0.2:6000"
    # BYE is not a target refresh request.
    assert d.receive(_in_dialog("BYE", 11, new_contact)).remote_target == d.remote_target


def test_bye_from_the_uas_loose_routing() -> None:
    rr = ("Record-Route", "<sip:p1.invalid;lr>, <sip:p2.invalid;lr>")
    d = Dialog.from_request(_invite(rr), "mf-tag")
    d2, bye = d.next_request("BYE", contact="<sip:mf@127.0.0.1>")
    assert bye.uri == d.remote_target
    assert bye.headers.get_list("Route") == ["<sip:p1.invalid;lr>", "<sip:p2.invalid;lr>"]
    assert parse_name_addr(bye.headers.get("From") or "").tag == "mf-tag"
    assert parse_name_addr(bye.headers.get("To") or "").tag == "ue-tag"
    assert parse_cseq(bye.headers.get("CSeq") or "").seq == d.local_seq + 1
    assert d2.local_seq == d.local_seq + 1
    assert d2.first_hop() == "sip:p1.invalid;lr"


def test_bye_with_strict_route_puts_target_last() -> None:
    d = Dialog.from_request(_invite(("Record-Route", "<sip:strict.invalid>")), "mf-tag")
    _, bye = d.next_request("BYE", contact="<sip:mf@127.0.0.1>")
    assert bye.uri == "sip:strict.invalid"
    assert bye.headers.get_list("Route") == [f"<{d.remote_target}>"]


def test_first_hop_without_routes_is_the_target() -> None:
    d = Dialog.from_request(_invite(), "mf-tag")
    assert d.first_hop() == d.remote_target
