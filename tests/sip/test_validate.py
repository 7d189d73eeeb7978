"""UAS request validation (RFC 3261 8.2) and response building (RFC 3261 8.2.6)."""

from __future__ import annotations

import pytest

from avatar_mf.sip.build import (
    MAGIC_COOKIE,
    REASON_PHRASES,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    response_for_error,
)
from avatar_mf.sip.errors import SipError, SipParseError
from avatar_mf.sip.headers import is_token, parse_name_addr
from avatar_mf.sip.message import Headers, Request, Response, serialize
from avatar_mf.sip.parser import parse_message
from avatar_mf.sip.validate import validate_request

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

BASE: tuple[tuple[str, str], ...] = (
    ("Via", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"),
    ("Via", "SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKfirst;received=2001:db8::1"),
    ("Max-Forwards", "70"),
    ("To", "Bob <sip:bob@biloxi.example.com>"),
    ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
    ("Call-ID", "a84b4c76e66710@pc33.atlanta.example.com"),
    ("CSeq", "314159 INVITE"),
    ("Contact", "<sip:alice@pc33.atlanta.example.com>"),
    ("Content-Type", "application/sdp"),
)


def make_request(
    method: str = "INVITE",
    uri: str = "sip:bob@biloxi.example.com",
    *,
    set_: dict[str, str] | None = None,
    add: tuple[tuple[str, str], ...] = (),
    drop: tuple[str, ...] = (),
    body: bytes = SDP,
) -> Request:
    headers = Headers.of(BASE)
    if method != "INVITE":
        headers = headers.set("CSeq", f"314159 {method}")
    for name in drop:
        headers = headers.remove(name)
    for name, value in (set_ or {}).items():
        headers = headers.set(name, value)
    for name, value in add:
        headers = headers.add(name, value)
    return Request(method, uri, headers, body)


def status_of(req: Request, **kwargs: object) -> int | None:
    try:
        validate_request(req, **kwargs)  # type: ignore[arg-type]
    except SipError as exc:
        return exc.status
    return None


def error_of(req: Request, **kwargs: object) -> SipError:
    with pytest.raises(SipError) as info:
        validate_request(req, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_good_invite_passes() -> None:
    validate_request(make_request(), supported=frozenset({"timer"}))


@pytest.mark.parametrize(
    "name", ["To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Length"]
)
def test_single_valued_headers_twice_is_400(name: str) -> None:
    base = dict(BASE)
    value = base.get(name, "0")
    extra = ((name, value),) if name in base else ((name, value), (name, value))
    err = error_of(make_request(add=extra))
    assert err.status == 400 and name in err.reason and isinstance(err, SipParseError)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("To", '"Mr. J. User <sip:j.user@example.com>'),
        ("To", '"Watson, Thomas" < sip:t.watson@example.org >'),
        ("From", "Bell, Alexander <sip:a.g.bell@example.com>;tag=43"),
        ("To", "sip:a@example.com, sip:b@example.com"),
        ("To", "*"),
        ("Contact", "sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
        ("Contact", '"Joe" <sip:joe@example.org>;;;;'),
        ("Via", "SIP/2.0/UDP 192.0.2.15;;,;,,"),
        ("CSeq", "36893488147419103232 INVITE"),
        ("Max-Forwards", "300"),
        ("Max-Forwards", "-1"),
        ("Max-Forwards", "many"),
    ],
)
def test_header_syntax_is_400(name: str, value: str) -> None:
    assert status_of(make_request(set_={name: value})) == 400


def test_max_forwards_with_leading_zeros_ok() -> None:
    validate_request(make_request(set_={"Max-Forwards": "0068"}))


def test_method_checks_with_allow() -> None:
    served = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"})
    unknown = error_of(make_request("NEWMETHOD"), allowed_methods=served)
    assert unknown.status == 501
    assert unknown.headers == (("Allow", "ACK, BYE, CANCEL, INVITE, OPTIONS"),)
    known = error_of(make_request("SUBSCRIBE"), allowed_methods=served)
    assert known.status == 405 and known.headers[0][0] == "Allow"
    validate_request(make_request("BYE", body=b"", drop=("Content-Type",)), allowed_methods=served)


def test_cseq_method_mismatch_is_400() -> None:
    req = make_request("BYE", body=b"", set_={"CSeq": "1 INVITE"})
    err = error_of(req)
    assert err.status == 400 and "CSeq" in err.reason


def test_unknown_method_checked_before_cseq_mismatch() -> None:
    # RFC 4475 3.1.2.18: 501 is preferred over 400 for an unknown method.
    req = make_request("NEWMETHOD", set_={"CSeq": "8 INVITE"})
    assert status_of(req, allowed_methods=frozenset({"INVITE"})) == 501
    assert status_of(req) == 400


def test_max_forwards_zero() -> None:
    err = error_of(make_request(set_={"Max-Forwards": "0"}))
    assert (err.status, err.reason) == (483, "Too Many Hops")
    # OPTIONS with Max-Forwards 0 is answered by this UAS itself (RFC 3261 16.3, 11).
    validate_request(make_request("OPTIONS", body=b"", set_={"Max-Forwards": "0"}))


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("nobodyKnowsThisScheme:totallyopaquecontent", 416),
        ("soap.beep://192.0.2.103:3002", 416),
        ("http://www.example.com/", 416),
        ("sip:user@example.com?Route=%3Csip:example.com%3E", 400),
        ("sip:user@", 400),
        ("sip:%zz@example.com", 400),
        ("tel:+15551234567", None),
        ("sips:bob@[2001:db8::10]:5061;transport=tls", None),
        ("sip:+15551234567@ims.example.com;user=phone", None),
    ],
)
def test_request_uri(uri: str, status: int | None) -> None:
    assert status_of(make_request(uri=uri)) == status


