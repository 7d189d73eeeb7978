"""Structured header values (Via, CSeq, name-addr) and URIs (RFC 3261 19.1, 20, 25.1)."""

from __future__ import annotations

import pytest

from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.headers import (
    CSeq,
    NameAddr,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_name_addrs,
    parse_params,
    parse_via,
    parse_vias,
    quote_string,
    unquote_string,
)
from avatar_mf.sip.message import Headers
from avatar_mf.sip.uri import AbsoluteUri, SipUri, TelUri, parse_sip_uri, parse_uri

# --------------------------------------------------------------------------- Via


def test_via_basic() -> None:
    via = parse_via("SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds")
    assert via == Via("SIP/2.0", "UDP", "pc33.atlanta.com", None, (("branch", "z9hG4bK776asdhds"),))
    assert via.branch == "z9hG4bK776asdhds"
    assert via.sent_by == "pc33.atlanta.com"
    assert str(via) == "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"


def test_via_lws_everywhere() -> None:
    # RFC 4475 3.1.1.1 after unfolding.
    via = parse_via("SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239")
    assert (via.protocol, via.transport, via.host, via.port) == (
        "SIP/2.0",
        "UDP",
        "192.168.255.111",
        None,
    )
    assert via.branch == "z9hG4bK30239"
    assert parse_via("SIP/2.0/TCP host:5060 ; branch = z9hG4bKx").port == 5060
    assert parse_via("SIP/2.0/TCP host : 5070;branch=z9hG4bKx").port == 5070


def test_via_transport_upper_cased_and_unknown_kept() -> None:
    assert parse_via("SIP/2.0/tls h;branch=z9hG4bK1").transport == "TLS"
    assert parse_via("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKa").transport == "UNKNOWN"
    assert parse_via("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKa").transport == "WSS"


def test_via_ipv6() -> None:
    via = parse_via("SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bKx;received=2001:db8::9")
    assert via.host == "[2001:db8::10]"
    assert via.port == 5070
    assert via.sent_by == "[2001:db8::10]:5070"
    assert via.received == "2001:db8::9"
    assert str(via) == "SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bKx;received=2001:db8::9"
    assert parse_via("SIP/2.0/TCP [::1];branch=z9hG4bKy").port is None


def test_via_rport() -> None:
    bare = parse_via("SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKa")
    assert bare.has_rport and bare.rport is None
    filled = bare.with_param("rport", "4321").with_param("received", "192.0.2.9")
    assert filled.rport == 4321 and filled.has_rport
    # with_param replaces in place and appends new parameters at the end.
    assert str(filled) == "SIP/2.0/UDP 10.0.0.1:5060;rport=4321;branch=z9hG4bKa;received=192.0.2.9"
    assert parse_via("SIP/2.0/UDP h;branch=z9hG4bKa").has_rport is False


