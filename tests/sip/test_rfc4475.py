"""RFC 4475 torture messages: every message of sections 3.1-3.4, byte for byte.

The ``rfc4475/*.dat`` files are the messages of RFC 4475 Appendix A (names as in the RFC). The
13 valid messages of section 3.1.1 are checked against the SHA-256 of the decoded archive. All
49 messages of the archive are covered (its 50th member, ``test.dat``, is described nowhere in
the RFC and has no expectation).

Each message goes through what a UAS does with a datagram: :func:`parse_message`, then, for a
request, :func:`validate_request`; the first :class:`SipError` is the answer. Where RFC 4475 lets
an element choose, the choice is written next to the message in ``EXPECTED``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from avatar_mf.sip.build import response_for_error
from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.headers import parse_name_addr, parse_name_addrs, parse_vias
from avatar_mf.sip.message import Request, Response, serialize
from avatar_mf.sip.parser import StreamFramer, parse_message
from avatar_mf.sip.uri import SipUri, parse_sip_uri, parse_uri
from avatar_mf.sip.validate import validate_request

DATA = Path(__file__).parent / "rfc4475"

#: The methods the Media Function serves; used where RFC 4475 expects 501/405.
SERVED = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "PRACK", "INFO"})

OK = "accepted"
DISCARD = "discarded"  # a malformed response: never answered (RFC 3261 18.1.2)

#: name -> (RFC 4475 section, expected outcome with default validation)
EXPECTED: dict[str, tuple[str, int | str]] = {
    # 3.1.1 Valid messages: all parse and validate.
    "wsinv": ("3.1.1.1", OK),
    "intmeth": ("3.1.1.2", OK),  # unknown method: 501 once methods are checked (below)
    "esc01": ("3.1.1.3", OK),
    "escnull": ("3.1.1.4", OK),
    "esc02": ("3.1.1.5", OK),  # RE%47IST%45R is an unknown method, not REGISTER
    "lwsdisp": ("3.1.1.6", OK),
    "longreq": ("3.1.1.7", OK),
    "dblreq": ("3.1.1.8", OK),
    "semiuri": ("3.1.1.9", OK),
    "transports": ("3.1.1.10", OK),
    "mpart01": ("3.1.1.11", OK),
    "unreason": ("3.1.1.12", OK),
    "noreason": ("3.1.1.13", OK),
    # 3.1.2 Invalid messages.
    "badinv01": ("3.1.2.1", 400),
    "clerr": ("3.1.2.2", 400),  # over a datagram; on a stream it would wait for more
    "ncl": ("3.1.2.3", 400),
    "scalar02": ("3.1.2.4", 400),  # the CSeq decides; Max-Forwards 300 alone would too (choice)
    "scalarlg": ("3.1.2.5", DISCARD),
    "quotbal": ("3.1.2.6", 400),
    "ltgtruri": ("3.1.2.7", 400),
    "lwsruri": ("3.1.2.8", 400),
    "lwsstart": ("3.1.2.9", 400),  # choice: strict Request-Line (liberal parsing is optional)
    "trws": ("3.1.2.10", 400),  # choice: strict Request-Line
    "escruri": ("3.1.2.11", 400),  # choice: reject rather than ignore the escaped headers
    "baddate": ("3.1.2.12", OK),  # choice: the Date header is not used, so not judged
    "regbadct": ("3.1.2.13", 400),
    "badaspec": ("3.1.2.14", 400),  # choice: no liberal stripping of the spaces
    "baddn": ("3.1.2.15", 400),
    "badvers": ("3.1.2.16", 505),
    "mismatch01": ("3.1.2.17", 400),
    "mismatch02": ("3.1.2.18", 400),  # 501 once methods are checked (below), as preferred
    "bigcode": ("3.1.2.19", DISCARD),
    # 3.2 Transaction layer semantics.
    "badbranch": ("3.2.1", OK),  # branch "z9hG4bK" alone: the transaction layer's business
    # 3.3 Application layer semantics.
    "insuf": ("3.3.1", 400),
    "unkscm": ("3.3.2", 416),
    "novelsc": ("3.3.3", 416),
    "unksm2": ("3.3.4", OK),  # syntactically valid; a registrar would 400, this UAS 405s REGISTER
    "bext01": ("3.3.5", 420),
    "invut": ("3.3.6", 415),
    "regaut01": ("3.3.7", OK),  # unknown Authorization scheme: for the authenticating layer
    "multi01": ("3.3.8", 400),
    "mcl01": ("3.3.9", 400),
    "bcast": ("3.3.10", OK),  # a response; where to (not) send it is the transport's business
    "zeromf": ("3.3.11", OK),  # choice: a UAS answers OPTIONS with Max-Forwards 0 itself
    "cparam01": ("3.3.12", OK),
    "cparam02": ("3.3.13", OK),
    "regescrt": ("3.3.14", OK),
    "sdp01": ("3.3.15", 406),  # choice: 406 (400 also allowed)
    # 3.4 Backward compatibility.
    "inv2543": ("3.4.1", OK),
}

#: Answers that copy the request's own broken To/From/Call-ID/CSeq (RFC 3261 8.2.6.2 says copy),
#: so our strict parser would refuse them on the way back.
ANSWERS_COPY_BROKEN_HEADERS = frozenset({"insuf", "scalar02"})

#: SHA-256 of the RFC 4475 archive members for the 13 valid messages (RFC 4475 Appendix A).
VALID_SHA256 = {
    "wsinv": "d6f6cdee99cd0a1f8e3d9a0fdd67c877700e19ab86d8186dada06f61260e3e61",
    "intmeth": "b957a8292c1c0a9851fe94705b90f94320738f43aacde64998e401f742ef688d",
    "esc01": "be3a316d4ce5f69cad474646191e390dd4b50fc8371e44b5197fe1237781973e",
    "escnull": "263fe2ecd12a5ccbb6c67b3174e9211d11da9b600e7d69666a86d2ee42873e90",
    "esc02": "9a9c59449f00327b02071feafc8e5c2a261c98c818044167894cc17809a12199",
    "lwsdisp": "d1b36b6316c12824f6f04bf6b1fd1f021cade9b74871693b9c3474cd9fa7f4e6",
    "longreq": "185739292bc676760e5b1cca77c87705aa570240171c506ad76f8c35af0ecdaa",
    "dblreq": "a6be48426565c2a705389c4ce2ea17e57b891cb13f80490a2cb9392c797b46ef",
    "semiuri": "87bbaed6b4b354dbd3c5c7a20e66686303c63e43a0aa19b89de1ac75231611a2",
    "transports": "33b4553a3b9418121b099ff07882535151edd6a1e81898c63a916aad2cbf90bc",
    "mpart01": "92147c8e24997bac59629e1b163767697d0d6d499af87f89e325d69968bec3ba",
    "unreason": "4f939d6ebf4817eea70f011d3209e83732872ffc20ffd304b244084dc392f4d7",
    "noreason": "07e11e470a69fffa3674de805e5165d1351a9439a91045ee70c9570ea24ab4fe",
}


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def outcome(data: bytes, **kwargs: object) -> tuple[int | str, SipError | None, Request | None]:
    """What a UAS does with the datagram: (status or OK/DISCARD, error, request answered)."""
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        if exc.partial is None:
            return DISCARD, exc, None
        return exc.status, exc, exc.partial
    if isinstance(msg, Response):
        return OK, None, None
    try:
        validate_request(msg, supported=frozenset({"timer"}), **kwargs)  # type: ignore[arg-type]
    except SipError as exc:
        return exc.status, exc, msg
    return OK, None, msg


def test_every_archive_message_is_present() -> None:
    on_disk = {p.stem for p in DATA.glob("*.dat")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) == 49


@pytest.mark.parametrize("name", sorted(VALID_SHA256))
def test_valid_messages_are_byte_exact(name: str) -> None:
    assert hashlib.sha256(load(name)).hexdigest() == VALID_SHA256[name]


@pytest.mark.parametrize("name", list(EXPECTED), ids=[f"{EXPECTED[n][0]}-{n}" for n in EXPECTED])
def test_expected_outcome(name: str) -> None:
    _, expected = EXPECTED[name]
    status, err, answered = outcome(load(name))
    assert status == expected, err
    if isinstance(expected, int):
        # The answer can be built, written and read back.
        assert answered is not None and err is not None
        resp = response_for_error(answered, err, to_tag="t4475")
        wire = serialize(resp)
        assert wire.startswith(f"SIP/2.0 {expected} ".encode())
        assert resp.headers.get_all("Via") == answered.headers.get_all("Via")
        if name not in ANSWERS_COPY_BROKEN_HEADERS:
            back = parse_message(wire)
            assert isinstance(back, Response) and back == resp.with_headers(
                resp.headers.add("Content-Length", "0")
            )


def test_parsing_never_raises_anything_else_over_a_stream() -> None:
    # Over TCP the same bytes frame into messages or errors, never exceptions.
    for name in EXPECTED:
        framer = StreamFramer()
        framer.feed(load(name))


@pytest.mark.parametrize(
    ("name", "status"), [("intmeth", 501), ("esc02", 501), ("mismatch02", 501)]
)
def test_unknown_methods_get_501_with_allow(name: str, status: int) -> None:
    got, err, _ = outcome(load(name), allowed_methods=SERVED)
    assert got == status and err is not None
    assert err.headers[0][0] == "Allow"


@pytest.mark.parametrize("name", ["unksm2", "regaut01", "cparam01", "cparam02", "regescrt"])
def test_register_is_405_for_this_uas(name: str) -> None:
    got, _, _ = outcome(load(name), allowed_methods=SERVED)
    assert got == 405


# --------------------------------------------------------------------------- details


def request(name: str) -> Request:
    msg = parse_message(load(name))
    assert isinstance(msg, Request)
    return msg


def test_wsinv_details() -> None:
    msg = request("wsinv")
    h = msg.headers
    assert msg.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert h.get("Max-Forwards") == "0068"
    assert h.get("CSeq") == "0009 INVITE"
    assert h.get("Subject") == ""
    assert h.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert h.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    to = parse_name_addr(h.get("To") or "")
    assert to.uri == "sip:vivekg@chair-dnrc.example.com" and to.tag == "1918181833n"
    frm = parse_name_addr(h.get("From") or "")
    assert frm.display == 'J Rosenberg \\"' and frm.tag == "98asjd8"
    vias = parse_vias(h)
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    (contact,) = parse_name_addrs(h, "Contact")
    assert contact.display == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert len(msg.body) == 150


def test_intmeth_details() -> None:
    msg = request("intmeth")
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    to = parse_name_addr(msg.headers.get("To") or "")
    assert to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    frm = parse_name_addr(msg.headers.get("From") or "")
    assert frm.display == "token1~` token2'+_ token3*%!.-"
    assert frm.params[0] == ("fromparam''~+*_!.-%", '"работающий"')
    assert frm.tag == "_token~1'+`*%!-."
    assert msg.headers.get("Call-ID") == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escnull_semiuri_uris() -> None:
    esc01 = request("esc01")
    assert parse_sip_uri(esc01.uri).user == "sips:user@example.com"
    to = parse_sip_uri(parse_name_addr(esc01.headers.get("To") or "").uri)
    assert to.user == "user"
    frm = parse_sip_uri(parse_name_addr(esc01.headers.get("From") or "").uri)
    assert frm.user == "I have spaces"
    contact = parse_sip_uri(parse_name_addr(esc01.headers.get("Contact") or "").uri)
    assert contact.params == (("lr", None), ("name", "value%41"))
    escnull = request("escnull")
    users = [parse_sip_uri(c.uri).user for c in parse_name_addrs(escnull.headers, "Contact")]
    assert users == ["\x00", "\x00\x00"]
    assert parse_sip_uri(request("semiuri").uri).user == "user;par=u@example.net"


def test_esc02_two_contacts_not_three() -> None:
    msg = request("esc02")
    assert msg.method == "RE%47IST%45R"
    assert len(parse_name_addrs(msg.headers, "Contact")) == 2
    assert parse_name_addr(msg.headers.get("To") or "").display == "%Z%45"


def test_longreq_and_transports_vias() -> None:
    assert len(parse_vias(request("longreq").headers)) == 34
    transports = [v.transport for v in parse_vias(request("transports").headers)]
    assert transports == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_dblreq_ignores_trailing_invite() -> None:
    msg = request("dblreq")
    assert msg.method == "REGISTER" and msg.body == b""


def test_mpart01_binary_body_kept() -> None:
    msg = request("mpart01")
    assert len(msg.body) == 553 and b"\x00" in msg.body
    assert msg.body.endswith(b"--7a9cbec02ceef655--\r\n")


def test_responses_reason_phrases() -> None:
    unreason = parse_message(load("unreason"))
    assert isinstance(unreason, Response)
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = parse_message(load("noreason"))
    assert isinstance(noreason, Response) and noreason.reason == ""


def test_inv2543_without_content_length_takes_datagram_rest() -> None:
    msg = request("inv2543")
    assert "Content-Length" not in msg.headers and "Max-Forwards" not in msg.headers
    assert msg.body.startswith(b"v=0\r\n") and msg.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    assert parse_vias(msg.headers)[0].branch is None


def test_cparam_unknownparam_owner() -> None:
    # 3.3.12: without <> the parameter is a Contact header parameter ...
    c1 = parse_name_addrs(request("cparam01").headers, "Contact")[0]
    assert c1.params == (("unknownparam", None),)
    assert parse_sip_uri(c1.uri).params == ()
    # 3.3.13: ... inside <> it is a URI parameter.
    c2 = parse_name_addrs(request("cparam02").headers, "Contact")[0]
    assert c2.params == ()
    assert parse_sip_uri(c2.uri).params == (("unknownparam", None),)


def test_regescrt_contact_keeps_escaped_route() -> None:
    contact = parse_name_addrs(request("regescrt").headers, "Contact")[0]
    uri = parse_uri(contact.uri)
    assert isinstance(uri, SipUri) and uri.headers == (("Route", "<sip:sip.example.com>"),)


def test_bext01_lists_both_unsupported_tags() -> None:
    _, err, _ = outcome(load("bext01"))
    assert err is not None
    assert err.headers == (("Unsupported", "nothingSupportsThis, nothingSupportsThisEither"),)


def test_invut_accept() -> None:
    _, err, _ = outcome(load("invut"))
    assert err is not None and err.headers == (("Accept", "application/sdp"),)