def test_request_uri_schemes_configurable() -> None:
    assert status_of(make_request(uri="tel:+1555"), allowed_schemes=frozenset({"sip"})) == 416


def test_require_unknown_is_420_with_unsupported() -> None:
    req = make_request(
        "OPTIONS",
        body=b"",
        add=(
            ("Require", "nothingSupportsThis, timer"),
            ("Require", "nothingSupportsThisEither"),
            ("Proxy-Require", "noProxiesSupportThis"),
        ),
    )
    err = error_of(req, supported=frozenset({"timer"}))
    assert (err.status, err.reason) == (420, "Bad Extension")
    assert err.headers == (("Unsupported", "nothingSupportsThis, nothingSupportsThisEither"),)


def test_require_known_and_proxy_require_ignored() -> None:
    req = make_request(add=(("Require", "timer"), ("Proxy-Require", "whatever")))
    validate_request(req, supported=frozenset({"timer"}))
    # ACK and CANCEL are never answered with 420 (RFC 3261 8.2.2.3).
    ack = make_request("ACK", body=b"", add=(("Require", "unknown-tag"),))
    validate_request(ack)


def test_unsupported_content_type_is_415_with_accept() -> None:
    req = make_request(set_={"Content-Type": "application/unknownformat"})
    err = error_of(req)
    assert err.status == 415 and err.headers == (("Accept", "application/sdp"),)
    validate_request(make_request(set_={"Content-Type": "Application/SDP; charset=utf-8"}))
    # MESSAGE bodies are none of this layer's business.
    validate_request(make_request("MESSAGE", set_={"Content-Type": "text/plain"}))


def test_body_without_content_type_is_400() -> None:
    assert status_of(make_request(drop=("Content-Type",))) == 400
    validate_request(make_request(body=b"", drop=("Content-Type",)))


def test_unknown_content_encoding_is_415_with_accept_encoding() -> None:
    err = error_of(make_request(add=(("Content-Encoding", "gzip"),)))
    assert err.status == 415 and err.headers == (("Accept-Encoding", "identity"),)
    validate_request(make_request(add=(("e", "identity"),)))


def test_accept_without_sdp_is_406_for_invite() -> None:
    assert status_of(make_request(add=(("Accept", "text/nobodyKnowsThis"),))) == 406
    validate_request(make_request(add=(("Accept", "application/sdp, text/plain"),)))
    validate_request(make_request(add=(("Accept", "application/*"),)))
    validate_request(make_request(add=(("Accept", "*/*;q=0.1"),)))
    options = make_request("OPTIONS", body=b"", add=(("Accept", "text/x"),))
    validate_request(options)


# --------------------------------------------------------------------------- build


