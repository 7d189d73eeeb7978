"""Property tests: serialize/parse round trips, stream framing, robustness on any bytes."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.headers import NameAddr, Via, parse_name_addr, parse_via
from avatar_mf.sip.message import Headers, Message, Request, Response, canonical_name, serialize
from avatar_mf.sip.parser import KeepAlivePing, StreamFramer, parse_message
from avatar_mf.sip.uri import SipUri, TelUri, parse_uri

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Multi-message properties draw several messages per example: fewer examples, same coverage.
FEW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN = ALNUM + "-.!%*_+`'~"

tokens = st.text(alphabet=TOKEN, min_size=1, max_size=12)
labels = st.text(alphabet=ALNUM, min_size=1, max_size=8)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
    lambda parts: "[" + ":".join(f"{p:x}" for p in parts) + "]"
)
hosts = st.one_of(hostnames, ipv4, ipv6, st.just("[2001:db8::10]"))
ports = st.none() | st.integers(0, 65535)
param_values = st.none() | tokens
params = st.lists(st.tuples(tokens.map(str.lower), param_values), max_size=3).map(tuple)
# Any text for URI components: str() escapes what needs escaping.
uri_text = st.text(
    alphabet=st.characters(codec="utf-8", max_codepoint=0x7FF),
    min_size=1,
    max_size=10,
)

sip_uris = st.builds(
    SipUri,
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | uri_text,
    host=hosts,
    port=ports,
    password=st.none(),
    params=st.lists(st.tuples(uri_text.map(str.lower), st.none() | uri_text), max_size=3).map(
        tuple
    ),
    headers=st.lists(st.tuples(uri_text, uri_text), max_size=2).map(tuple),
)
sip_uris_with_password = sip_uris.filter(lambda u: u.user is not None).flatmap(
    lambda u: uri_text.map(
        lambda pw: SipUri(u.scheme, u.user, u.host, u.port, pw, u.params, u.headers)
    )
)
tel_uris = st.builds(
    TelUri,
    number=st.text(alphabet="0123456789-.()", min_size=1, max_size=12).map(lambda n: "+" + n),
    params=st.lists(st.tuples(labels.map(str.lower), st.none() | labels), max_size=3).map(tuple),
)
request_uris = st.one_of(sip_uris.map(str), tel_uris.map(str))

vias = st.builds(
    Via,
    protocol=st.just("SIP/2.0"),
    transport=st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]),
    host=hosts,
    port=ports,
    params=st.tuples(tokens.map(lambda b: ("branch", "z9hG4bK" + b))).flatmap(
        lambda first: params.map(lambda rest: first + rest)
    ),
)
displays = st.none() | st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=12
)
name_addrs = st.builds(NameAddr, display=displays, uri=sip_uris.map(str), params=params)

# Header values as the parser returns them: no CR/LF, no leading/trailing SP/HTAB.
values = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30).map(
    lambda v: v.strip(" \t")
)
RESERVED = {"Content-Length", "Via", "To", "From", "Call-ID", "CSeq"}
extension_headers = st.lists(
    st.tuples(tokens.filter(lambda n: canonical_name(n) not in RESERVED), values), max_size=5
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from([b"\r\n", b"\r\n\r\n", b"\x00", b"v=0", b" ", b"\n"])).map(b"".join),
)
methods = st.one_of(
    st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "PRACK", "INFO"]),
    tokens,
)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(methods)
    pairs = [("Via", str(v)) for v in draw(st.lists(vias, min_size=1, max_size=3))]
    pairs += [
        ("To", str(draw(name_addrs))),
        ("From", str(draw(name_addrs))),
        ("Call-ID", draw(tokens) + "@" + draw(hosts)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
    ]
    pairs += draw(extension_headers)
    pairs = draw(st.permutations(pairs))
    return Request(method, draw(request_uris), Headers.of(pairs), draw(bodies))


@st.composite
def responses(draw: st.DrawFn) -> Response:
    reason = draw(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n")))
    pairs = [("Via", str(v)) for v in draw(st.lists(vias, min_size=1, max_size=3))]
    pairs += [
        ("To", str(draw(name_addrs))),
        ("From", str(draw(name_addrs))),
        ("Call-ID", draw(tokens)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {draw(tokens)}"),
    ]
    pairs += draw(extension_headers)
    pairs = draw(st.permutations(pairs))
    return Response(draw(st.integers(100, 699)), reason, Headers.of(pairs), draw(bodies))


messages = st.one_of(requests(), responses())


def as_parsed(msg: Message) -> Message:
    """What parsing the serialized message must give: Content-Length moved last and true."""
    headers = msg.headers.remove("Content-Length").add("Content-Length", str(len(msg.body)))
    return msg.with_headers(headers)


@FAST
@given(messages)
def test_serialize_parse_round_trip(msg: Message) -> None:
    wire = serialize(msg)
    assert parse_message(wire) == as_parsed(msg)
    assert parse_message(wire, datagram=False) == as_parsed(msg)


@FEW
@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_stream_framer_random_splits(msgs: list[Message], data: st.DataObject) -> None:
    wire = b"".join(serialize(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    framer = StreamFramer()
    out: list[object] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        out.extend(framer.feed(wire[start:cut]))
        start = cut
    assert out == [as_parsed(m) for m in msgs]
    assert framer.buffered == 0 and not framer.closed


@FEW
@given(st.lists(st.one_of(requests(), st.just(None)), min_size=1, max_size=5), st.data())
def test_stream_framer_keepalives_between_messages(
    items: list[Request | None], data: st.DataObject
) -> None:
    wire = b"".join(b"\r\n\r\n" if m is None else serialize(m) for m in items)
    step = data.draw(st.integers(1, 64))
    framer = StreamFramer()
    out: list[object] = []
    for i in range(0, len(wire), step):
        out.extend(framer.feed(wire[i : i + step]))
    assert out == [KeepAlivePing() if m is None else as_parsed(m) for m in items]


@FAST
@given(st.one_of(sip_uris, sip_uris_with_password, tel_uris))
def test_uri_round_trip(uri: SipUri | TelUri) -> None:
    assert parse_uri(str(uri)) == uri


@FAST
@given(vias)
def test_via_round_trip(via: Via) -> None:
    assert parse_via(str(via)) == via


@FAST
@given(name_addrs)
@example(NameAddr("*", "sip:[2001:db8::10]", ()))  # a display name "*" is not the wildcard
def test_name_addr_round_trip(addr: NameAddr) -> None:
    assert parse_name_addr(str(addr)) == addr


# --------------------------------------------------------------------------- robustness

JUNK = [b"\r", b"\n", b"\r\n", b" ", b":", b";", b'"', b"<", b"\x00", b"\xff", b"%", b"9", b","]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_parse_message_only_raises_sip_parse_error(data: bytes) -> None:
    try:
        parse_message(data)
    except SipParseError:
        pass


@settings(max_examples=120, deadline=None)
@given(requests(), st.data())
def test_mutated_messages_only_raise_sip_parse_error(msg: Request, data: st.DataObject) -> None:
    wire = bytearray(serialize(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire)))
        junk = data.draw(st.sampled_from(JUNK))
        if data.draw(st.booleans()) and pos < len(wire):
            wire[pos : pos + 1] = junk
        else:
            wire[pos:pos] = junk
    for datagram in (True, False):
        try:
            parse_message(bytes(wire), datagram=datagram)
        except SipParseError:
            pass
    framer = StreamFramer()
    step = data.draw(st.integers(1, 50))
    for i in range(0, len(wire), step):
        for item in framer.feed(bytes(wire[i : i + step])):
            assert isinstance(item, Request | Response | SipParseError | KeepAlivePing)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_stream_framer_never_raises(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_size=2000)
    for chunk in chunks:
        for item in framer.feed(chunk):
            assert isinstance(item, Request | Response | SipParseError | KeepAlivePing)
