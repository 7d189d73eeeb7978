"""ARF animation units: byte-exact examples written from the spec, errors, streams."""

from __future__ import annotations

import math
import struct

import pytest

from avatar_mf.arf import (
    ARKIT_BLENDSHAPES,
    ARKIT_INDEX,
    VISEME_INDEX,
    VISEMES,
    ArfDecodeError,
    ArfEncodeError,
    BlendshapeUnit,
    ConfigUnit,
    JointUnit,
    LandmarkUnit,
    UnitStreamDecoder,
    UnitType,
    UnknownUnit,
    decode_unit,
    encode_unit,
    iter_units,
    timestamp_seconds,
)


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# --- worked examples (bytes written by hand from standards.md section 4) -------------------------

# CONFIG, timestamp 0, profile "arf-face-v1" (11 bytes), timescale 1000.0 (float32 0x447A0000).
CONFIG_BYTES = hexbytes(
    "00"  # (unit_type 0 << 1) | reserved 0
    "00000014"  # unit_length 20 = 4 + 1 + 11 + 4
    "00000000"  # timestamp 0
    "0b"  # profile_len 11
    "6172662d666163652d7631"  # "arf-face-v1"
    "447a0000"  # timescale 1000.0
)
CONFIG = ConfigUnit(timestamp=0, profile="arf-face-v1", timescale=1000.0)

# BLENDSHAPE, timestamp 33, set 0, no confidence, jawOpen (24) = 0.5, eyeBlinkLeft (8) = 1.0.
BLENDSHAPE_BYTES = hexbytes(
    "02"  # unit_type 1 << 1
    "00000015"  # unit_length 21 = 9 + 2 * 6
    "00000021"  # timestamp 33
    "0000"  # set_id 0
    "00"  # flags: no confidence
    "0001"  # count_minus1 = 1
    "0018 3f000000"  # index 24, weight 0.5
    "0008 3f800000"  # index 8, weight 1.0
)
BLENDSHAPE = BlendshapeUnit(timestamp=33, set_id=0, indices=(24, 8), weights=(0.5, 1.0))

# BLENDSHAPE with confidence: set 7, index 1, weight 0.25, confidence 1.0.
BLENDSHAPE_CONF_BYTES = hexbytes(
    "02 00000013 00000064 0007 80 0000"  # length 19 = 9 + 10, timestamp 100, flags bit 7
    "0001 3e800000 3f800000"
)
BLENDSHAPE_CONF = BlendshapeUnit(100, 7, (1,), (0.25,), (1.0,))

# JOINT, timestamp 2, skeleton 1, joint 4: identity rotation, translation (1, 2, 3).
JOINT_BYTES = hexbytes(
    "04 0000004b 00000002 0001 00 0000"  # length 75 = 9 + 2 + 64
    "0004"
    "3f800000 00000000 00000000 3f800000"  # row 0: 1 0 0 tx=1
    "00000000 3f800000 00000000 40000000"  # row 1: 0 1 0 ty=2
    "00000000 00000000 3f800000 40400000"  # row 2: 0 0 1 tz=3
    "00000000 00000000 00000000 3f800000"  # row 3: 0 0 0 1
)
TRANSLATION_123 = (1.0, 0, 0, 1.0, 0, 1.0, 0, 2.0, 0, 0, 1.0, 3.0, 0, 0, 0, 1.0)
JOINT = JointUnit(2, 1, (4,), (TRANSLATION_123,))

# LANDMARK, 3D with confidence (flags 0x60): landmark 5 at (0.5, -0.5, 0.0), confidence 1.0.
LANDMARK_BYTES = hexbytes(
    "06 0000001b 00000003 0002 60 0000"  # length 27 = 9 + 2 + 12 + 4
    "0005 3f000000 bf000000 00000000 3f800000"
)
LANDMARK = LandmarkUnit(3, 2, True, (5,), ((0.5, -0.5, 0.0),), None, (1.0,))

