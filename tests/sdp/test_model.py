"""RFC 8866 model: parsing, lossless round trip, helpers, malformed input."""

from __future__ import annotations

import dataclasses

import pytest

from avatar_mf.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
    parse_sdp,
    serialize_sdp,
)
from tests.sdp.samples import BROWSER_OFFER, IMS_OFFER


def test_fixture_parses_into_fields() -> None:
    sd = parse_sdp(IMS_OFFER)
    assert sd.version == 0
    assert sd.origin == Origin("ue1", "2890844526", "2890844526", "IN", "IP4", "127.0.0.1")
    assert sd.origin.version_number == 2890844526
    assert sd.session_name == "-"
    assert sd.connection == Connection("IN", "IP4", "127.0.0.1")
    assert sd.bandwidths == (Bandwidth("AS", 500),)
    assert sd.times == (Timing(0, 0),)
    assert [m.media for m in sd.media] == ["audio", "application"]
    audio, app = sd.media
    assert (audio.port, audio.proto, audio.formats) == (49170, "RTP/AVP", ("97", "98", "100"))
    assert audio.attribute_value("rtpmap") == "97 AMR-WB/16000/1"
    assert audio.attribute("sendrecv") == Attribute("sendrecv", None)
    assert len(audio.attributes("rtpmap")) == 3
    assert (app.port, app.proto, app.formats) == (49180, "UDP/DTLS/SCTP", ("webrtc-datachannel",))
    assert app.connection is None and sd.connection_for(1) == sd.connection
    assert [a.value for a in app.attributes("dcmap")][0] == '0 subprotocol="http"'
    # Line numbers are remembered, not compared.
    assert app.line == 16
    tls_id = app.attribute("tls-id")
    assert tls_id is not None and tls_id.line == 22


@pytest.mark.parametrize("raw", [IMS_OFFER, BROWSER_OFFER])
def test_round_trip_is_byte_exact(raw: bytes) -> None:
    assert serialize_sdp(parse_sdp(raw)).encode() == raw
    assert serialize_sdp(parse_sdp(raw.decode())) == raw.decode()


def test_lf_only_input_is_accepted_and_normalised_to_crlf() -> None:
    lf = IMS_OFFER.replace(b"\r\n", b"\n")
    sd = parse_sdp(lf)
    assert sd == parse_sdp(IMS_OFFER)
    assert serialize_sdp(sd).encode() == IMS_OFFER


def test_every_line_and_optional_field_survives() -> None:
    text = (
        "v=0\r\n"
        "o=alice 0123 07 IN IP6 2001:db8::1\r\n"
        "s= a session \r\n"
        "i=info: text\r\n"
        "u=http://example.com/s\r\n"
        "e=a@example.com\r\n"
        "e=b@example.com\r\n"
        "p=+1 555 0100\r\n"
        "c=IN IP4 224.2.17.12/127\r\n"
        "b=CT:128\r\n"
        "b=AS:64\r\n"
        "t=2873397496 2873404696\r\n"
        "r=604800 3600 0 90000\r\n"
        "t=0 0\r\n"
        "z=2882844526 -1h 2898848070 0\r\n"
        "k=prompt\r\n"
        "a=recvonly\r\n"
        "a=x-empty:\r\n"
        "a=msid-semantic: WMS\r\n"
        "m=audio 49170/2 RTP/AVP 0 8\r\n"
        "i=media info\r\n"
        "c=IN IP4 224.2.1.1/127/3\r\n"
        "c=IN IP4 224.2.1.4/127\r\n"
        "b=AS:32\r\n"
        "k=clear:secret\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=unknown-attr:with:colons and spaces\r\n"
        "m=video 0 RTP/AVP 31\r\n"
    )
    sd = parse_sdp(text)
    assert serialize_sdp(sd) == text
    assert sd.origin.sess_id == "0123"
    assert sd.emails == ("a@example.com", "b@example.com")
    assert sd.times[0].repeats == ("604800 3600 0 90000",)
    assert sd.attribute("x-empty") == Attribute("x-empty", "")
    audio = sd.media[0]
    assert audio.port_count == 2 and len(audio.connections) == 2
    assert audio.key == "clear:secret" and audio.info == "media info"
    assert audio.attribute_value("UNKNOWN-ATTR") == "with:colons and spaces"
    assert sd.media[1].rejected


def test_out_of_order_optional_lines_are_accepted_and_written_in_rfc_order() -> None:
    text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\na=foo\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
    sd = parse_sdp(text)
    assert serialize_sdp(sd) == (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=foo\r\n"
    )


def test_attribute_helpers() -> None:
    md = MediaDescription("application", 9, "UDP/DTLS/SCTP", ("webrtc-datachannel",))
    md2 = md.with_attributes([("mid", "0"), Attribute("setup", "actpass"), ("dcmap", "1 a")])
    assert md2.attribute_value("MID") == "0"
    assert md2.has_attribute("setup") and not md2.has_attribute("tls-id")
    md3 = md2.adding_attributes(Attribute("dcmap", "2 b")).without_attributes("setup")
    assert [str(a) for a in md3.attrs] == ["mid:0", "dcmap:1 a", "dcmap:2 b"]
    assert [a.value for a in md3.attributes("dcmap")] == ["1 a", "2 b"]
    assert md2.attribute("nothing") is None and md2.attribute_value("nothing") is None
    sd = SessionDescription(Origin("-", "1", "1", "IN", "IP4", "192.0.2.1"), media=(md3,))
    assert sd.with_attributes([("ice-lite", None)]).attrs == (Attribute("ice-lite"),)
    assert serialize_sdp(sd).startswith("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n")