def test_make_response_copies_headers_in_order() -> None:
    req = make_request(add=(("Record-Route", "<sip:p1;lr>"), ("Timestamp", "54")))
    resp = make_response(req, 486, to_tag="as83kd9b")
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason) == (486, "Busy Here")
    assert [n for n, _ in resp.headers] == ["Via", "Via", "To", "From", "Call-ID", "CSeq"]
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    assert resp.headers.get("To") == "Bob <sip:bob@biloxi.example.com>;tag=as83kd9b"
    assert resp.headers.get("From") == req.headers.get("From")


def test_make_response_100_never_tagged_and_keeps_timestamp() -> None:
    req = make_request(add=(("Timestamp", "54"),))
    trying = make_response(req, 100, to_tag="abc")
    assert trying.reason == "Trying"
    assert trying.headers.get("To") == "Bob <sip:bob@biloxi.example.com>"
    assert trying.headers.get("Timestamp") == "54"


def test_make_response_keeps_existing_tag() -> None:
    req = make_request(set_={"To": "<sip:bob@b>;tag=existing"})
    assert make_response(req, 200, to_tag="new").headers.get("To") == "<sip:bob@b>;tag=existing"
    addr_spec = make_request(set_={"To": "sip:bob@b;user=phone"})
    to = make_response(addr_spec, 200, to_tag="t1").headers.get("To") or ""
    assert parse_name_addr(to).params == (("user", "phone"), ("tag", "t1"))


def test_make_response_body_and_headers() -> None:
    resp = make_response(
        make_request(),
        200,
        "OK",
        to_tag="x",
        headers=[("Contact", "<sip:mf@192.0.2.10>"), ("k", "timer")],
        body=SDP,
        content_type="application/sdp",
    )
    assert resp.headers.get("Supported") == "timer"
    assert resp.headers.get("Content-Type") == "application/sdp"
    parsed = parse_message(serialize(resp))
    assert parsed == resp.with_headers(resp.headers.add("Content-Length", str(len(SDP))))


def test_response_for_error_uses_status_reason_headers() -> None:
    err = SipError(420, "Bad Extension", headers=(("Unsupported", "foo"),))
    resp = response_for_error(make_request(), err, to_tag="t")
    assert (resp.status, resp.reason) == (420, "Bad Extension")
    assert resp.headers.get("Unsupported") == "foo"
    assert (resp.headers.get("To") or "").endswith(";tag=t")
    generated = response_for_error(make_request(), SipError(500))
    tag = parse_name_addr(generated.headers.get("To") or "").tag
    assert tag is not None and is_token(tag)


def test_response_for_partial_request_of_parse_error() -> None:
    data = serialize(make_request(set_={"To": '"Unterminated <sip:x@y>'}))
    data = data.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    err = info.value
    assert err.partial is not None
    resp = response_for_error(err.partial, err, to_tag="q")
    assert (resp.status, resp.reason) == (505, "Version Not Supported")
    assert resp.headers.get("To") == '"Unterminated <sip:x@y>;tag=q'
    assert len(resp.headers.get_all("Via")) == 2


def test_reason_table() -> None:
    for code in (100, 180, 183, 200, 202, 400, 401, 403, 404, 405, 407, 408, 410, 413, 414, 415,
                 416, 420, 421, 422, 423, 480, 481, 482, 483, 484, 485, 486, 487, 488, 489, 491,
                 493, 494, 500, 501, 502, 503, 504, 505, 513, 600, 603, 604, 606):  # fmt: skip
        assert REASON_PHRASES[code]
    assert make_response(make_request(), 422).reason == "Session Interval Too Small"
    assert make_response(make_request(), 489).reason == "Bad Event"
    assert make_response(make_request(), 494).reason == "Security Agreement Required"
    assert make_response(make_request(), 499).reason == "Client Error"


def test_identifiers() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(b.startswith(MAGIC_COOKIE) and is_token(b) and len(b) >= 20 for b in branches)
    tags = {new_tag() for _ in range(100)}
    assert len(tags) == 100 and all(is_token(t) for t in tags)
    call_id = new_call_id("[2001:db8::10]")
    assert call_id.endswith("@[2001:db8::10]") and len(call_id.split("@")[0]) == 32
