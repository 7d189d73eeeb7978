"""RFC 4867 payloads: both layouts built by hand from the RFC's bit diagrams, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.codecs import CodecError
from avatar_mf.codecs.amr_payload import (
    AMR_NB_BITS,
    AMR_WB_BITS,
    AmrFrame,
    AmrPayload,
    build_amr,
    parse_amr,
    parse_storage_frame,
    storage_frame,
)


def bits_to_bytes(bits: str) -> bytes:
    bits = bits.replace(" ", "")
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def pattern(n: int, seed: int = 0) -> str:
    """n speech bits d(0)..d(n-1), a non-repeating pattern."""
    return "".join("1" if (i * 7 + seed) % 3 == 0 else "0" for i in range(n))


def frame_of(bits: str, ft: int, q: bool = True) -> AmrFrame:
    return AmrFrame(ft, q, bits_to_bytes(bits))


def test_rfc4867_4_3_5_1_single_frame_bandwidth_efficient() -> None:
    # CMR=15, F=0, FT=4 (AMR 7.4), Q=1, d(0)..d(147), two padding bits.
    d = pattern(148)
    wire = bits_to_bytes("1111" + "0" + "0100" + "1" + d + "00")
    assert len(wire) == 20
    parsed = parse_amr(wire, wideband=False, octet_aligned=False)
    assert parsed == AmrPayload(15, (frame_of(d, 4),))
    assert build_amr(parsed, wideband=False, octet_aligned=False) == wire


def test_two_frames_with_cmr_bandwidth_efficient() -> None:
    # RFC 4867 4.3.5.2 shape: CMR=5 (AMR 7.95 requested), two 7.95 frames, ToC F=1 then F=0.
    d1, d2 = pattern(159, 1), pattern(159, 2)
    wire = bits_to_bytes("0101" + "1" + "0101" + "1" + "0" + "0101" + "1" + d1 + d2)
    parsed = parse_amr(wire, wideband=False, octet_aligned=False)
    assert parsed.cmr == 5
    assert parsed.frames == (frame_of(d1, 5), frame_of(d2, 5))
    assert build_amr(parsed, wideband=False, octet_aligned=False) == wire


def test_wideband_octet_aligned_frames_padded_each() -> None:
    # RFC 4867 4.4.5.1 shape: CMR octet, one ToC octet per frame (F FT Q P P), frames padded.
    d1 = pattern(477, 3)  # 23.85: 477 bits -> 60 octets
    wire = (
        bits_to_bytes("1000" + "0000")  # CMR=8
        + bits_to_bytes("1" + "1000" + "1" + "00")
        + bits_to_bytes("0" + "1111" + "1" + "00")  # NO_DATA, no bits
        + bits_to_bytes(d1)
    )
    parsed = parse_amr(wire, wideband=True, octet_aligned=True)
    assert parsed == AmrPayload(8, (frame_of(d1, 8), AmrFrame(15, True, b"")))
    assert build_amr(parsed, wideband=True, octet_aligned=True) == wire
    # The same frames in the other layout.
    efficient = build_amr(parsed, wideband=True, octet_aligned=False)
    assert efficient == bits_to_bytes("1000" + "1" + "1000" + "1" + "0" + "1111" + "1" + d1)
    assert parse_amr(efficient, wideband=True, octet_aligned=False) == parsed


@pytest.mark.parametrize("wideband", [True, False])
def test_every_frame_type_size(wideband: bool) -> None:
    sizes = AMR_WB_BITS if wideband else AMR_NB_BITS
    for ft, n in enumerate(sizes):
        frame = frame_of(pattern(n, ft), ft)
        for octet in (True, False):
            wire = build_amr(AmrPayload(15, (frame,)), wideband=wideband, octet_aligned=octet)
            expected = 2 + (n + 7) // 8 if octet else (10 + n + 7) // 8
            assert len(wire) == expected
            assert parse_amr(wire, wideband=wideband, octet_aligned=octet).frames == (frame,)


def test_storage_frame_header() -> None:
    frame = frame_of(pattern(477), 8)
    stored = storage_frame(frame)
    assert stored[0] == 0x44 and len(stored) == 61  # 0 1000 1 00
    assert parse_storage_frame(stored, wideband=True) == frame
    with pytest.raises(CodecError):
        parse_storage_frame(stored[:-1], wideband=True)
    with pytest.raises(CodecError):
        parse_storage_frame(b"", wideband=True)


@pytest.mark.parametrize(
    ("wire", "wideband", "octet", "reason"),
    [
        (b"", True, True, "empty"),
        (b"", False, False, "empty"),
        (b"\xf0", True, True, "toc"),  # CMR only
        (b"\xf0\xc4", True, True, "toc"),  # F=1 and nothing after
        (b"\xf0\x44", True, True, "frame_size"),  # FT 8 with no bits
        (b"\xf0\x7c\x00", True, True, "trailing"),  # NO_DATA then an extra octet
        (b"\xf0\x54", True, True, "frame_type"),  # FT 10: future use
        (b"\xf0\x4c" + bytes(5), False, True, "frame_type"),  # AMR FT 9
        (b"\xf0\x74", False, True, "frame_type"),  # AMR FT 14
        (b"\x90\x7c", True, True, "cmr"),  # CMR 9 is not a WB speech mode
        (b"\x80\x7c", False, True, "cmr"),  # CMR 8 is not an AMR speech mode
        (bits_to_bytes("1111" + "1" + "1111" + "1" + "1" + "1111" + "1"), True, False, "toc"),
        (bits_to_bytes("1111" + "0" + "1000" + "1" + "0" * 100), True, False, "frame_size"),
        (bits_to_bytes("1111" + "0" + "1111" + "1") + b"\x00", True, False, "trailing"),
        (bits_to_bytes("1111" + "0" + "1011" + "1"), True, False, "frame_type"),
    ],
)
def test_malformed(wire: bytes, wideband: bool, octet: bool, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        parse_amr(wire, wideband=wideband, octet_aligned=octet)
    assert info.value.reason == reason


def test_build_rejects_inconsistent_frames() -> None:
    with pytest.raises(CodecError):
        build_amr(AmrPayload(15, ()), wideband=True, octet_aligned=True)
    with pytest.raises(CodecError):
        build_amr(AmrPayload(15, (AmrFrame(8, True, b"x"),)), wideband=True, octet_aligned=True)
    with pytest.raises(CodecError):
        build_amr(AmrPayload(12, (AmrFrame(15),)), wideband=True, octet_aligned=False)


@given(st.binary(max_size=130), st.booleans(), st.booleans())
def test_parse_raises_only_codec_error(data: bytes, wideband: bool, octet: bool) -> None:
    try:
        parsed = parse_amr(data, wideband=wideband, octet_aligned=octet)
    except CodecError:
        return
    again = build_amr(parsed, wideband=wideband, octet_aligned=octet)
    assert parse_amr(again, wideband=wideband, octet_aligned=octet) == parsed
    assert len(again) == len(data)
