"""RTCP compound packets (RFC 3550 6.4-6.6, A.2): bytes laid out by hand, malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.rtp import RtpError
from avatar_mf.rtp.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpOther,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_middle32,
    ntp_timestamp,
    parse_rtcp,
    serialize_rtcp,
)


def block_bytes(ssrc: int = 0x11111111, fraction: int = 0x40, lost: int = 5) -> bytes:
    return struct.pack("!IIIIII", ssrc, (fraction << 24) | (lost & 0xFFFFFF), 70000, 33, 0x1234, 99)


SR_BYTES = (
    bytes([0x81, 200])
    + struct.pack("!H", 12)  # 1 report block: 6 + 6 words of body
    + struct.pack("!I", 0xAABBCCDD)
    + struct.pack("!II", 0xE0000000, 0x80000000)  # NTP
    + struct.pack("!III", 160000, 50, 8000)
    + block_bytes()
)
CNAME = b"mf@127.0.0.1"
SDES_BYTES = (
    bytes([0x81, 202])
    + struct.pack("!H", 5)  # 4 (ssrc) + 2 + 12 + 1 (end) = 19 -> 20 octets = 5 words
    + struct.pack("!I", 0xAABBCCDD)
    + bytes([1, len(CNAME)])
    + CNAME
    + b"\x00\x00"
)
BYE_BYTES = (
    bytes([0x81, 203])
    + struct.pack("!H", 3)
    + struct.pack("!I", 0xAABBCCDD)
    + b"\x04done\x00\x00\x00"
)


def test_parse_sr_sdes_bye_by_hand() -> None:
    packets = parse_rtcp(SR_BYTES + SDES_BYTES + BYE_BYTES)
    sr, sdes, bye = packets
    assert isinstance(sr, SenderReport)
    assert sr.ssrc == 0xAABBCCDD
    assert sr.ntp_timestamp == 0xE000000080000000
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (160000, 50, 8000)
    assert sr.reports == (ReportBlock(0x11111111, 0x40, 5, 70000, 33, 0x1234, 99),)
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].cname == "mf@127.0.0.1"
    assert bye == Goodbye((0xAABBCCDD,), "done")
    assert serialize_rtcp(packets) == SR_BYTES + SDES_BYTES + BYE_BYTES


def test_negative_cumulative_lost_and_rr() -> None:
    rr = ReceiverReport(1, (ReportBlock(2, 0, -3, 10, 0),))
    wire = serialize_rtcp([rr])
    assert wire[:4] == bytes([0x81, 201, 0, 7])
    assert wire[12:16] == b"\x00\xff\xff\xfd"
    assert parse_rtcp(wire) == (rr,)


def test_other_types_kept_and_padding_on_the_last() -> None:
    app = RtcpOther(204, 1, b"\x00\x00\x00\x01name")
    wire = serialize_rtcp([ReceiverReport(1), app])
    (length,) = struct.unpack_from("!H", wire, 10)
    padded = (
        wire[:8]
        + bytes([0xA1])
        + wire[9:10]
        + struct.pack("!H", length + 1)
        + wire[12:]
        + b"\x00\x00\x00\x04"
    )
    assert parse_rtcp(padded) == parse_rtcp(wire)


def test_reduced_size_allows_any_first_packet() -> None:
    fb = serialize_rtcp([RtcpOther(205, 1, bytes(8))])
    with pytest.raises(RtpError) as info:
        parse_rtcp(fb)
    assert info.value.reason == "first"
    assert parse_rtcp(fb, reduced_size=True) == (RtcpOther(205, 1, bytes(8)),)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short"),
        (b"\x80\xc9\x00", "short"),
        (b"\x40\xc9\x00\x01" + bytes(4), "version"),
        (b"\x80\xc9\x00\x02" + bytes(4), "length"),
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\x80", "length"),
        (b"\x81\xc9\x00\x01" + bytes(4), "rr"),  # RC=1, no block
        (b"\x80\xc9\x00\x00", "rr"),  # no SSRC
        (b"\x80\xc8\x00\x01" + bytes(4), "sr"),
        (b"\x81\xc8\x00\x06" + bytes(24), "sr"),
        (b"\x80\xca\x00\x00", "first"),  # SDES first
        (b"\xa0\xc9\x00\x01\x00\x00\x00\x04", "padding"),  # padding on the first packet
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\xa0\xcb\x00\x01\x00\x00\x00\x00", "padding"),
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\xa0\xcb\x00\x01\x00\x00\x00\x03", "padding"),
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\xa0\xcb\x00\x01\x00\x00\x00\x08", "padding"),
        (
            b"\x80\xc9\x00\x01"
            + bytes(8)[:4]
            + b"\xa0\xcb\x00\x00"
            + b"\x80\xc9\x00\x01"
            + bytes(4),
            "padding",
        ),
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\x81\xca\x00\x00", "sdes"),
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\x81\xca\x00\x01" + bytes(4), "sdes"),  # no end item
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\x81\xca\x00\x02" + bytes(4) + b"\x01\x09ab", "sdes"),
        (
            b"\x80\xc9\x00\x01"
            + bytes(4)
            + b"\x81\xca\x00\x03"
            + bytes(4)
            + b"\x00\x00\x00\x00"
            + bytes(4),
            "sdes",
        ),
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\x82\xcb\x00\x01" + bytes(4), "bye"),
        (b"\x80\xc9\x00\x01" + bytes(4) + b"\x81\xcb\x00\x02" + bytes(4) + b"\x09abc", "bye"),
    ],
)
def test_malformed_compound_rejected_whole(data: bytes, reason: str) -> None:
    with pytest.raises(RtpError) as info:
        parse_rtcp(data)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "packet",
    [
        ReceiverReport(1, tuple(ReportBlock(i, 0, 0, 0, 0) for i in range(32))),
        ReceiverReport(1, (ReportBlock(2, 256, 0, 0, 0),)),
        ReceiverReport(1, (ReportBlock(2, 0, 1 << 23, 0, 0),)),
        ReceiverReport(1, (ReportBlock(-1, 0, 0, 0, 0),)),
        SourceDescription((SdesChunk(1, ((1, b"x" * 256),)),)),
        SourceDescription((SdesChunk(1, ((0, b"x"),)),)),
        Goodbye((1,), "x" * 256),
        RtcpOther(204, 0, b"abc"),
    ],
)
def test_serialize_rejects_out_of_range(packet: object) -> None:
    with pytest.raises(RtpError):
        serialize_rtcp([packet])  # type: ignore[list-item]


def test_ntp_helpers() -> None:
    ntp = ntp_timestamp(0.5)
    assert ntp >> 32 == 2208988800
    assert ntp & 0xFFFFFFFF == 1 << 31
    assert ntp_middle32(0x0123456789ABCDEF) == 0x456789AB


_u32 = st.integers(0, 2**32 - 1)
_blocks = st.lists(
    st.builds(
        ReportBlock,
        _u32,
        st.integers(0, 255),
        st.integers(-(1 << 23), (1 << 23) - 1),
        _u32,
        _u32,
        _u32,
        _u32,
    ),
    max_size=3,
).map(tuple)
_packets = st.one_of(
    st.builds(SenderReport, _u32, st.integers(0, 2**64 - 1), _u32, _u32, _u32, _blocks),
    st.builds(ReceiverReport, _u32, _blocks),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                _u32,
                st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=20)), max_size=3).map(
                    tuple
                ),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(Goodbye, st.lists(_u32, max_size=3).map(tuple), st.text(max_size=20)),
)


@given(st.builds(ReceiverReport, _u32, _blocks), st.lists(_packets, max_size=4))
def test_round_trip_property(first: ReceiverReport, rest: list[object]) -> None:
    packets = (first, *rest)
    assert parse_rtcp(serialize_rtcp(packets)) == packets  # type: ignore[arg-type]


@given(st.binary(max_size=200), st.booleans())
def test_parse_raises_only_rtp_error(data: bytes, reduced: bool) -> None:
    try:
        parse_rtcp(data, reduced_size=reduced)
    except RtpError:
        pass
