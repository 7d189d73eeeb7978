"""ARF animation units: :func:`avatar_mf.arf.units.decode_unit` (one data channel message),
:func:`iter_units` and :class:`UnitStreamDecoder` (a recorded stream, fed in pieces).

Documented outcome: units or :class:`~avatar_mf.arf.units.ArfDecodeError`. A decoded unit
must encode again (:func:`encode_unit`) and decode to the same bytes' unit.
"""

from __future__ import annotations

import dataclasses
import math

from avatar_mf.arf.units import (
    ArfDecodeError,
    UnitStreamDecoder,
    decode_unit,
    encode_unit,
    iter_units,
)


def _same(a: object, b: object) -> bool:
    """Equality that takes NaN as equal to NaN (float32 streams carry NaN through)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


def fuzz_one(data: bytes) -> None:
    try:
        unit = decode_unit(data)
    except ArfDecodeError:
        pass
    else:
        again = decode_unit(encode_unit(unit))
        if not _same(again, unit):
            raise AssertionError(f"encode/decode round trip changed {unit!r} into {again!r}")
    try:
        for _ in iter_units(data):
            pass
    except ArfDecodeError:
        pass
    decoder = UnitStreamDecoder(max_unit_length=4096)
    step = 1 + (data[0] % 32 if data else 0)
    try:
        for start in range(0, len(data), step):
            decoder.feed(data[start : start + step])
        decoder.close()
    except ArfDecodeError:
        pass
