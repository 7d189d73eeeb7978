"""Property tests: every unit type round-trips; hostile bytes raise only ArfDecodeError."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatar_mf.arf import (
    ArfDecodeError,
    BlendshapeUnit,
    ConfigUnit,
    JointUnit,
    LandmarkUnit,
    Unit,
    UnitStreamDecoder,
    UnknownUnit,
    decode_unit,
    encode_unit,
    iter_units,
)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FLOAT32_MAX = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]

uint32 = st.integers(0, 2**32 - 1)
uint16 = st.integers(0, 2**16 - 1)
# Any finite double within float32 range: the wire keeps its float32 rounding.
finite = st.floats(-FLOAT32_MAX, FLOAT32_MAX, allow_nan=False, allow_infinity=False)


def f32(value: float) -> float:
    rounded: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return rounded


def f32_all(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(f32(v) for v in values)


counts = st.integers(1, 40)


@st.composite
def blendshape_units(draw: st.DrawFn) -> BlendshapeUnit:
    n = draw(counts)
    confidence = draw(st.booleans())
    return BlendshapeUnit(
        draw(uint32),
        draw(uint16),
        tuple(draw(st.lists(uint16, min_size=n, max_size=n))),
        tuple(draw(st.lists(finite, min_size=n, max_size=n))),
        tuple(draw(st.lists(finite, min_size=n, max_size=n))) if confidence else None,
    )


def vectors(n: int, size: int) -> st.SearchStrategy[tuple[tuple[float, ...], ...]]:
    vector = st.lists(finite, min_size=size, max_size=size).map(tuple)
    return st.lists(vector, min_size=n, max_size=n).map(tuple)


@st.composite
def joint_units(draw: st.DrawFn) -> JointUnit:
    n = draw(st.integers(1, 4))
    return JointUnit(
        draw(uint32),
        draw(uint16),
        tuple(draw(st.lists(uint16, min_size=n, max_size=n))),
        draw(vectors(n, 16)),
        draw(st.none() | vectors(n, 16)),
    )


@st.composite
def landmark_units(draw: st.DrawFn) -> LandmarkUnit:
    n = draw(st.integers(1, 12))
    is_3d = draw(st.booleans())
    dims = 3 if is_3d else 2
    confidences = st.lists(finite, min_size=n, max_size=n).map(tuple)
    return LandmarkUnit(
        draw(uint32),
        draw(uint16),
        is_3d,
        tuple(draw(st.lists(uint16, min_size=n, max_size=n))),
        draw(vectors(n, dims)),
        draw(st.none() | vectors(n, dims)),
        draw(st.none() | confidences),
    )


# Profiles up to 255 UTF-8 bytes; timescales that stay positive and finite in float32.
profiles = st.text(max_size=60).filter(lambda p: len(p.encode()) <= 255)
timescales = st.floats(1e-30, 1e30, allow_nan=False)
config_units = st.builds(ConfigUnit, uint32, profiles, timescales)
unknown_units = st.builds(UnknownUnit, st.integers(4, 127), st.binary(max_size=64))
known_units = st.one_of(config_units, blendshape_units(), joint_units(), landmark_units())
any_units = st.one_of(known_units, unknown_units)


def rounded(unit: Unit) -> Unit:
    """What the wire gives back: every float rounded to float32."""
    if isinstance(unit, ConfigUnit):
        return ConfigUnit(unit.timestamp, unit.profile, f32(unit.timescale))
    if isinstance(unit, BlendshapeUnit):
        confidences = None if unit.confidences is None else f32_all(unit.confidences)
        return BlendshapeUnit(
            unit.timestamp, unit.set_id, unit.indices, f32_all(unit.weights), confidences
        )
    if isinstance(unit, JointUnit):
        velocities = None if unit.velocities is None else tuple(map(f32_all, unit.velocities))
        return JointUnit(
            unit.timestamp,
            unit.joint_set_id,
            unit.indices,
            tuple(map(f32_all, unit.matrices)),
            velocities,
        )
    if isinstance(unit, LandmarkUnit):
        return LandmarkUnit(
            unit.timestamp,
            unit.set_id,
            unit.is_3d,
            unit.indices,
            tuple(map(f32_all, unit.coords)),
            None if unit.velocities is None else tuple(map(f32_all, unit.velocities)),
            None if unit.confidences is None else f32_all(unit.confidences),
        )
    return unit


@FAST
@given(config_units)
def test_config_round_trip(unit: ConfigUnit) -> None:
    assert decode_unit(encode_unit(unit)) == rounded(unit)


@FAST
@given(blendshape_units())
def test_blendshape_round_trip(unit: BlendshapeUnit) -> None:
    wire = encode_unit(unit)
    assert len(wire) == 5 + 9 + len(unit.indices) * (6 if unit.confidences is None else 10)
    assert decode_unit(wire) == rounded(unit)


@FEW
@given(joint_units())
def test_joint_round_trip(unit: JointUnit) -> None:
    assert decode_unit(encode_unit(unit)) == rounded(unit)


@FEW
@given(landmark_units())
def test_landmark_round_trip(unit: LandmarkUnit) -> None:
    assert decode_unit(encode_unit(unit)) == rounded(unit)


@FAST
@given(unknown_units)
def test_unknown_round_trip(unit: UnknownUnit) -> None:
    assert decode_unit(encode_unit(unit)) == unit


@FAST
@given(blendshape_units())
def test_float32_values_are_exact(unit: BlendshapeUnit) -> None:
    once = rounded(unit)
    assert decode_unit(encode_unit(once)) == once
    assert encode_unit(once) == encode_unit(unit)


@FEW
@given(st.lists(any_units, max_size=6), st.data())
def test_streams_skip_unknown_units_in_any_split(units: list[Unit], data: st.DataObject) -> None:
    stream = b"".join(encode_unit(u) for u in units)
    expected = [rounded(u) for u in units if not isinstance(u, UnknownUnit)]
    assert list(iter_units(stream)) == expected
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = UnitStreamDecoder()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoded.extend(decoder.feed(stream[start:end]))
    decoder.close()
    assert decoded == expected


@FEW
@given(st.lists(known_units, min_size=1, max_size=3), st.data())
def test_truncated_streams_raise(units: list[Unit], data: st.DataObject) -> None:
    stream = b"".join(encode_unit(u) for u in units)
    cut = data.draw(st.integers(1, len(stream) - 1))
    try:
        list(iter_units(stream[:cut]))
    except ArfDecodeError as exc:
        assert exc.code == "truncated"
    else:  # the cut fell on a unit boundary
        boundaries = {0}
        for unit in units:
            boundaries.add(max(boundaries) + len(encode_unit(unit)))
        assert cut in boundaries


@FAST
@given(st.binary(max_size=300))
def test_decode_unit_arbitrary_bytes_raises_only_arf_decode_error(data: bytes) -> None:
    try:
        decode_unit(data)
    except ArfDecodeError:
        pass


@FAST
@given(any_units, st.data())
def test_mutated_units_raise_only_arf_decode_error(unit: Unit, data: st.DataObject) -> None:
    wire = bytearray(encode_unit(unit))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "grow"]))
        if action == "flip" and wire:
            at = data.draw(st.integers(0, len(wire) - 1))
            wire[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del wire[data.draw(st.integers(0, len(wire))) :]
        else:
            wire += data.draw(st.binary(min_size=1, max_size=8))
    try:
        decode_unit(bytes(wire))
    except ArfDecodeError:
        pass


@FAST
@given(st.binary(max_size=300), st.integers(1, 64))
def test_streams_of_arbitrary_bytes_raise_only_arf_decode_error(data: bytes, block: int) -> None:
    try:
        list(iter_units(data))
    except ArfDecodeError:
        pass
    decoder = UnitStreamDecoder(max_unit_length=256)
    try:
        for start in range(0, len(data), block):
            decoder.feed(data[start : start + block])
        decoder.close()
    except ArfDecodeError:
        pass