# LANDMARK, 2D with velocity (flags 0x80): landmark 1 at (0.25, 0.75) moving (1.0, -1.0).
LANDMARK_2D_BYTES = hexbytes(
    "06 0000001b 00000004 0003 80 0000"  # length 27 = 9 + 2 + 8 + 8
    "0001 3e800000 3f400000 3f800000 bf800000"
)
LANDMARK_2D = LandmarkUnit(4, 3, False, (1,), ((0.25, 0.75),), ((1.0, -1.0),))

# An unknown unit type 5: header byte 5 << 1 = 0x0a.
UNKNOWN_BYTES = hexbytes("0a 00000006 00000009 abcd")
UNKNOWN = UnknownUnit(5, hexbytes("00000009 abcd"))

WORKED = [
    (CONFIG, CONFIG_BYTES),
    (BLENDSHAPE, BLENDSHAPE_BYTES),
    (BLENDSHAPE_CONF, BLENDSHAPE_CONF_BYTES),
    (JOINT, JOINT_BYTES),
    (LANDMARK, LANDMARK_BYTES),
    (LANDMARK_2D, LANDMARK_2D_BYTES),
    (UNKNOWN, UNKNOWN_BYTES),
]


@pytest.mark.parametrize(("unit", "wire"), WORKED, ids=lambda v: type(v).__name__)
def test_worked_example_encodes_to_exact_bytes(unit: object, wire: bytes) -> None:
    assert encode_unit(unit) == wire  # type: ignore[arg-type]


@pytest.mark.parametrize(("unit", "wire"), WORKED, ids=lambda v: type(v).__name__)
def test_worked_example_decodes(unit: object, wire: bytes) -> None:
    assert decode_unit(wire) == unit
    assert decode_unit(bytearray(wire)) == unit
    assert decode_unit(memoryview(wire)) == unit


def test_config_example_is_25_bytes_and_names_its_fields() -> None:
    assert len(CONFIG_BYTES) == 25
    unit = decode_unit(CONFIG_BYTES)
    assert isinstance(unit, ConfigUnit)
    assert unit.unit_type == UnitType.CONFIG
    assert (unit.profile, unit.timescale, unit.timestamp) == ("arf-face-v1", 1000.0, 0)


def test_reserved_header_bit_and_undefined_flag_bits_are_ignored() -> None:
    wire = bytearray(BLENDSHAPE_BYTES)
    wire[0] |= 0x01  # reserved bit
    wire[5 + 6] |= 0x7F  # every flag bit except bit 7 (confidence)
    assert decode_unit(bytes(wire)) == BLENDSHAPE


def test_unknown_types_decode_and_never_fail() -> None:
    for unit_type in range(4, 128):
        wire = bytes([unit_type << 1]) + struct.pack(">I", 3) + b"xyz"
        assert decode_unit(wire) == UnknownUnit(unit_type, b"xyz")
    assert decode_unit(bytes([0xFE, 0, 0, 0, 0])) == UnknownUnit(127, b"")


def test_dense_blendshape_unit_uses_positions_as_indices() -> None:
    weights = [i / 100 for i in range(len(ARKIT_BLENDSHAPES))]
    unit = BlendshapeUnit.dense(7, weights, set_id=3)
    assert unit.indices == tuple(range(52))
    assert len(encode_unit(unit)) == 5 + 9 + 52 * 6
    decoded = decode_unit(encode_unit(unit))
    assert isinstance(decoded, BlendshapeUnit)
    assert decoded.weights == tuple(struct.unpack(">52f", struct.pack(">52f", *weights)))


def test_large_entry_counts_round_trip() -> None:
    # Over the cached Struct size: the uncached path.
    count = 1500
    unit = BlendshapeUnit(1, 0, tuple(range(count)), tuple(float(i % 7) for i in range(count)))
    assert decode_unit(encode_unit(unit)) == unit
    most = BlendshapeUnit(1, 0, (0,) * 65536, (0.0,) * 65536)
    assert decode_unit(encode_unit(most)) == most


def test_timestamp_seconds() -> None:
    assert timestamp_seconds(BlendshapeUnit(1500, 0, (0,), (0.0,)), 1000.0) == 1.5
    assert timestamp_seconds(BLENDSHAPE, CONFIG) == 0.033
    with pytest.raises(ValueError):
        timestamp_seconds(BLENDSHAPE, 0.0)
    with pytest.raises(ValueError):
        timestamp_seconds(BLENDSHAPE, math.nan)


