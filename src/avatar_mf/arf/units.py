"""ARF Avatar Animation Units: the binary codec of the ``3gpp-ar-animation`` data channel.

Implements the Avatar Animation Unit (AAU) syntax of ISO/IEC 23090-39 (MPEG Avatar
Representation Format, draft) as carried by the TS 26.264 ``3gpp-ar-animation`` data channel
subprotocol (CR 0017, Feb 2026, unsettled): "binary, ordered, exactly one ARF animation sample
per message". All fields are big-endian:

* unit header: 1 byte ``(unit_type << 1) | reserved``, then ``uint32 unit_length`` (the number
  of payload bytes that follow the 5-byte header);
* unit types 0 CONFIG, 1 BLENDSHAPE, 2 JOINT, 3 LANDMARK; unknown types MUST be skipped;
* every payload starts with ``uint32 timestamp`` in ticks (``timescale`` ticks per second, from
  the CONFIG unit, which is the first unit of a stream);
* CONFIG: timestamp, ``uint8 profile_len``, profile bytes, ``float32 timescale``;
* BLENDSHAPE: timestamp, ``uint16 set_id``, flags (bit 7: confidence present),
  ``uint16 count_minus1``, per entry ``uint16 index, float32 weight [, float32 confidence]``;
* JOINT: timestamp, ``uint16 joint_set_id``, flags (bit 7: velocity present),
  ``uint16 count_minus1``, per entry ``uint16 joint_index, float32[16] matrix`` (row-major,
  translation in the last column) ``[, float32[16] velocity]``;
* LANDMARK: timestamp, ``uint16 set_id``, flags (bit 7 velocity, bit 6 confidence, bit 5
  is_3d), ``uint16 count_minus1``, per entry ``uint16 index, float32[2|3] coords
  [, float32[2|3] velocity] [, float32 confidence]``.

Choices where the draft leaves room (relied on by tests, listed in docs/protocol.md):

* Strict framing. A message holds exactly one unit: fewer bytes than ``5 + unit_length`` is
  ``truncated``, more is ``trailing-bytes``. For the four known types the payload must be
  exactly as long as its fields and entries: ``short-payload`` / ``extra-payload`` otherwise.
* The reserved header bit and the flag bits the draft does not define are ignored on input and
  written as 0. Unknown unit types (4..127) decode to :class:`UnknownUnit`; :func:`decode_unit`
  never fails on them, :func:`iter_units` and :class:`UnitStreamDecoder` skip them.
* The CONFIG profile is UTF-8 (``bad-profile`` otherwise) and the timescale a finite positive
  float32 (``bad-timescale`` otherwise), so :func:`timestamp_seconds` never divides by zero.
* Units hold parallel tuples (``indices``, ``weights`` ...) instead of one object per entry:
  decoding a 52-entry BLENDSHAPE unit is a single ``struct`` call and two slices.
* Float values (weights, matrices, coordinates) are not range checked: NaN and infinities pass
  through, as in any float32 stream. Weights of ARKit-style sets are nominally 0..1.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any, Final, TypeAlias


class UnitType(IntEnum):
    """The unit types the draft defines (7 bits on the wire)."""

    CONFIG = 0
    BLENDSHAPE = 1
    JOINT = 2
    LANDMARK = 3


#: Bytes of the unit header: type byte + uint32 unit_length.
HEADER_SIZE: Final = 5
#: Largest unit type the 7-bit field can carry.
MAX_UNIT_TYPE: Final = 0x7F
#: Most entries one BLENDSHAPE / JOINT / LANDMARK unit can hold (uint16 count_minus1).
MAX_ENTRIES: Final = 0x10000
#: Longest CONFIG profile name in bytes (uint8 profile_len).
MAX_PROFILE_BYTES: Final = 0xFF
#: Default bound on one unit's payload in :class:`UnitStreamDecoder` (a JOINT unit with 65536
#: entries and velocities is about 8.4 MB; real units are a few kB).
DEFAULT_MAX_UNIT_LENGTH: Final = 16 * 1024 * 1024

FLAG_BLENDSHAPE_CONFIDENCE: Final = 0x80
FLAG_JOINT_VELOCITY: Final = 0x80
FLAG_LANDMARK_VELOCITY: Final = 0x80
FLAG_LANDMARK_CONFIDENCE: Final = 0x40
FLAG_LANDMARK_3D: Final = 0x20

_HEADER = struct.Struct(">BI")
_CONFIG_HEAD = struct.Struct(">IB")  # timestamp, profile_len
_FLOAT32 = struct.Struct(">f")
_SET_HEAD = struct.Struct(">IHBH")  # timestamp, set id, flags, count_minus1
_SET_PREFIX = struct.Struct(">BIIHBH")  # unit header + _SET_HEAD, for encoding
_SET_HEAD_SIZE: Final = _SET_HEAD.size  # 9
_MATRIX_SIZE: Final = 16
# check_unit's fast path for BLENDSHAPE units: the type as a plain int, the smallest unit,
# and the bytes of one entry (index + weight, + confidence with the flag).
_BLENDSHAPE: Final = int(UnitType.BLENDSHAPE)
_BLENDSHAPE_PREFIX = _SET_PREFIX
_BLENDSHAPE_MIN: Final = HEADER_SIZE + _SET_HEAD_SIZE
_BLENDSHAPE_ENTRY_1: Final = 2 + 4
_BLENDSHAPE_ENTRY_2: Final = 2 + 4 * 2

# Entry blocks are packed with one Struct per (floats per entry, entry count): ">" + "H<k>f" * n.
# Structs for common counts (52 blendshapes, 65 joints, 478 landmarks) are cached; a cached
# Struct costs a few dozen bytes per entry, so very large counts are compiled on each use.
_CACHED_ENTRY_COUNT: Final = 512


@lru_cache(maxsize=128)
def _cached_entries(floats: int, count: int) -> struct.Struct:
    return struct.Struct(">" + f"H{floats}f" * count)


def _entries(floats: int, count: int) -> struct.Struct:
    if count <= _CACHED_ENTRY_COUNT:
        return _cached_entries(floats, count)
    return struct.Struct(">" + f"H{floats}f" * count)


# --- errors ----------------------------------------------------------------------------------


class ArfDecodeError(ValueError):
    """A message or stream that is not a valid animation unit.

    ``code`` is short and machine readable (``truncated``, ``trailing-bytes``,
    ``short-payload``, ``extra-payload``, ``bad-profile``, ``bad-timescale``,
    ``unit-too-large``); ``message`` says what was wrong; ``offset`` is where in the message or
    stream the offending unit starts.
    """

    code: str
    message: str
    offset: int

    def __init__(self, code: str, message: str, *, offset: int = 0) -> None:
        self.code = code
        self.message = message
        self.offset = offset
        super().__init__(f"{code}: {message}")


class ArfEncodeError(ValueError):
    """A unit whose values do not fit the wire format (a uint16 index over 65535, a float too
    large for float32, a profile over 255 bytes ...)."""


# --- units -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigUnit:
    """CONFIG: opens a stream; names the animation profile and the tick rate."""

    #: Ticks (uint32).
    timestamp: int
    #: Animation profile, e.g. ``arf-face-v1`` (at most 255 UTF-8 bytes).
    profile: str
    #: Ticks per second (float32, finite, > 0).
    timescale: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.timescale) and self.timescale > 0):
            raise ValueError(f"timescale must be finite and > 0, not {self.timescale!r}")

    @property
    def unit_type(self) -> int:
        return UnitType.CONFIG


@dataclass(frozen=True, slots=True)
class BlendshapeUnit:
    """BLENDSHAPE: weights of blendshapes of one blendshape set, as parallel tuples.

    Entry ``i`` is (``indices[i]``, ``weights[i]``[, ``confidences[i]``]). ``indices`` refer to
    the blendshapes of set ``set_id`` declared in the avatar's ``arf.json`` (for an ARKit-style
    set, the positions in :data:`avatar_mf.arf.blendshapes.ARKIT_BLENDSHAPES`).
    """

    #: Ticks (uint32).
    timestamp: int
    #: Blendshape set id (uint16), as declared in ``arf.json``.
    set_id: int
    #: Blendshape index per entry (uint16); 1 to 65536 entries.
    indices: tuple[int, ...]
    #: Weight per entry (float32).
    weights: tuple[float, ...]
    #: Confidence per entry (float32), or ``None`` when absent (flags bit 7 clear).
    confidences: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        count = len(self.indices)
        if not 1 <= count <= MAX_ENTRIES:
            raise ValueError(f"a unit has 1 to {MAX_ENTRIES} entries, not {count}")
        if len(self.weights) != count:
            raise ValueError(f"{count} indices but {len(self.weights)} weights")
        if self.confidences is not None and len(self.confidences) != count:
            raise ValueError(f"{count} indices but {len(self.confidences)} confidences")

    @classmethod
    def dense(cls, timestamp: int, weights: Sequence[float], *, set_id: int = 0) -> BlendshapeUnit:
        """A unit with one entry per blendshape of the set: ``indices`` are 0..len-1."""
        return cls(timestamp, set_id, tuple(range(len(weights))), tuple(weights))

    @property
    def unit_type(self) -> int:
        return UnitType.BLENDSHAPE


#: A 4x4 matrix as 16 floats, row-major (translation in elements 3, 7, 11).
Matrix4: TypeAlias = tuple[float, ...]


@dataclass(frozen=True, slots=True)
class JointUnit:
    """JOINT: local transforms of joints of one skeleton, as parallel tuples."""

    #: Ticks (uint32).
    timestamp: int
    #: Skeleton / joint set id (uint16), as declared in ``arf.json``.
    joint_set_id: int
    #: Joint index per entry (uint16); 1 to 65536 entries.
    indices: tuple[int, ...]
    #: Local matrix per entry: 16 float32, row-major, translation in the last column.
    matrices: tuple[Matrix4, ...]
    #: Velocity per entry (16 float32), or ``None`` when absent (flags bit 7 clear).
    velocities: tuple[Matrix4, ...] | None = None

    def __post_init__(self) -> None:
        count = len(self.indices)
        if not 1 <= count <= MAX_ENTRIES:
            raise ValueError(f"a unit has 1 to {MAX_ENTRIES} entries, not {count}")
        _check_vectors("matrices", self.matrices, count, _MATRIX_SIZE)
        if self.velocities is not None:
            _check_vectors("velocities", self.velocities, count, _MATRIX_SIZE)

    @property
    def unit_type(self) -> int:
        return UnitType.JOINT


@dataclass(frozen=True, slots=True)
class LandmarkUnit:
    """LANDMARK: positions of landmarks of one landmark set, as parallel tuples."""

    #: Ticks (uint32).
    timestamp: int
    #: Landmark set id (uint16), as declared in ``arf.json``.
    set_id: int
    #: True: 3 coordinates per landmark (flags bit 5); False: 2.
    is_3d: bool
    #: Landmark index per entry (uint16); 1 to 65536 entries.
    indices: tuple[int, ...]
    #: Coordinates per entry: 2 or 3 float32 (see ``is_3d``).
    coords: tuple[tuple[float, ...], ...]
    #: Velocity per entry (same dimensions as ``coords``), or ``None`` (flags bit 7).
    velocities: tuple[tuple[float, ...], ...] | None = None
    #: Confidence per entry (float32), or ``None`` (flags bit 6).
    confidences: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        count = len(self.indices)
        if not 1 <= count <= MAX_ENTRIES:
            raise ValueError(f"a unit has 1 to {MAX_ENTRIES} entries, not {count}")
        dims = 3 if self.is_3d else 2
        _check_vectors("coords", self.coords, count, dims)
        if self.velocities is not None:
            _check_vectors("velocities", self.velocities, count, dims)
        if self.confidences is not None and len(self.confidences) != count:
            raise ValueError(f"{count} indices but {len(self.confidences)} confidences")

    @property
    def unit_type(self) -> int:
        return UnitType.LANDMARK


@dataclass(frozen=True, slots=True)
class UnknownUnit:
    """A unit of a type this codec does not know (4..127): consumers MUST skip it."""

    unit_type: int
    #: The raw payload (it should start with a uint32 timestamp, but nothing is assumed).
    payload: bytes

    def __post_init__(self) -> None:
        if not len(UnitType) <= self.unit_type <= MAX_UNIT_TYPE:
            raise ValueError(f"unknown unit types are {len(UnitType)}..{MAX_UNIT_TYPE}")


#: A unit of a known type.
AnimationUnit: TypeAlias = ConfigUnit | BlendshapeUnit | JointUnit | LandmarkUnit
#: Anything :func:`decode_unit` returns.
Unit: TypeAlias = ConfigUnit | BlendshapeUnit | JointUnit | LandmarkUnit | UnknownUnit


def _check_vectors(
    name: str, vectors: tuple[tuple[float, ...], ...], count: int, size: int
) -> None:
    if len(vectors) != count:
        raise ValueError(f"{count} indices but {len(vectors)} {name}")
    for vector in vectors:
        if len(vector) != size:
            raise ValueError(f"{name} need {size} values each, got {len(vector)}")


def timestamp_seconds(unit: AnimationUnit, timescale: float | ConfigUnit) -> float:
    """The unit's timestamp in seconds: ``timestamp / timescale`` (ticks per second).

    ``timescale`` is the value of the stream's CONFIG unit, or that unit itself. Timestamps are
    uint32 ticks: they wrap after ``2**32 / timescale`` seconds (49.7 days at 1000 ticks/s);
    callers that compare timestamps across a wrap do so modulo ``2**32``.
    """
    scale = timescale.timescale if isinstance(timescale, ConfigUnit) else timescale
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"timescale must be finite and > 0, not {scale!r}")
    return unit.timestamp / scale


# --- encoding --------------------------------------------------------------------------------


def encode_unit(unit: Unit) -> bytes:
    """The wire bytes of one unit (one ``3gpp-ar-animation`` message).

    Raises :class:`ArfEncodeError` when a value does not fit its field.
    """
    try:
        if isinstance(unit, BlendshapeUnit):
            return _encode_blendshape(unit)
        if isinstance(unit, JointUnit):
            return _encode_joint(unit)
        if isinstance(unit, LandmarkUnit):
            return _encode_landmark(unit)
        if isinstance(unit, ConfigUnit):
            return _encode_config(unit)
        return _HEADER.pack(unit.unit_type << 1, len(unit.payload)) + unit.payload
    except (struct.error, OverflowError) as exc:
        raise ArfEncodeError(f"{type(unit).__name__} does not fit the wire format: {exc}") from exc


def _encode_config(unit: ConfigUnit) -> bytes:
    profile = unit.profile.encode("utf-8")
    if len(profile) > MAX_PROFILE_BYTES:
        raise ArfEncodeError(f"profile is {len(profile)} bytes, at most {MAX_PROFILE_BYTES}")
    timescale = _FLOAT32.pack(unit.timescale)
    rounded = _FLOAT32.unpack(timescale)[0]
    if not (math.isfinite(rounded) and rounded > 0):
        raise ArfEncodeError(f"timescale {unit.timescale!r} is not a positive float32")
    length = _CONFIG_HEAD.size + len(profile) + _FLOAT32.size
    return (
        _HEADER.pack(UnitType.CONFIG << 1, length)
        + _CONFIG_HEAD.pack(unit.timestamp, len(profile))
        + profile
        + timescale
    )


def _encode_blendshape(unit: BlendshapeUnit) -> bytes:
    count = len(unit.indices)
    confidences = unit.confidences
    stride = 2 if confidences is None else 3
    flat: list[float] = [0.0] * (count * stride)
    flat[0::stride] = unit.indices
    flat[1::stride] = unit.weights
    if confidences is not None:
        flat[2::stride] = confidences
    flags = 0 if confidences is None else FLAG_BLENDSHAPE_CONFIDENCE
    length = _SET_HEAD_SIZE + count * (2 + 4 * (stride - 1))
    prefix = _SET_PREFIX.pack(
        UnitType.BLENDSHAPE << 1, length, unit.timestamp, unit.set_id, flags, count - 1
    )
    return prefix + _entries(stride - 1, count).pack(*flat)


def _encode_joint(unit: JointUnit) -> bytes:
    count = len(unit.indices)
    flat: list[float] = []
    append = flat.append
    extend = flat.extend
    if unit.velocities is None:
        for index, matrix in zip(unit.indices, unit.matrices, strict=True):
            append(index)
            extend(matrix)
        floats, flags = _MATRIX_SIZE, 0
    else:
        for index, matrix, velocity in zip(
            unit.indices, unit.matrices, unit.velocities, strict=True
        ):
            append(index)
            extend(matrix)
            extend(velocity)
        floats, flags = 2 * _MATRIX_SIZE, FLAG_JOINT_VELOCITY
    length = _SET_HEAD_SIZE + count * (2 + 4 * floats)
    prefix = _SET_PREFIX.pack(
        UnitType.JOINT << 1, length, unit.timestamp, unit.joint_set_id, flags, count - 1
    )
    return prefix + _entries(floats, count).pack(*flat)


def _encode_landmark(unit: LandmarkUnit) -> bytes:
    count = len(unit.indices)
    dims = 3 if unit.is_3d else 2
    flags = FLAG_LANDMARK_3D if unit.is_3d else 0
    floats = dims
    if unit.velocities is not None:
        flags |= FLAG_LANDMARK_VELOCITY
        floats += dims
    if unit.confidences is not None:
        flags |= FLAG_LANDMARK_CONFIDENCE
        floats += 1
    flat: list[float] = []
    append = flat.append
    extend = flat.extend
    velocities = unit.velocities
    confidences = unit.confidences
    for i, (index, coords) in enumerate(zip(unit.indices, unit.coords, strict=True)):
        append(index)
        extend(coords)
        if velocities is not None:
            extend(velocities[i])
        if confidences is not None:
            append(confidences[i])
    length = _SET_HEAD_SIZE + count * (2 + 4 * floats)
    prefix = _SET_PREFIX.pack(
        UnitType.LANDMARK << 1, length, unit.timestamp, unit.set_id, flags, count - 1
    )
    return prefix + _entries(floats, count).pack(*flat)


# --- decoding --------------------------------------------------------------------------------

_Buffer: TypeAlias = bytes | bytearray | memoryview


def is_config_unit(data: bytes | str) -> bool:
    """Whether a message is a CONFIG unit, from its first header byte alone (no decoding):
    for the relay, which sends a receiver's CONFIG units reliably on a partially reliable
    channel."""
    return isinstance(data, bytes) and len(data) >= HEADER_SIZE and data[0] >> 1 == UnitType.CONFIG


def decode_unit(data: _Buffer) -> Unit:
    """Decode one message of a ``3gpp-ar-animation`` channel: exactly one unit.

    Unknown unit types give :class:`UnknownUnit` (never an error). Anything malformed raises
    :class:`ArfDecodeError`, and nothing else does.
    """
    end = _unit_end(data)
    return _decode_payload(data[0] >> 1, data, HEADER_SIZE, end)


def check_unit(data: _Buffer) -> bool:
    """:func:`decode_unit`'s checks without building the unit (for the relay, which forwards
    the bytes): raises the :class:`ArfDecodeError` :func:`decode_unit` would raise, else
    returns whether the unit is a CONFIG unit. A BLENDSHAPE unit's layout is checked from its
    head alone (its entries are fixed-size numbers: any bytes are valid values); other types
    are decoded. A well-formed BLENDSHAPE unit (nearly every unit relayed) is checked with
    one unpack of its header and set head; anything else takes the full path below, which
    raises the error :func:`decode_unit` would."""
    size = len(data)
    if size >= _BLENDSHAPE_MIN and data[0] >> 1 == _BLENDSHAPE:
        _, length, _, _, flags, count_minus1 = _BLENDSHAPE_PREFIX.unpack_from(data, 0)
        entry = _BLENDSHAPE_ENTRY_2 if flags & FLAG_BLENDSHAPE_CONFIDENCE else _BLENDSHAPE_ENTRY_1
        if length == size - HEADER_SIZE == _SET_HEAD_SIZE + (count_minus1 + 1) * entry:
            return False
    end = _unit_end(data)
    unit_type = data[0] >> 1
    if unit_type == UnitType.BLENDSHAPE:
        _, _, flags, count = _set_head("BLENDSHAPE", data, HEADER_SIZE, end)
        floats = 2 if flags & FLAG_BLENDSHAPE_CONFIDENCE else 1
        need = _SET_HEAD_SIZE + count * (2 + 4 * floats)
        if need != end - HEADER_SIZE:
            raise _payload_size_error("BLENDSHAPE", need, end - HEADER_SIZE, HEADER_SIZE)
        return False
    return isinstance(_decode_payload(unit_type, data, HEADER_SIZE, end), ConfigUnit)


def _unit_end(data: _Buffer) -> int:
    """Where the one unit of ``data`` ends, checked to be exactly ``len(data)``."""
    size = len(data)
    if size < HEADER_SIZE:
        raise ArfDecodeError("truncated", f"{size} bytes, a unit header needs {HEADER_SIZE}")
    length: int = _HEADER.unpack_from(data, 0)[1]
    end = HEADER_SIZE + length
    if end > size:
        raise ArfDecodeError(
            "truncated", f"unit_length {length} but only {size - HEADER_SIZE} payload bytes"
        )
    if end < size:
        raise ArfDecodeError(
            "trailing-bytes", f"unit_length {length} but {size - HEADER_SIZE} payload bytes"
        )
    return end


def _decode_payload(unit_type: int, buf: _Buffer, start: int, end: int) -> Unit:
    if unit_type == UnitType.BLENDSHAPE:
        return _decode_blendshape(buf, start, end)
    if unit_type == UnitType.JOINT:
        return _decode_joint(buf, start, end)
    if unit_type == UnitType.LANDMARK:
        return _decode_landmark(buf, start, end)
    if unit_type == UnitType.CONFIG:
        return _decode_config(buf, start, end)
    return UnknownUnit(unit_type, bytes(buf[start:end]))


def _payload_size_error(name: str, need: int, have: int, start: int) -> ArfDecodeError:
    code = "short-payload" if need > have else "extra-payload"
    return ArfDecodeError(
        code, f"{name} unit needs {need} payload bytes, unit_length is {have}", offset=start
    )


def _decode_config(buf: _Buffer, start: int, end: int) -> ConfigUnit:
    have = end - start
    if have < _CONFIG_HEAD.size:
        raise _payload_size_error("CONFIG", _CONFIG_HEAD.size + 4, have, start)
    timestamp, profile_len = _CONFIG_HEAD.unpack_from(buf, start)
    need = _CONFIG_HEAD.size + profile_len + _FLOAT32.size
    if need != have:
        raise _payload_size_error("CONFIG", need, have, start)
    at = start + _CONFIG_HEAD.size
    try:
        profile = bytes(buf[at : at + profile_len]).decode("utf-8")
    except UnicodeDecodeError:
        raise ArfDecodeError("bad-profile", "profile is not UTF-8", offset=start) from None
    timescale = _FLOAT32.unpack_from(buf, at + profile_len)[0]
    if not (math.isfinite(timescale) and timescale > 0):
        raise ArfDecodeError(
            "bad-timescale", f"timescale {timescale!r} is not finite and > 0", offset=start
        )
    return ConfigUnit(timestamp, profile, timescale)


def _set_head(name: str, buf: _Buffer, start: int, end: int) -> tuple[int, int, int, int]:
    if end - start < _SET_HEAD_SIZE:
        raise _payload_size_error(name, _SET_HEAD_SIZE + 6, end - start, start)
    timestamp, set_id, flags, count_minus1 = _SET_HEAD.unpack_from(buf, start)
    return timestamp, set_id, flags, count_minus1 + 1


def _entry_block(
    name: str, buf: _Buffer, start: int, end: int, floats: int, count: int
) -> tuple[Any, ...]:
    """The entries of a set unit as one flat tuple: index, floats, index, floats ..."""
    need = _SET_HEAD_SIZE + count * (2 + 4 * floats)
    if need != end - start:
        raise _payload_size_error(name, need, end - start, start)
    return _entries(floats, count).unpack_from(buf, start + _SET_HEAD_SIZE)


def _decode_blendshape(buf: _Buffer, start: int, end: int) -> BlendshapeUnit:
    timestamp, set_id, flags, count = _set_head("BLENDSHAPE", buf, start, end)
    if flags & FLAG_BLENDSHAPE_CONFIDENCE:
        flat = _entry_block("BLENDSHAPE", buf, start, end, 2, count)
        return BlendshapeUnit(timestamp, set_id, flat[0::3], flat[1::3], flat[2::3])
    flat = _entry_block("BLENDSHAPE", buf, start, end, 1, count)
    return BlendshapeUnit(timestamp, set_id, flat[0::2], flat[1::2])


def _decode_joint(buf: _Buffer, start: int, end: int) -> JointUnit:
    timestamp, set_id, flags, count = _set_head("JOINT", buf, start, end)
    velocity = bool(flags & FLAG_JOINT_VELOCITY)
    floats = 2 * _MATRIX_SIZE if velocity else _MATRIX_SIZE
    flat = _entry_block("JOINT", buf, start, end, floats, count)
    stride = floats + 1
    bases = range(0, count * stride, stride)
    indices = flat[0::stride]
    matrices = tuple([flat[b + 1 : b + 17] for b in bases])
    velocities = tuple([flat[b + 17 : b + 33] for b in bases]) if velocity else None
    return JointUnit(timestamp, set_id, indices, matrices, velocities)


def _decode_landmark(buf: _Buffer, start: int, end: int) -> LandmarkUnit:
    timestamp, set_id, flags, count = _set_head("LANDMARK", buf, start, end)
    is_3d = bool(flags & FLAG_LANDMARK_3D)
    velocity = bool(flags & FLAG_LANDMARK_VELOCITY)
    confidence = bool(flags & FLAG_LANDMARK_CONFIDENCE)
    dims = 3 if is_3d else 2
    floats = dims * (2 if velocity else 1) + (1 if confidence else 0)
    flat = _entry_block("LANDMARK", buf, start, end, floats, count)
    stride = floats + 1
    bases = range(0, count * stride, stride)
    indices = flat[0::stride]
    coords = tuple([flat[b + 1 : b + 1 + dims] for b in bases])
    velocities = tuple([flat[b + 1 + dims : b + 1 + 2 * dims] for b in bases]) if velocity else None
    confidences = flat[stride - 1 :: stride] if confidence else None
    return LandmarkUnit(timestamp, set_id, is_3d, indices, coords, velocities, confidences)


# --- streams ---------------------------------------------------------------------------------


def _read_unit(
    buf: _Buffer, pos: int, *, final: bool, max_length: int | None
) -> tuple[Unit, int] | None:
    """Decode the unit at ``buf[pos:]``: the unit and the position after it, or ``None`` when
    the unit is not complete yet (an error instead when ``final``)."""
    size = len(buf)
    if size - pos < HEADER_SIZE:
        if final:
            raise ArfDecodeError(
                "truncated", f"stream ends inside a unit header at {pos}", offset=pos
            )
        return None
    first, length = _HEADER.unpack_from(buf, pos)
    if max_length is not None and length > max_length:
        raise ArfDecodeError(
            "unit-too-large", f"unit at {pos}: unit_length {length} over {max_length}", offset=pos
        )
    end = pos + HEADER_SIZE + length
    if end > size:
        if final:
            raise ArfDecodeError(
                "truncated",
                f"unit at {pos} declares {length} payload bytes, {size - pos - HEADER_SIZE} remain",
                offset=pos,
            )
        return None
    try:
        return _decode_payload(first >> 1, buf, pos + HEADER_SIZE, end), end
    except ArfDecodeError as exc:
        raise ArfDecodeError(exc.code, f"unit at {pos}: {exc.message}", offset=pos) from None


def iter_units(stream: _Buffer) -> Iterator[AnimationUnit]:
    """The known units of a concatenated unit stream (a recorded file), in order.

    Unknown unit types are skipped. A stream that ends inside a unit raises
    :class:`ArfDecodeError` (``truncated``) once the complete units before it were yielded.
    """
    pos = 0
    size = len(stream)
    while pos < size:
        read = _read_unit(stream, pos, final=True, max_length=None)
        assert read is not None  # final=True never returns None
        unit, pos = read
        if not isinstance(unit, UnknownUnit):
            yield unit


class UnitStreamDecoder:
    """Incremental decoder for a unit stream that arrives in pieces (a file read in blocks).

    ``feed`` returns the known units completed by the new bytes (unknown types skipped);
    ``close`` raises ``truncated`` when the stream ended inside a unit. A unit declaring more
    than ``max_unit_length`` payload bytes raises ``unit-too-large`` as soon as its header is
    read, so a corrupt length never makes the decoder buffer unbounded data. A decoding error
    is final.
    """

    def __init__(self, *, max_unit_length: int = DEFAULT_MAX_UNIT_LENGTH) -> None:
        self._buffer = bytearray()
        self._max_unit_length = max_unit_length
        self._config: ConfigUnit | None = None
        self._consumed = 0
        self._error: ArfDecodeError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete unit."""
        return len(self._buffer)

    @property
    def config(self) -> ConfigUnit | None:
        """The most recent CONFIG unit seen (its timescale applies to the units after it)."""
        return self._config

    def feed(self, data: _Buffer) -> list[AnimationUnit]:
        """Add bytes; return the known units they complete, in order.

        When a unit is malformed, the units before it are returned first and the error is
        raised by the next ``feed`` or ``close`` (and every call after that).
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += data
        units: list[AnimationUnit] = []
        pos = 0
        try:
            while True:
                read = _read_unit(buffer, pos, final=False, max_length=self._max_unit_length)
                if read is None:
                    break
                unit, pos = read
                if isinstance(unit, UnknownUnit):
                    continue
                if isinstance(unit, ConfigUnit):
                    self._config = unit
                units.append(unit)
        except ArfDecodeError as exc:
            self._error = ArfDecodeError(exc.code, exc.message, offset=self._consumed + exc.offset)
            if not units:
                raise self._error from None
        if pos:
            del buffer[:pos]
            self._consumed += pos
        return units

    def close(self) -> None:
        """End of stream: raises ``truncated`` if an incomplete unit is buffered."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            raise ArfDecodeError(
                "truncated",
                f"stream ends with {len(self._buffer)} bytes of an incomplete unit",
                offset=self._consumed,
            )
