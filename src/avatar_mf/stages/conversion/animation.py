"""Converting one sender's animation stream for one kind of receiver (ISO/IEC 23090-39 units).

A :class:`StreamConverter` turns the encoded units of a stream whose BLENDSHAPE set is
``source`` into units on ``target``, through ARKit-52 (the common format), with an optional
:class:`~.filters.ExpressionFilter` applied on the way (on ARKit weights). Per unit:

* CONFIG: the same unit with the target's profile name (the timescale is kept); the stream's
  weights start again from 0;
* BLENDSHAPE: the entries update the stream's current source weights (a unit may carry only
  some entries: the others keep their last value), which are mapped to ARKit, filtered and
  mapped to the target; the result is one dense unit on set 0 (one entry per target name, no
  confidences);
* JOINT, LANDMARK, unknown types: unchanged (a neutral filter freezes the face, not the head).

Decoding and encoding use numpy record views of the big-endian entries (the unit was already
checked by the channel adapter); a converted 52-entry unit costs a few microseconds
(bench/convert.py).
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np

from avatar_mf.arf.units import ConfigUnit, UnitType, decode_unit, encode_unit
from avatar_mf.avatar.mapping import ARKIT_SET, ExpressionSet
from avatar_mf.stages.conversion.filters import ExpressionFilter

__all__ = ["StreamConverter"]

_PREFIX: Final = struct.Struct(">BIIHBH")  # header + timestamp, set id, flags, count_minus1
_HEAD: Final = struct.Struct(">IHBH")
_ENTRY: Final = np.dtype([("i", ">u2"), ("w", ">f4")])
_ENTRY_CONF: Final = np.dtype([("i", ">u2"), ("w", ">f4"), ("c", ">f4")])
_CONFIDENCE: Final = 0x80
_ENTRIES_AT: Final = 5 + _HEAD.size  # 14


class StreamConverter:
    """One stream, one target set, one filter: stateful (the current source weights)."""

    def __init__(
        self,
        source: ExpressionSet,
        target: ExpressionSet,
        target_profile: str,
        expression_filter: ExpressionFilter | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.target_profile = target_profile
        self.filter = expression_filter
        self._weights = np.zeros(len(source.names), np.float32)
        self._source_is_arkit = source.name == ARKIT_SET.name
        self._target_is_arkit = target.name == ARKIT_SET.name
        m = len(target.names)
        self._out = np.zeros(m, _ENTRY)
        self._out["i"] = np.arange(m)
        self._prefix_length = _HEAD.size + m * _ENTRY.itemsize

    def convert(self, unit: bytes) -> bytes:
        """The converted unit (unit types other than CONFIG and BLENDSHAPE unchanged)."""
        kind = unit[0] >> 1
        if kind == UnitType.BLENDSHAPE:
            return self._blendshape(unit)
        if kind == UnitType.CONFIG:
            self._weights[:] = 0.0
            config = decode_unit(unit)
            assert isinstance(config, ConfigUnit)
            return encode_unit(ConfigUnit(config.timestamp, self.target_profile, config.timescale))
        return unit

    def _blendshape(self, unit: bytes) -> bytes:
        timestamp, set_id, flags, count_minus1 = _HEAD.unpack_from(unit, 5)
        dtype = _ENTRY_CONF if flags & _CONFIDENCE else _ENTRY
        entries = np.frombuffer(unit, dtype, count_minus1 + 1, _ENTRIES_AT)
        index = entries["i"]
        weights = self._weights
        if int(index.max()) < len(weights):
            weights[index] = entries["w"]
        else:  # indices beyond the set: ignored
            keep = index < len(weights)
            weights[index[keep]] = entries["w"][keep]
        np.nan_to_num(weights, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        if self._source_is_arkit:
            arkit = np.clip(weights, 0.0, 1.0)
        else:
            arkit = self.source.arkit(weights)
        if self.filter is not None:
            arkit = self.filter.apply(arkit)
        result = arkit if self._target_is_arkit else self.target.from_common(arkit)
        out = self._out
        out["w"] = result
        return (
            _PREFIX.pack(
                UnitType.BLENDSHAPE << 1,
                self._prefix_length,
                timestamp,
                set_id,
                0,
                len(out) - 1,
            )
            + out.tobytes()
        )


def retarget_config(unit: bytes, profile: str) -> bytes:
    """A CONFIG unit naming ``profile`` instead (same timestamp and timescale)."""
    config = decode_unit(unit)
    assert isinstance(config, ConfigUnit)
    return encode_unit(ConfigUnit(config.timestamp, profile, config.timescale))