# --- malformed messages --------------------------------------------------------------------------


def decode_error(wire: bytes) -> ArfDecodeError:
    with pytest.raises(ArfDecodeError) as info:
        decode_unit(wire)
    assert isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize("wire", [b"", b"\x02", b"\x02\x00\x00\x00"])
def test_short_header_is_truncated(wire: bytes) -> None:
    assert decode_error(wire).code == "truncated"


def test_unit_length_larger_than_the_message_is_truncated() -> None:
    wire = bytearray(BLENDSHAPE_BYTES)
    wire[1:5] = struct.pack(">I", 22)
    assert decode_error(bytes(wire)).code == "truncated"
    assert decode_error(BLENDSHAPE_BYTES[:-1]).code == "truncated"
    assert decode_error(UNKNOWN_BYTES[:-1]).code == "truncated"


def test_unit_length_smaller_than_the_message_is_trailing_bytes() -> None:
    wire = bytearray(BLENDSHAPE_BYTES)
    wire[1:5] = struct.pack(">I", 20)
    assert decode_error(bytes(wire)).code == "trailing-bytes"
    # Two units in one message: exactly one unit per message.
    assert decode_error(CONFIG_BYTES + BLENDSHAPE_BYTES).code == "trailing-bytes"
    assert decode_error(UNKNOWN_BYTES + b"\x00").code == "trailing-bytes"


def test_entries_truncated_inside_a_consistent_unit_length() -> None:
    # count_minus1 says 3 entries, the payload (and unit_length) holds 2.
    wire = bytearray(BLENDSHAPE_BYTES)
    wire[5 + 7 : 5 + 9] = struct.pack(">H", 2)
    error = decode_error(bytes(wire))
    assert error.code == "short-payload"
    assert "needs 27" in error.message


def test_payload_longer_than_its_entries_is_extra_payload() -> None:
    wire = BLENDSHAPE_BYTES[:1] + struct.pack(">I", 23) + BLENDSHAPE_BYTES[5:] + b"\x00\x00"
    assert decode_error(wire).code == "extra-payload"


@pytest.mark.parametrize(
    "wire",
    [
        hexbytes("00 00000000"),  # CONFIG with an empty payload
        hexbytes("00 00000004 00000000"),  # CONFIG without profile_len
        hexbytes("00 00000005 00000000 00"),  # CONFIG without timescale
        hexbytes("02 00000004 00000000"),  # BLENDSHAPE without set/flags/count
        hexbytes("04 00000009 00000000 0000 00 0000"),  # JOINT header, no entry
        hexbytes("06 0000000b 00000000 0000 20 0000 0001"),  # 3D LANDMARK, index only
    ],
)
def test_payload_too_short_for_its_fields(wire: bytes) -> None:
    assert decode_error(wire).code == "short-payload"


def test_velocity_flag_changes_the_joint_entry_size() -> None:
    wire = bytearray(JOINT_BYTES)
    wire[5 + 6] = 0x80  # velocity present, but no velocity bytes
    assert decode_error(bytes(wire)).code == "short-payload"


def test_profile_must_be_utf8() -> None:
    wire = CONFIG_BYTES[:10] + b"\xff" + CONFIG_BYTES[11:]
    assert decode_error(wire).code == "bad-profile"


@pytest.mark.parametrize("timescale", [0.0, -1.0, math.inf, math.nan])
def test_timescale_must_be_finite_and_positive(timescale: float) -> None:
    wire = CONFIG_BYTES[:-4] + struct.pack(">f", timescale)
    assert decode_error(wire).code == "bad-timescale"