def test_attribute_lookups_follow_each_copy() -> None:
    # The look-ups index a description's attributes on first use; a copy made after a
    # look-up (with_attributes, dataclasses.replace) must answer for its own attributes.
    md = MediaDescription("audio", 9, "RTP/AVP", ("0",), attrs=(Attribute("SendOnly"),))
    assert md.has_attribute("sendonly") and md.attributes("SENDONLY") == (Attribute("SendOnly"),)
    flipped = md.with_attributes([("recvonly", None), ("Fmtp", "0 a=1"), ("fmtp", "0 b=2")])
    assert not flipped.has_attribute("sendonly") and flipped.has_attribute("RecvOnly")
    assert [a.value for a in flipped.attributes("FMTP")] == ["0 a=1", "0 b=2"]
    assert flipped.attribute("fmtp") == Attribute("Fmtp", "0 a=1")
    moved = dataclasses.replace(md, port=10)
    assert moved.has_attribute("sendonly") and moved.port == 10
    # The index is not part of a description's value: equal with or without it.
    fresh = MediaDescription("audio", 9, "RTP/AVP", ("0",), attrs=(Attribute("SendOnly"),))
    assert md == fresh and hash(md) == hash(fresh) and repr(md) == repr(fresh)
    sd = parse_sdp(IMS_OFFER)
    assert sd.media[1].attribute_value("SCTP-PORT") == "5000"
    assert sd == parse_sdp(IMS_OFFER)


def test_serialize_refuses_line_injection() -> None:
    sd = SessionDescription(
        Origin("-", "1", "1", "IN", "IP4", "192.0.2.1"),
        attrs=(Attribute("x", "evil\r\nm=audio 1 RTP/AVP 0"),),
    )
    with pytest.raises(ValueError, match="contains"):
        serialize_sdp(sd)


GOOD_HEAD = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "missing v=0"),
        ("o=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n", 1, "first line must be v=0"),
        ("v=1\r\n", 1, "unsupported SDP version"),
        ("v=0\r\ns=-\r\nt=0 0\r\n", 3, "missing o="),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n", 3, "missing s="),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n", 3, "missing t="),
        ("v=0\r\no=- 1 IN IP4 192.0.2.1\r\n", 2, "expected 6 fields"),
        ("v=0\r\no=- x 1 IN IP4 192.0.2.1\r\n", 2, "sess-id"),
        (GOOD_HEAD + "o=- 1 1 IN IP4 192.0.2.1\r\n", 5, "more than one o="),
        (GOOD_HEAD + "m=audio\r\n", 5, "bad m= line"),
        (GOOD_HEAD + "m=audio 49170 RTP/AVP\r\n", 5, "bad m= line"),
        (GOOD_HEAD + "m=audio port RTP/AVP 0\r\n", 5, "m= port 'port' is not a number"),
        (GOOD_HEAD + "m=audio 70000 RTP/AVP 0\r\n", 5, "out of range"),
        (GOOD_HEAD + "m=audio 5/0 RTP/AVP 0\r\n", 5, "number of ports"),
        (GOOD_HEAD + "m=audio \u0663 RTP/AVP 0\r\n", 5, "not a number"),
        (GOOD_HEAD + "m=audio 1 RTP//AVP 0\r\n", 5, "proto"),
        (GOOD_HEAD + "m=audio 1 RTP/AVP 0\r\nt=0 0\r\n", 6, "not allowed in a media"),
        (GOOD_HEAD + "x=1\r\n", 5, "unknown line type"),
        (GOOD_HEAD + "a=\r\n", 5, "empty attribute name"),
        (GOOD_HEAD + "a=:x\r\n", 5, "empty attribute name"),
        (GOOD_HEAD + "b=AS\r\n", 5, "bad b= line"),
        (GOOD_HEAD + "b=AS:lots\r\n", 5, "not a number"),
        (GOOD_HEAD + "c=IN IP4\r\n", 5, "bad c= line"),
        (GOOD_HEAD + "junk\r\n", 5, "expected '<type>=<value>'"),
        (GOOD_HEAD + "a=x\rb\r\n", 5, "CR or NUL"),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nr=1 2 3\r\n", 4, "r= line without"),
        ("v=0\r\nv=0\r\n", 2, "more than one v="),
    ],
)
def test_malformed_sdp_raises_400_with_line_number(text: str, line: int, fragment: str) -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(text)
    err = info.value
    assert err.status == 400 and err.reason_phrase == "Bad Request"
    assert err.line == line
    assert fragment in str(err)
    assert str(err).startswith(f"SDP line {line}: ")
    assert err.warning.code == 399


def test_non_utf8_bytes_raise_sdp_error_with_line() -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(b"v=0\r\ns=\xff\xfe\r\n")
    assert info.value.line == 2


def test_warning_header_value_is_quoted_and_escaped() -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(GOOD_HEAD + 'm=audio "x" RTP/AVP 0\r\n')
    value = info.value.warning.header_value("mf.example.net")
    assert value.startswith('399 mf.example.net "SDP line 5: ')
    assert value.endswith('"') and '\\"' in value