def test_via_param_names_lower_cased_order_kept() -> None:
    via = parse_via("SIP/2.0/UDP h;BRANCH=z9hG4bKa;TTL=3;maddr=224.0.0.1;x")
    assert via.params == (("branch", "z9hG4bKa"), ("ttl", "3"), ("maddr", "224.0.0.1"), ("x", None))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "SIP/2.0 UDP host",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP 192.0.2.15;;",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host:abc",
        "SIP/2.0/UDP [2001:db8::1",
        "SIP/2.0/UDP [zz]",
        "SIP/2.0/UDP host;branch=",
        'SIP/2.0/UDP host;branch="unterminated',
        "SIP/2.0/UDP ho st",
        "SIP/2.0/UDP host;=x",
    ],
)
def test_via_garbage_is_400(value: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_via(value)
    assert info.value.status == 400


def test_parse_vias_lines_and_lists_in_order() -> None:
    headers = Headers.of(
        [
            ("v", "SIP/2.0/TCP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com:5060"),
            ("Via", "SIP/2.0/TLS c.example.com;branch=z9hG4bK3"),
            ("From", "<sip:x@y>"),
            ("VIA", "SIP/2.0/UDP [2001:db8::1]"),
        ]
    )
    vias = parse_vias(headers)
    assert [v.host for v in vias] == [
        "a.example.com",
        "b.example.com",
        "c.example.com",
        "[2001:db8::1]",
    ]
    assert [v.transport for v in vias] == ["TCP", "UDP", "TLS", "UDP"]


def test_via_quoted_param_value_with_semicolon() -> None:
    via = parse_via('SIP/2.0/UDP h;branch=z9hG4bK1;x="a;b"')
    assert via.params[-1] == ("x", '"a;b"')


# --------------------------------------------------------------------------- CSeq


def test_cseq() -> None:
    assert parse_cseq("314159 INVITE") == CSeq(314159, "INVITE")
    assert parse_cseq("0009   INVITE") == CSeq(9, "INVITE")  # RFC 4475 3.1.1.1
    assert parse_cseq("0 ACK").seq == 0
    assert parse_cseq(f"{2**31 - 1} BYE").seq == 2**31 - 1
    assert str(CSeq(7, "BYE")) == "7 BYE"
    assert parse_cseq("1 !interesting-Method0123456789_*+`.%indeed'~").method.startswith("!")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "INVITE",
        "1",
        "1INVITE",
        "-1 INVITE",
        "x INVITE",
        f"{2**31} INVITE",
        "36893488147419103232 REGISTER",  # RFC 4475 3.1.2.4
        "1 INV ITE",
        "1 <INVITE>",
        "١ INVITE",  # non-ASCII digit
    ],
)
def test_cseq_bad_is_400(value: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_cseq(value)
    assert info.value.status == 400


# --------------------------------------------------------------------------- name-addr


def test_name_addr_forms() -> None:
    assert parse_name_addr("<sip:a@b>") == NameAddr(None, "sip:a@b", ())
    assert parse_name_addr("Bob <sip:bob@biloxi.com>;tag=a6c85cf") == NameAddr(
        "Bob", "sip:bob@biloxi.com", (("tag", "a6c85cf"),)
    )
    assert (
        parse_name_addr('"A. G. Bell" <sip:agb@bell-telephone.com> ;tag=a48s').display
        == "A. G. Bell"
    )
    assert parse_name_addr("caller<sip:caller@example.com>;tag=323").display == "caller"  # 3.1.1.6
    multi = parse_name_addr("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>")
    assert multi.display == "token1~` token2'+_ token3*%!.-"


def test_addr_spec_params_belong_to_header() -> None:
    # RFC 3261 20.10: without <>, ";tag" and friends are header parameters.
    addr = parse_name_addr("sip:+12125551212@server.phone2net.com;tag=887s")
    assert addr.uri == "sip:+12125551212@server.phone2net.com"
    assert addr.tag == "887s"
    assert str(addr) == "<sip:+12125551212@server.phone2net.com>;tag=887s"
    inside = parse_name_addr("<sip:+1@gw.example.net;user=phone>;tag=1")
    assert inside.uri == "sip:+1@gw.example.net;user=phone" and inside.params == (("tag", "1"),)


def test_quoted_display_with_escapes() -> None:
    addr = parse_name_addr(r'"J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8')
    assert addr.display == 'J Rosenberg \\"'
    assert addr.tag == "98asjd8"
    again = parse_name_addr(str(addr))
    assert again == addr
    nul = parse_name_addr('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:x@example.com>')
    assert nul.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert unquote_string(quote_string('a"b\\c')) == 'a"b\\c'


def test_contact_star_and_params() -> None:
    star = parse_name_addr("*")
    assert star.uri == "*" and str(star) == "*"
    assert parse_name_addr("* ;expires=0").params == (("expires", "0"),)
    # "*" is also a token, so a display name (RFC 3261 25.1): only a bare "*" is the wildcard
    # (Hypothesis found "* <sip:[2001:db8::10]>" refused as a bad Contact).
    named = parse_name_addr("* <sip:[2001:db8::10]>")
    assert (named.display, named.uri) == ("*", "sip:[2001:db8::10]")
    assert parse_name_addr("*a <sip:x@example.com>").display == "*a"
    assert parse_name_addr(str(named)) == named
    contact = parse_name_addr(
        '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ;'
        "  secondparam ; q = 0.33"
    )
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    ims = parse_name_addr(
        '<sip:[2001:db8::1]:5060>;+sip.instance="<urn:gsma:imei:3500-00-0>";expires=600'
    )
    assert ims.uri == "sip:[2001:db8::1]:5060"
    assert ims.params[0] == ("+sip.instance", '"<urn:gsma:imei:3500-00-0>"')


def test_with_tag() -> None:
    addr = parse_name_addr("<sip:a@b>;x=1")
    tagged = addr.with_tag("abc")
    assert tagged.tag == "abc" and str(tagged) == "<sip:a@b>;x=1;tag=abc"
    assert tagged.with_tag("def").params == (("x", "1"), ("tag", "def"))
    display = NameAddr("Watson, Thomas", "sip:t@example.org").with_tag("1")
    assert str(display) == '"Watson, Thomas" <sip:t@example.org>;tag=1'


def test_other_schemes_in_name_addr() -> None:
    assert parse_name_addr("isbn:2983792873").uri == "isbn:2983792873"  # RFC 4475 3.3.4
    assert parse_name_addr("<http://www.example.com>;tag=3234233").tag == "3234233"
    assert parse_name_addr("<tel:+1-201-555-0123>").uri == "tel:+1-201-555-0123"


@pytest.mark.parametrize(
    "value",
    [
        "",
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 3.1.2.6
        '"Watson, Thomas" < sip:t.watson@example.org >',  # RFC 4475 3.1.2.14
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # RFC 4475 3.1.2.15
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 3.1.2.13
        '"Joe" <sip:joe@example.org>;;;;',  # RFC 4475 3.1.2.1
        "<sip:a@b",
        "<nocolon>",
        "<sip:a@b> junk",
        "just words",
        '"x" sip:a@b',
        "* junk",
    ],
)
def test_name_addr_garbage_is_400(value: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_name_addr(value)
    assert info.value.status == 400


def test_parse_name_addrs_contact_list() -> None:
    headers = Headers.of(
        [
            ("m", '<sip:a@h1>;q=0.5, "Comma, Inside" <sip:b@h2>'),
            ("Contact", "sip:c@h3;expires=60"),
        ]
    )
    contacts = parse_name_addrs(headers, "Contact")
    assert [c.uri for c in contacts] == ["sip:a@h1", "sip:b@h2", "sip:c@h3"]
    assert contacts[1].display == "Comma, Inside"


def test_parse_params_values() -> None:
    assert parse_params('a=1;b;c="x y"') == (("a", "1"), ("b", None), ("c", '"x y"'))
    with pytest.raises(SipParseError):
        parse_params("a=1 2")


# --------------------------------------------------------------------------- URIs


def test_sip_uri_full() -> None:
    uri = parse_uri("sips:alice:secret@[2001:db8::10]:5070;transport=TCP;lr?Subject=hi%20there&x=1")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "alice",
        "secret",
        "[2001:db8::10]",
        5070,
    )
    assert uri.params == (("transport", "TCP"), ("lr", None))
    assert uri.transport == "tcp" and uri.has_param("LR")
    assert uri.headers == (("Subject", "hi there"), ("x", "1"))
    assert parse_uri(str(uri)) == uri


def test_sip_uri_escapes_rfc4475() -> None:
    esc01 = parse_sip_uri("sip:sips%3Auser%40example.com@example.net")  # 3.1.1.3
    assert esc01.user == "sips:user@example.com" and esc01.host == "example.net"
    contact = parse_sip_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert contact.user == "caller"
    assert contact.params == (("lr", None), ("name", "value%41"))
    assert parse_sip_uri("sip:null-%00-null@example.com").user == "null-\x00-null"  # 3.1.1.4
    semi = parse_sip_uri("sip:user;par=u%40example.net@example.com")  # 3.1.1.9
    assert semi.user == "user;par=u@example.net" and semi.host == "example.com"
    assert str(semi) == "sip:user;par=u%40example.net@example.com"


def test_sip_uri_unusual_characters_rfc4475_intmeth() -> None:
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com"
    )
    uri = parse_sip_uri(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com" and uri.params == () and uri.headers == ()
    assert str(uri) == text


def test_tel_and_other_schemes() -> None:
    tel = parse_uri("tel:+1-201-555-0123;Phone-Context=example.com")
    assert isinstance(tel, TelUri) and tel.is_global
    assert tel.params == (("phone-context", "example.com"),)
    assert str(tel) == "tel:+1-201-555-0123;phone-context=example.com"
    other = parse_uri("soap.beep://192.0.2.103:3002")
    assert other == AbsoluteUri("soap.beep", "//192.0.2.103:3002")


def test_parse_sip_uri_refuses_other_schemes_with_416() -> None:
    for text in ("tel:+15551234", "nobodyKnowsThisScheme:totallyopaquecontent", "http://x"):
        with pytest.raises(SipError) as info:
            parse_sip_uri(text)
        assert info.value.status == 416
        assert not isinstance(info.value, SipParseError)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "sip:@host",
        "sip:user@",
        "sip:us er@host",
        "sip:user@host:port",
        "sip:user@host;",
        "sip:user@host;=1",
        "sip:user@host;a=",
        "sip:user@host?x",
        "sip:user%4@host",
        "sip:user%zz@host",
        "sip:user@[::1",
        "<sip:user@host>",
        "1sip:a@b",
        "tel:",
    ],
)
def test_bad_uris_are_400(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.status == 400


def test_uri_parses_are_cached_and_errors_are_not() -> None:
    # The Request-URIs a node sees repeat (its own address, the Contacts it hands out).
    text = "sip:avatar@127.0.0.1:5060;transport=udp"
    assert parse_uri(text) is parse_uri(text)
    assert parse_sip_uri(text) is parse_sip_uri(text)
    assert parse_uri(text) == parse_uri.__wrapped__(text)
    for _ in range(2):
        with pytest.raises(SipError):
            parse_sip_uri("tel:+15551234")
        with pytest.raises(SipParseError):
            parse_uri("sip:a b@example.org")