# --- encoding and construction errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "unit",
    [
        BlendshapeUnit(0, 0, (70000,), (0.0,)),  # index over uint16
        BlendshapeUnit(2**32, 0, (0,), (0.0,)),  # timestamp over uint32
        BlendshapeUnit(0, -1, (0,), (0.0,)),  # negative set id
        BlendshapeUnit(0, 0, (0,), (1e39,)),  # over float32 range
        JointUnit(0, 0, (1,), ((1e300,) * 16,)),
        LandmarkUnit(0, 0, False, (1,), ((0.0, 0.0),), None, (-1e39,)),
        ConfigUnit(0, "x" * 256, 1.0),  # profile over 255 bytes
        ConfigUnit(0, "arf-face-v1", 1e-50),  # rounds to 0 in float32
        ConfigUnit(0, "arf-face-v1", 1e39),  # rounds to infinity in float32
    ],
)
def test_values_that_do_not_fit_raise_arf_encode_error(unit: object) -> None:
    with pytest.raises(ArfEncodeError):
        encode_unit(unit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: BlendshapeUnit(0, 0, (), ()),
        lambda: BlendshapeUnit(0, 0, (1, 2), (0.0,)),
        lambda: BlendshapeUnit(0, 0, (1,), (0.0,), (1.0, 1.0)),
        lambda: BlendshapeUnit(0, 0, (0,) * 65537, (0.0,) * 65537),
        lambda: JointUnit(0, 0, (1,), ((0.0,) * 15,)),
        lambda: JointUnit(0, 0, (1,), ((0.0,) * 16,), ((0.0,) * 17,)),
        lambda: JointUnit(0, 0, (1, 2), ((0.0,) * 16,)),
        lambda: LandmarkUnit(0, 0, True, (1,), ((0.0, 0.0),)),
        lambda: LandmarkUnit(0, 0, False, (1,), ((0.0, 0.0),), ((0.0, 0.0, 0.0),)),
        lambda: LandmarkUnit(0, 0, False, (1,), ((0.0, 0.0),), None, ()),
        lambda: ConfigUnit(0, "p", 0.0),
        lambda: ConfigUnit(0, "p", math.nan),
        lambda: UnknownUnit(1, b""),
        lambda: UnknownUnit(128, b""),
    ],
)
def test_inconsistent_units_cannot_be_built(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


# --- streams -------------------------------------------------------------------------------------

STREAM = CONFIG_BYTES + UNKNOWN_BYTES + BLENDSHAPE_BYTES + JOINT_BYTES + LANDMARK_BYTES
STREAM_UNITS = [CONFIG, BLENDSHAPE, JOINT, LANDMARK]


def test_iter_units_skips_unknown_types() -> None:
    assert list(iter_units(STREAM)) == STREAM_UNITS
    assert list(iter_units(b"")) == []
    assert list(iter_units(UNKNOWN_BYTES * 3)) == []


def test_iter_units_yields_complete_units_then_raises_on_truncation() -> None:
    seen = []
    with pytest.raises(ArfDecodeError) as info:
        for unit in iter_units(STREAM[:-3]):
            seen.append(unit)
    assert seen == STREAM_UNITS[:-1]
    assert info.value.code == "truncated"
    assert info.value.offset == len(STREAM) - len(LANDMARK_BYTES)
    with pytest.raises(ArfDecodeError, match="truncated"):
        list(iter_units(STREAM + b"\x02\x00"))


def test_iter_units_reports_the_offset_of_a_malformed_unit() -> None:
    bad = CONFIG_BYTES[:-4] + struct.pack(">f", 0.0)
    with pytest.raises(ArfDecodeError) as info:
        list(iter_units(BLENDSHAPE_BYTES + bad))
    assert (info.value.code, info.value.offset) == ("bad-timescale", len(BLENDSHAPE_BYTES))


def test_stream_decoder_byte_by_byte() -> None:
    decoder = UnitStreamDecoder()
    units = []
    for i in range(len(STREAM)):
        units.extend(decoder.feed(STREAM[i : i + 1]))
    decoder.close()
    assert units == STREAM_UNITS
    assert decoder.pending == 0
    assert decoder.config == CONFIG


def test_stream_decoder_in_one_block_and_in_halves() -> None:
    decoder = UnitStreamDecoder()
    assert decoder.config is None
    assert decoder.feed(STREAM) == STREAM_UNITS
    half = len(BLENDSHAPE_BYTES) // 2
    assert decoder.feed(BLENDSHAPE_BYTES[:half]) == []
    assert decoder.pending == half
    assert decoder.feed(BLENDSHAPE_BYTES[half:]) == [BLENDSHAPE]


def test_stream_decoder_close_inside_a_unit_is_truncated() -> None:
    decoder = UnitStreamDecoder()
    decoder.feed(CONFIG_BYTES + BLENDSHAPE_BYTES[:7])
    with pytest.raises(ArfDecodeError) as info:
        decoder.close()
    assert (info.value.code, info.value.offset) == ("truncated", len(CONFIG_BYTES))


def test_stream_decoder_refuses_a_huge_unit_length_at_its_header() -> None:
    huge = b"\x02" + struct.pack(">I", 0xFFFFFFFF)
    decoder = UnitStreamDecoder(max_unit_length=1000)
    with pytest.raises(ArfDecodeError) as info:
        decoder.feed(huge)
    assert (info.value.code, info.value.offset) == ("unit-too-large", 0)
    # After good units, they are returned first; the error comes with the next call.
    decoder = UnitStreamDecoder(max_unit_length=1000)
    assert decoder.feed(CONFIG_BYTES + huge) == [CONFIG]
    assert decoder.pending == len(huge)
    with pytest.raises(ArfDecodeError) as info:
        decoder.feed(b"")
    assert (info.value.code, info.value.offset) == ("unit-too-large", len(CONFIG_BYTES))


def test_stream_decoder_returns_good_units_before_raising() -> None:
    decoder = UnitStreamDecoder()
    bad = BLENDSHAPE_BYTES[:1] + struct.pack(">I", 23) + BLENDSHAPE_BYTES[5:] + b"\x00\x00"
    assert decoder.feed(CONFIG_BYTES + bad) == [CONFIG]
    with pytest.raises(ArfDecodeError) as info:
        decoder.feed(BLENDSHAPE_BYTES)
    assert (info.value.code, info.value.offset) == ("extra-payload", len(CONFIG_BYTES))
    with pytest.raises(ArfDecodeError):  # final
        decoder.close()


# --- name sets -----------------------------------------------------------------------------------

# standards.md section 6, verbatim order (51 names: MediaPipe's order after "_neutral").
SECTION_6 = """browDownLeft, browDownRight,
  browInnerUp, browOuterUpLeft, browOuterUpRight, cheekPuff, cheekSquintLeft, cheekSquintRight,
  eyeBlinkLeft, eyeBlinkRight, eyeLookDownLeft, eyeLookDownRight, eyeLookInLeft, eyeLookInRight,
  eyeLookOutLeft, eyeLookOutRight, eyeLookUpLeft, eyeLookUpRight, eyeSquintLeft, eyeSquintRight,
  eyeWideLeft, eyeWideRight, jawForward, jawLeft, jawOpen, jawRight, mouthClose, mouthDimpleLeft,
  mouthDimpleRight, mouthFrownLeft, mouthFrownRight, mouthFunnel, mouthLeft, mouthLowerDownLeft,
  mouthLowerDownRight, mouthPressLeft, mouthPressRight, mouthPucker, mouthRight, mouthRollLower,
  mouthRollUpper, mouthShrugLower, mouthShrugUpper, mouthSmileLeft, mouthSmileRight,
  mouthStretchLeft, mouthStretchRight, mouthUpperUpLeft, mouthUpperUpRight, noseSneerLeft,
  noseSneerRight"""


def test_arkit_blendshapes_follow_section_6_then_tongue_out() -> None:
    listed = tuple(name.strip() for name in SECTION_6.split(","))
    assert len(listed) == 51
    assert ARKIT_BLENDSHAPES[:51] == listed
    assert ARKIT_BLENDSHAPES[51] == "tongueOut"
    assert len(ARKIT_BLENDSHAPES) == len(set(ARKIT_BLENDSHAPES)) == 52
    assert ARKIT_INDEX["jawOpen"] == 24
    assert ARKIT_INDEX["eyeBlinkLeft"] == 8
    assert all(ARKIT_BLENDSHAPES[i] == name for name, i in ARKIT_INDEX.items())


def test_visemes() -> None:
    assert VISEMES == (
        "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou"
    )  # fmt: skip
    assert VISEME_INDEX["sil"] == 0
    assert VISEME_INDEX["ou"] == 14
