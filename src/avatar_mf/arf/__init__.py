"""MPEG ARF (ISO/IEC 23090-39, draft) support: the animation unit codec and name sets.

* :mod:`~avatar_mf.arf.units` -- Avatar Animation Units, the payload of the TS 26.264
  ``3gpp-ar-animation`` data channel (one unit per message): :func:`encode_unit`,
  :func:`decode_unit`, :func:`check_unit`, :func:`iter_units`, :class:`UnitStreamDecoder`.
* :mod:`~avatar_mf.arf.blendshapes` -- ARKit blendshape and viseme names.

Sans-IO: bytes in, frozen dataclasses out.
"""

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX, VISEME_INDEX, VISEMES
from avatar_mf.arf.units import (
    DEFAULT_MAX_UNIT_LENGTH,
    HEADER_SIZE,
    MAX_ENTRIES,
    MAX_PROFILE_BYTES,
    AnimationUnit,
    ArfDecodeError,
    ArfEncodeError,
    BlendshapeUnit,
    ConfigUnit,
    JointUnit,
    LandmarkUnit,
    Matrix4,
    Unit,
    UnitStreamDecoder,
    UnitType,
    UnknownUnit,
    check_unit,
    decode_unit,
    encode_unit,
    is_config_unit,
    iter_units,
    timestamp_seconds,
)

__all__ = [
    "ARKIT_BLENDSHAPES",
    "ARKIT_INDEX",
    "DEFAULT_MAX_UNIT_LENGTH",
    "HEADER_SIZE",
    "MAX_ENTRIES",
    "MAX_PROFILE_BYTES",
    "VISEMES",
    "VISEME_INDEX",
    "AnimationUnit",
    "ArfDecodeError",
    "ArfEncodeError",
    "BlendshapeUnit",
    "ConfigUnit",
    "JointUnit",
    "LandmarkUnit",
    "Matrix4",
    "Unit",
    "UnitStreamDecoder",
    "UnitType",
    "UnknownUnit",
    "check_unit",
    "decode_unit",
    "is_config_unit",
    "encode_unit",
    "iter_units",
    "timestamp_seconds",
]
