"""Wire parsing and stream framing (RFC 3261 7, 18.3; RFC 5626 3.5.1)."""

from __future__ import annotations

import pytest

from avatar_mf.sip.errors import FramingError, SipParseError
from avatar_mf.sip.headers import parse_cseq, parse_vias
from avatar_mf.sip.message import Headers, Request, Response, serialize
from avatar_mf.sip.parser import KeepAlivePing, StreamFramer, is_keepalive, parse_message

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
)


def request_bytes(
    *,
    method: str = "INVITE",
    extra: tuple[str, ...] = (),
    body: bytes = SDP,
    content_length: int | None | str = "auto",
    start: str | None = None,
) -> bytes:
    lines = [
        start or f"{method} sip:bob@biloxi.example.com SIP/2.0",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@biloxi.example.com>",
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        f"CSeq: 314159 {method}",
        "Contact: <sip:alice@pc33.atlanta.example.com>",
        *extra,
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    if content_length == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_error(data: bytes, **kwargs: object) -> SipParseError:
    with pytest.raises(SipParseError) as info:
        parse_message(data, **kwargs)  # type: ignore[arg-type]
    return info.value


# --------------------------------------------------------------------------- basics


def test_parse_request() -> None:
    msg = parse_message(request_bytes())
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.uri == "sip:bob@biloxi.example.com"
    assert msg.version == "SIP/2.0"
    assert msg.headers.get("call-id") == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.body == SDP


def test_parse_response() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=2\r\n"
        b"From: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason, msg.body) == (180, "Ringing", b"")
    assert msg.is_provisional and not msg.is_final


def test_leading_crlf_skipped() -> None:
    msg = parse_message(b"\r\n\r\n\r\n" + request_bytes())
    assert isinstance(msg, Request) and msg.method == "INVITE"


def test_compact_forms_and_case_insensitive_names() -> None:
    data = (
        b"OPTIONS sip:b@h SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nt: <sip:b@h>\r\n"
        b"f: <sip:a@h>;tag=1\r\ni: abc@h\r\ncSeQ: 1 OPTIONS\r\nMAX-FORWARDS: 70\r\nk: timer\r\n"
        b"m: <sip:a@h>\r\nc: text/plain\r\ne: identity\r\ns: hi\r\nx: 1800\r\nl: 2\r\n\r\nok"
    )
    msg = parse_message(data)
    names = [name for name, _ in msg.headers]
    assert names == [
        "Via",
        "To",
        "From",
        "Call-ID",
        "CSeq",
        "Max-Forwards",
        "Supported",
        "Contact",
        "Content-Type",
        "Content-Encoding",
        "Subject",
        "Session-Expires",
        "Content-Length",
    ]
    assert msg.body == b"ok"


def test_folding_unfolded_to_single_space() -> None:
    data = request_bytes(
        extra=("Subject: I know you're there,\r\n   pick up the phone\r\n\tand talk to me!",)
    )
    msg = parse_message(data)
    assert msg.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"


def test_folded_value_starting_on_next_line() -> None:
    data = request_bytes(extra=("Route:\r\n <sip:services.example.com;lr>",))
    assert parse_message(data).headers.get("Route") == "<sip:services.example.com;lr>"


def test_hcolon_whitespace_and_empty_values() -> None:
    data = request_bytes(extra=("Subject   :   ", "X-Empty:", "NewHeader  :\tv  "))
    msg = parse_message(data)
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("X-Empty") == ""
    assert msg.headers.get("Newheader") == "v"


def test_repeated_headers_keep_order() -> None:
    data = request_bytes(
        extra=("Record-Route: <sip:p1;lr>", "Supported: timer", "Record-Route: <sip:p2;lr>")
    )
    msg = parse_message(data)
    assert msg.headers.get_all("Record-Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]


def test_multiple_vias_one_line_and_several_lines() -> None:
    data = (
        b"BYE sip:b@h SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/TCP p2.example.com:5061"
        b";branch=z9hG4bK2\r\n"
        b"v: SIP/2.0/UDP [2001:db8::10]:5070;branch=z9hG4bK3;rport=5070;received=2001:db8::10\r\n"
        b"Via: SIP/2.0/TLS p4.example.com;branch=z9hG4bK4\r\n"
        b"To: <sip:b@h>;tag=2\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n"
        b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert len(msg.headers.get_all("Via")) == 3
    vias = parse_vias(msg.headers)
    assert [v.branch for v in vias] == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3", "z9hG4bK4"]
    assert vias[2].host == "[2001:db8::10]" and vias[2].port == 5070 and vias[2].rport == 5070


def test_ipv6_request_uri_and_headers() -> None:
    data = request_bytes(start="INVITE sip:mf@[2001:db8::10]:5070;transport=udp SIP/2.0")
    msg = parse_message(data)
    assert isinstance(msg, Request) and msg.uri == "sip:mf@[2001:db8::10]:5070;transport=udp"


def test_utf8_values_and_reason() -> None:
    data = request_bytes(extra=("Subject: Привет, 大停電",))
    assert parse_message(data).headers.get("Subject") == "Привет, 大停電"
    resp = (
        "SIP/2.0 200 Всё хорошо\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=2\r\n"
        "From: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(resp)
    assert isinstance(msg, Response) and msg.reason == "Всё хорошо"


def test_version_is_case_insensitive_and_normalised() -> None:
    msg = parse_message(request_bytes(start="INVITE sip:bob@biloxi.example.com sip/2.0"))
    assert msg.version == "SIP/2.0"


# --------------------------------------------------------------------------- body framing


def test_datagram_without_content_length_takes_rest() -> None:
    msg = parse_message(request_bytes(content_length=None))
    assert msg.body == SDP


def test_datagram_content_length_smaller_truncates() -> None:
    msg = parse_message(request_bytes(content_length=10))
    assert msg.body == SDP[:10]
    extra = parse_message(request_bytes(body=b"", content_length=0) + b"garbage after")
    assert extra.body == b""


def test_datagram_content_length_larger_is_400_with_partial() -> None:
    err = parse_error(request_bytes(content_length=len(SDP) + 1))
    assert err.status == 400
    assert err.partial is not None and err.partial.method == "INVITE"
    assert err.close_connection is False


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", "12345678901", "0x10", "１２"])
def test_bad_content_length_is_400(value: str) -> None:
    err = parse_error(request_bytes(content_length=value))
    assert err.status == 400
    assert err.partial is not None


def test_multiple_content_length_is_400() -> None:
    err = parse_error(request_bytes(extra=("Content-Length: 3",)))
    assert err.status == 400 and "Content-Length" in err.reason


def test_stream_message_requires_content_length() -> None:
    err = parse_error(request_bytes(content_length=None), datagram=False)
    assert err.status == 400 and err.partial is not None
    ok = parse_message(request_bytes(), datagram=False)
    assert ok.body == SDP


def test_body_with_crlf_and_binary_kept() -> None:
    body = b"\r\n\r\n\x00\xff binary \r\n"
    msg = parse_message(request_bytes(body=body))
    assert msg.body == body


def test_max_size_513() -> None:
    data = request_bytes()
    err = parse_error(data, max_size=len(data) - 1)
    assert err.status == 513 and err.reason == "Message Too Large"
    assert err.partial is not None
    assert parse_error(b"X" * 100, max_size=50).status == 513
    assert isinstance(parse_message(data, max_size=len(data)), Request)


# --------------------------------------------------------------------------- start line


@pytest.mark.parametrize(
    "start",
    [
        "INVITE  sip:bob@biloxi.example.com SIP/2.0",  # RFC 4475 3.1.2.9
        "INVITE sip:bob@biloxi.example.com SIP/2.0 ",  # RFC 4475 3.1.2.10
        "INVITE <sip:bob@biloxi.example.com> SIP/2.0",  # RFC 4475 3.1.2.7
        "INVITE sip:bob@biloxi.example.com; lr SIP/2.0",  # RFC 4475 3.1.2.8
        "INVITE sip:bob@biloxi.example.com",
        "INVITE",
        "INVITE sip:bob@biloxi.example.com HTTP/1.1",
        "IN<VITE sip:bob@biloxi.example.com SIP/2.0",
        "INVITE bob@biloxi.example.com SIP/2.0",
        "INVITE\tsip:bob@biloxi.example.com SIP/2.0",
    ],
)
def test_bad_request_line_is_400_with_partial(start: str) -> None:
    err = parse_error(request_bytes(start=start))
    assert err.status == 400
    assert err.partial is not None
    assert err.partial.headers.get("Call-ID") == "a84b4c76e66710@pc33.atlanta.example.com"


@pytest.mark.parametrize("version", ["SIP/7.0", "SIP/1.0", "SIP/2.1", "SIP/20.0"])
def test_other_sip_version_is_505(version: str) -> None:
    err = parse_error(request_bytes(start=f"OPTIONS sip:bob@biloxi.example.com {version}"))
    assert (err.status, err.reason) == (505, "Version Not Supported")
    assert err.partial is not None and err.partial.method == "OPTIONS"


def test_ack_errors_have_no_partial() -> None:
    err = parse_error(request_bytes(method="ACK", content_length=len(SDP) + 5))
    assert err.status == 400 and err.partial is None


@pytest.mark.parametrize(
    "status_line",
    [
        b"SIP/2.0 4294967301 better not break the receiver",  # RFC 4475 3.1.2.19
        b"SIP/2.0 99 Low",
        b"SIP/2.0 700 High",
        b"SIP/2.0 2OO OK",
        b"SIP/2.0",
        b"SIP/3.0 200 OK",
    ],
)
def test_bad_status_line_never_answered(status_line: bytes) -> None:
    data = (
        status_line + b"\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>\r\n"
        b"From: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    err = parse_error(data)
    assert err.status in (400, 505)
    assert err.partial is None


def test_status_line_reason_may_be_empty() -> None:
    base = (
        b"\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>\r\nFrom: <sip:a@h>;tag=1\r\n"
        b"Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    for line in (b"SIP/2.0 100 ", b"SIP/2.0 100"):
        msg = parse_message(line + base)
        assert isinstance(msg, Response) and msg.status == 100 and msg.reason == ""


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("missing", "expect_partial"),
    [("To", True), ("From", True), ("Call-ID", True), ("CSeq", True), ("Via", False)],
)
def test_missing_mandatory_header_is_400_naming_it(missing: str, expect_partial: bool) -> None:
    lines = request_bytes().split(b"\r\n")
    data = b"\r\n".join(line for line in lines if not line.startswith(missing.encode() + b":"))
    err = parse_error(data)
    assert err.status == 400 and missing in err.reason
    assert (err.partial is not None) is expect_partial


def test_missing_max_forwards_tolerated() -> None:
    data = request_bytes().replace(b"Max-Forwards: 70\r\n", b"")
    assert isinstance(parse_message(data), Request)


def test_bad_cseq_is_400_with_partial() -> None:
    err = parse_error(request_bytes().replace(b"CSeq: 314159", b"CSeq: 99999999999"))
    assert err.status == 400 and err.partial is not None


@pytest.mark.parametrize(
    "line",
    [
        b"NoColonHere",
        b": no name",
        b"Bad Name: x",
        b"Bad\x00Name: x",
        b"Na<me: x",
    ],
)
def test_malformed_header_line_is_400(line: bytes) -> None:
    data = request_bytes().replace(b"Max-Forwards: 70", line)
    err = parse_error(data)
    assert err.status == 400


def test_continuation_before_first_header_is_400() -> None:
    data = request_bytes().replace(b"SIP/2.0\r\nVia", b"SIP/2.0\r\n folded\r\nVia", 1)
    assert parse_error(data).status == 400


@pytest.mark.parametrize("bad", [b"\n", b"\r", b"\xff\xfe", b"\xc3"])
def test_bare_cr_lf_and_invalid_utf8_refused(bad: bytes) -> None:
    data = request_bytes().replace(b"Max-Forwards: 70", b"Max-Forwards: 7" + bad + b"0")
    assert parse_error(data).status == 400


def test_incomplete_header_section() -> None:
    assert parse_error(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n").status == 400
    assert parse_error(b"").status == 400
    assert parse_error(b"\r\n\r\n").status == 400


def test_round_trip_through_serialize() -> None:
    msg = parse_message(request_bytes(extra=("Subject: a,\r\n b",)))
    again = parse_message(serialize(msg))
    assert again == msg


def test_typical_invite_cseq_usable() -> None:
    msg = parse_message(request_bytes())
    assert parse_cseq(msg.headers.get("CSeq") or "").seq == 314159


# --------------------------------------------------------------------------- StreamFramer


def test_framer_whole_messages_in_one_read() -> None:
    a = request_bytes()
    b = request_bytes(method="BYE", body=b"")
    framer = StreamFramer()
    out = framer.feed(a + b + a)
    assert [m.method for m in out if isinstance(m, Request)] == ["INVITE", "BYE", "INVITE"]
    assert framer.buffered == 0


def test_framer_byte_by_byte() -> None:
    data = request_bytes() + request_bytes(method="BYE", body=b"")
    framer = StreamFramer()
    out: list[object] = []
    for i in range(len(data)):
        out.extend(framer.feed(data[i : i + 1]))
    assert [type(m) for m in out] == [Request, Request]
    assert out[0] == parse_message(request_bytes())


def test_framer_split_inside_separator_and_body() -> None:
    data = request_bytes()
    cut = data.index(b"\r\n\r\n") + 2
    framer = StreamFramer()
    assert framer.feed(data[:cut]) == []
    assert framer.feed(data[cut : cut + 5]) == []
    out = framer.feed(data[cut + 5 :])
    assert len(out) == 1 and isinstance(out[0], Request) and out[0].body == SDP


def test_framer_keepalive_ping() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [KeepAlivePing()]
    assert framer.feed(b"\r\n") == []  # maybe half a ping
    assert framer.feed(b"\r\n") == [KeepAlivePing()]
    out = framer.feed(b"\r\n\r\n" + request_bytes() + b"\r\n\r\n")
    assert [type(x) for x in out] == [KeepAlivePing, Request, KeepAlivePing]


def test_framer_single_crlf_before_message_skipped() -> None:
    framer = StreamFramer()
    out = framer.feed(b"\r\n" + request_bytes())
    assert [type(x) for x in out] == [Request]


def test_framer_missing_content_length_closes() -> None:
    framer = StreamFramer()
    out = framer.feed(request_bytes(content_length=None) + request_bytes())
    assert len(out) == 1
    err = out[0]
    assert isinstance(err, FramingError) and isinstance(err, SipParseError)
    assert err.close_connection and err.status == 400 and err.partial is not None
    assert framer.closed
    assert framer.feed(request_bytes()) == []


@pytest.mark.parametrize("value", ["-5", "abc"])
def test_framer_bad_content_length_closes(value: str) -> None:
    framer = StreamFramer()
    (err,) = framer.feed(request_bytes(content_length=value))
    assert isinstance(err, FramingError) and framer.closed


def test_framer_malformed_head_closes() -> None:
    framer = StreamFramer()
    (err,) = framer.feed(b"garbage without colon\r\nmore\r\n\r\n")
    assert isinstance(err, FramingError) and err.partial is None


def test_framer_non_fatal_error_keeps_stream() -> None:
    bad = request_bytes(start="INVITE sip:bob@biloxi.example.com SIP/3.0")
    framer = StreamFramer()
    out = framer.feed(bad + request_bytes(method="BYE", body=b""))
    assert isinstance(out[0], SipParseError) and not isinstance(out[0], FramingError)
    assert out[0].status == 505 and out[0].partial is not None
    assert isinstance(out[1], Request) and out[1].method == "BYE"
    assert not framer.closed


def test_framer_max_size_on_headers_and_body() -> None:
    framer = StreamFramer(max_size=200)
    (err,) = framer.feed(b"INVITE sip:a@b SIP/2.0\r\nX: " + b"a" * 300)
    assert isinstance(err, FramingError) and err.status == 513
    framer = StreamFramer(max_size=600)
    (err,) = framer.feed(request_bytes(content_length=10_000))
    assert isinstance(err, FramingError) and err.status == 513 and err.partial is not None


def test_framer_content_length_zero_then_next() -> None:
    bye = request_bytes(method="BYE", body=b"")
    framer = StreamFramer()
    assert len(framer.feed(bye[:-1])) == 0
    out = framer.feed(bye[-1:] + bye)
    assert len(out) == 2


def test_headers_type_is_headers() -> None:
    msg = parse_message(request_bytes())
    assert isinstance(msg.headers, Headers)


def test_is_keepalive() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n")
    assert not is_keepalive(b"") and not is_keepalive(b"\r\n\r\nX") and not is_keepalive(b"\n")


def test_status_line_prefix_is_case_insensitive_and_never_answered() -> None:
    data = (
        b"Sip/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=2\r\n"
        b"From: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, Response) and msg.status == 200
    err = parse_error(data.replace(b"Sip/2.0", b"sIP/2.1"))
    assert err.status == 505 and err.partial is None
