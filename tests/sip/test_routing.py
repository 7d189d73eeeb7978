"""RFC 3261 18.2.1 / 18.2.2 and RFC 3581: received/rport stamping and response destinations."""

from __future__ import annotations

import pytest

from avatar_mf.sip.build import make_response
from avatar_mf.sip.headers import parse_via, parse_vias
from avatar_mf.sip.message import Headers, Request, split_header_list
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.routing import Destination, response_destination, stamp_received, top_via


def _request(*vias: str) -> Request:
    pairs = [("Via", v) for v in vias]
    pairs += [
        ("From", "<sip:ue@127.0.0.1>;tag=a"),
        ("To", "<sip:mf@127.0.0.1>"),
        ("Call-ID", "c1"),
        ("CSeq", "1 OPTIONS"),
        ("Max-Forwards", "70"),
    ]
    return Request("OPTIONS", "sip:mf@127.0.0.1", Headers.of(pairs))


UDP = Peer("udp", "127.0.0.9", 40000)


def test_same_host_without_rport_is_left_alone() -> None:
    req = _request("SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bK1")
    assert stamp_received(req, UDP) is req


def test_received_added_when_sent_by_differs_from_source() -> None:
    req = stamp_received(_request("SIP/2.0/UDP 127.0.0.5:5062;branch=z9hG4bK1"), UDP)
    top = parse_vias(req.headers)[0]
    assert top.received == "127.0.0.9"
    assert not top.has_rport


def test_host_name_sent_by_gets_received() -> None:
    req = stamp_received(_request("SIP/2.0/UDP ue.invalid:5062;branch=z9hG4bK1"), UDP)
    assert parse_vias(req.headers)[0].received == "127.0.0.9"


def test_empty_rport_is_filled_and_received_always_added() -> None:
    req = stamp_received(_request("SIP/2.0/UDP 127.0.0.9:5062;rport;branch=z9hG4bK1"), UDP)
    top = parse_vias(req.headers)[0]
    assert top.rport == 40000
    assert top.received == "127.0.0.9"


def test_only_the_top_via_is_touched() -> None:
    req = _request(
        "SIP/2.0/UDP 127.0.0.5:5062;branch=z9hG4bK1, SIP/2.0/UDP 127.0.0.6;branch=z9hG4bK0",
        "SIP/2.0/TCP 127.0.0.7;branch=z9hG4bKx",
    )
    vias = parse_vias(stamp_received(req, UDP).headers)
    assert [v.received for v in vias] == ["127.0.0.9", None, None]
    assert [v.host for v in vias] == ["127.0.0.5", "127.0.0.6", "127.0.0.7"]


def test_ipv6_source_is_written_without_brackets() -> None:
    peer = Peer("udp", "::1", 5999)
    req = stamp_received(_request("SIP/2.0/UDP [2001:db8::9]:5062;rport;branch=z9hG4bK1"), peer)
    top = parse_vias(req.headers)[0]
    assert top.received == "::1"
    assert top.rport == 5999


def test_udp_response_goes_to_received_and_rport() -> None:
    req = stamp_received(_request("SIP/2.0/UDP 127.0.0.5:5062;rport;branch=z9hG4bK1"), UDP)
    resp = make_response(req, 200)
    assert response_destination(resp, UDP) == Destination("127.0.0.9", 40000, None)


def test_udp_response_without_rport_goes_to_received_and_sent_by_port() -> None:
    req = stamp_received(_request("SIP/2.0/UDP 127.0.0.5:5062;branch=z9hG4bK1"), UDP)
    assert response_destination(make_response(req, 200), UDP) == Destination(
        "127.0.0.9", 5062, None
    )


def test_udp_response_defaults_to_port_5060() -> None:
    req = stamp_received(_request("SIP/2.0/UDP 127.0.0.9;branch=z9hG4bK1"), UDP)
    assert response_destination(make_response(req, 200), UDP) == Destination(
        "127.0.0.9", 5060, None
    )


