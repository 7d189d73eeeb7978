"""RTP packets (RFC 3550 section 5.1) and rtcp-mux demultiplexing (RFC 5761 section 4)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.rtp import RtpError, RtpExtension, RtpPacket, is_rtcp, parse_rtp


def header(
    *,
    v: int = 2,
    p: int = 0,
    x: int = 0,
    cc: int = 0,
    m: int = 0,
    pt: int = 96,
    seq: int = 1,
    ts: int = 2,
    ssrc: int = 3,
) -> bytes:
    return struct.pack("!BBHII", (v << 6) | (p << 5) | (x << 4) | cc, (m << 7) | pt, seq, ts, ssrc)


def test_parse_fixed_header_fields_by_hand() -> None:
    data = bytes.fromhex("80e1 1234 00000640 deadbeef".replace(" ", "")) + b"abc"
    pkt = parse_rtp(data)
    assert pkt.version == 2
    assert pkt.marker is True
    assert pkt.payload_type == 0x61
    assert pkt.sequence == 0x1234
    assert pkt.timestamp == 1600
    assert pkt.ssrc == 0xDEADBEEF
    assert pkt.payload == b"abc"
    assert pkt.csrcs == () and pkt.extension is None and pkt.padding == 0


def test_csrcs_extension_and_padding_parsed() -> None:
    data = (
        header(p=1, x=1, cc=2)
        + struct.pack("!II", 10, 11)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"\x10\xaa\x00\x00"
        + b"payload"
        + b"\x00\x00\x03"
    )
    pkt = parse_rtp(data)
    assert pkt.csrcs == (10, 11)
    assert pkt.extension == RtpExtension(0xBEDE, b"\x10\xaa\x00\x00")
    assert pkt.payload == b"payload"
    assert pkt.padding == 3
    assert pkt.serialize() == data


def test_empty_payload_allowed() -> None:
    assert parse_rtp(header()).payload == b""


def test_serialize_round_trip() -> None:
    pkt = RtpPacket(
        payload_type=8,
        sequence=65535,
        timestamp=2**32 - 1,
        ssrc=1,
        payload=b"\xd5" * 160,
        marker=True,
        csrcs=(7,),
        extension=RtpExtension(1, b"abcd"),
        padding=4,
    )
    assert parse_rtp(pkt.serialize()) == pkt


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short"),
        (header()[:11], "short"),
        (header(v=1), "version"),
        (header(v=0), "version"),
        (header(v=3), "version"),
        (header(cc=1), "csrc"),
        (header(cc=15) + bytes(56), "csrc"),
        (header(x=1), "extension"),
        (header(x=1) + b"\x00\x01\x00", "extension"),
        (header(x=1) + b"\x00\x01\x00\x02" + bytes(4), "extension"),
        (header(p=1), "padding"),
        (header(p=1) + b"ab\x00", "padding"),
        (header(p=1) + b"ab\x04", "padding"),
        (header(p=1, cc=1) + bytes(3) + b"\x05", "padding"),
    ],
)
def test_malformed_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(RtpError) as info:
        parse_rtp(data)
    assert info.value.reason == reason
    assert info.value.retryable is False


def test_padding_may_cover_the_whole_payload() -> None:
    assert parse_rtp(header(p=1) + b"\x00\x00\x03").payload == b""


@pytest.mark.parametrize(
    "pkt",
    [
        RtpPacket(payload_type=128, sequence=0, timestamp=0, ssrc=0),
        RtpPacket(payload_type=0, sequence=1 << 16, timestamp=0, ssrc=0),
        RtpPacket(payload_type=0, sequence=0, timestamp=1 << 32, ssrc=0),
        RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=-1),
        RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=0, csrcs=tuple(range(16))),
        RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=0, padding=256),
        RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=0, version=1),
        RtpPacket(
            payload_type=0, sequence=0, timestamp=0, ssrc=0, extension=RtpExtension(1, b"abc")
        ),
    ],
)
def test_serialize_rejects_out_of_range(pkt: RtpPacket) -> None:
    with pytest.raises(RtpError):
        pkt.serialize()


def test_is_rtcp_by_packet_type() -> None:
    sr = bytes([0x80, 200]) + bytes(26)
    assert is_rtcp(sr)
    assert is_rtcp(bytes([0x81, 201, 0, 7]))
    assert not is_rtcp(header(pt=0))
    assert not is_rtcp(header(pt=96, m=1))  # 224: above the RTCP range
    assert not is_rtcp(header(pt=127))
    assert is_rtcp(header(pt=72, m=1))  # the RFC 5761 collision: 200
    assert not is_rtcp(b"\x80")
    assert not is_rtcp(bytes([0x00, 200]))  # not version 2 (STUN, DTLS ...)


@given(st.binary(max_size=120))
def test_parse_never_raises_anything_else(data: bytes) -> None:
    try:
        pkt = parse_rtp(data)
    except RtpError:
        return
    assert pkt.serialize() == data


_u32 = st.integers(0, 2**32 - 1)


@given(
    st.builds(
        RtpPacket,
        payload_type=st.integers(0, 127),
        sequence=st.integers(0, 65535),
        timestamp=_u32,
        ssrc=_u32,
        payload=st.binary(max_size=64),
        marker=st.booleans(),
        csrcs=st.lists(_u32, max_size=15).map(tuple),
        extension=st.none()
        | st.builds(
            RtpExtension,
            st.integers(0, 65535),
            st.binary(max_size=16).map(lambda b: b[: len(b) - len(b) % 4]),
        ),
        padding=st.integers(0, 255),
    )
)
def test_round_trip_property(pkt: RtpPacket) -> None:
    assert parse_rtp(pkt.serialize()) == pkt
