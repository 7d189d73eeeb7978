"""check_unit (arf/units.py) accepts and refuses exactly what decode_unit does, with the same
error code, and tells CONFIG units apart: the relay checks each unit with it instead of
decoding it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from avatar_mf.arf import ArfDecodeError, BlendshapeUnit, ConfigUnit, check_unit, decode_unit
from avatar_mf.arf.units import FLAG_BLENDSHAPE_CONFIDENCE, HEADER_SIZE

from .test_units_properties import FAST, any_units, encode_unit


def outcome(check: bool, data: bytes) -> tuple[str, object]:
    try:
        result = check_unit(data) if check else isinstance(decode_unit(data), ConfigUnit)
    except ArfDecodeError as exc:
        return "error", exc.code
    return "ok", result


@FAST
@given(any_units, st.data())
def test_check_unit_agrees_with_decode_unit(unit: object, data: st.DataObject) -> None:
    wire = encode_unit(unit)  # type: ignore[arg-type]
    variants = [wire]
    cut = data.draw(st.integers(0, len(wire)))
    variants.append(wire[:cut])  # truncated
    variants.append(wire + data.draw(st.binary(min_size=1, max_size=8)))  # trailing bytes
    at = data.draw(st.integers(0, len(wire) - 1))
    flipped = bytearray(wire)
    flipped[at] ^= data.draw(st.integers(1, 255))  # any header or payload byte changed
    variants.append(bytes(flipped))
    for variant in variants:
        assert outcome(True, variant) == outcome(False, variant)


@FAST
@given(st.binary(max_size=80))
def test_check_unit_agrees_on_any_bytes(data: bytes) -> None:
    assert outcome(True, data) == outcome(False, data)


def test_a_blendshape_unit_with_a_wrong_count_is_refused_like_decode_unit() -> None:
    wire = bytearray(encode_unit(BlendshapeUnit(0, 0, (1, 2, 3), (0.1, 0.2, 0.3))))
    wire[HEADER_SIZE + 6] ^= FLAG_BLENDSHAPE_CONFIDENCE  # flags: confidences announced, absent
    assert outcome(True, bytes(wire)) == outcome(False, bytes(wire))
    assert outcome(True, bytes(wire))[0] == "error"
    assert check_unit(encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0))) is True