def test_tcp_response_goes_back_on_the_incoming_connection() -> None:
    tcp = Peer("tcp", "127.0.0.9", 41000, connection_id=7)
    req = stamp_received(_request("SIP/2.0/TCP 127.0.0.5:5062;branch=z9hG4bK1"), tcp)
    assert response_destination(make_response(req, 200), tcp) == Destination("127.0.0.9", 41000, 7)


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bKp1;rport",
        "SIP/2.0/UDP 127.0.0.5:5062;rport;branch=z9hG4bKp2",
        "SIP / 2.0 / udp 127.0.0.5 : 5062 ; Branch = z9hG4bKp3 ; RPORT",
        "SIP/2.0/UDP 127.0.0.5;branch=z9hG4bKp4;received=192.0.2.1;ttl=1",
        'SIP/2.0/UDP ue.invalid;branch=z9hG4bKp5;x="a;b"',
        "SIP/2.0/UDP [2001:db8::5]:5062;rport=1;branch=z9hG4bKp6",
        "SIP/2.0/UDP 127.0.0.5;branch=z9hG4bKp7, SIP/2.0/UDP 127.0.0.6;branch=z9hG4bKp0",
    ],
)
def test_the_stamped_top_via_reads_back_as_a_fresh_parse(via: str) -> None:
    # The stamped value goes into parse_via's cache without being parsed: what the layers
    # above then read must be exactly what parsing the stamped text gives.
    req = stamp_received(_request(via), UDP)
    top_text = split_header_list(req.headers.get("Via") or "")[0]
    assert parse_via(top_text) == parse_via.__wrapped__(top_text)
    assert str(parse_via(top_text)) == top_text


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP 127.0.0.9:5062;branch=z9hG4bKs1;rport",
        "SIP/2.0/UDP 127.0.0.9:5062;rport;received=192.0.2.1;branch=z9hG4bKs2",
        "SIP/2.0/UDP 127.0.0.9;received=192.0.2.1;rport;received=192.0.2.2;rport;x",
        "SIP/2.0/UDP 127.0.0.9;rport=abc;branch=z9hG4bKs4",
        "SIP/2.0/UDP 127.0.0.5;branch=z9hG4bKs5",
        "SIP/2.0/UDP 127.0.0.5;received=192.0.2.1;branch=z9hG4bKs6;received=192.0.2.2",
        "SIP/2.0/UDP 127.0.0.5;rport=5;branch=z9hG4bKs7",
    ],
)
def test_stamping_sets_parameters_as_with_param_does(via: str) -> None:
    # RFC 3581 section 4: rport filled in place, received replaced in place or appended;
    # the stamp writes both in one pass, with Via.with_param's placement.
    top = parse_via(via)
    if top.has_rport and top.rport is None:
        expected = top.with_param("received", "127.0.0.9").with_param("rport", "40000")
    else:
        expected = top.with_param("received", "127.0.0.9")
    stamped = parse_vias(stamp_received(_request(via), UDP).headers)[0]
    assert stamped == expected


@pytest.mark.parametrize(
    "vias",
    [
        (),
        ("SIP/2.0/UDP 127.0.0.5:5062;branch=z9hG4bK1",),
        ("  SIP/2.0/UDP 127.0.0.5:5062;branch=z9hG4bK1  ", "SIP/2.0/TCP b.example;branch=z9hG4bK2"),
        ("SIP/2.0/UDP a.example;branch=z9hG4bK1 , SIP/2.0/UDP b.example;branch=z9hG4bK2",),
        (' , SIP/2.0/UDP a.example;branch=z9hG4bK1;x="q,uoted"', "SIP/2.0/UDP c.example"),
        ('SIP/2.0/UDP [::1]:5062;branch=z9hG4bK1;x="<a,b>", SIP/2.0/UDP d.example',),
        ("", "SIP/2.0/UDP e.example;branch=z9hG4bK3"),
        (" , ", "SIP/2.0/UDP f.example;branch=z9hG4bK4"),
    ],
)
def test_top_via_is_the_first_element_of_the_via_list(vias: tuple[str, ...]) -> None:
    """The response router reads only the top Via; the element it takes is the first one
    ``get_list`` gives, across blank lines, commas and quoted commas."""
    headers = _request(*vias).headers
    elements = headers.get_list("Via")
    assert top_via(headers) == (elements[0] if elements else None)
    if elements:
        response = make_response(_request(*vias), 200)
        assert top_via(response.headers) == elements[0]
