"""Viseme targets as ARKit blendshape weights, and how strongly each viseme holds them.

:data:`VISEME_TARGETS` gives, per viseme (the 15 of :data:`avatar_mf.arf.blendshapes.VISEMES`),
the weights of the mouth blendshapes that make its shape; everything not listed is 0. The
values follow ARKit semantics (``jawOpen`` opens the jaw and, with it, the lips; ``mouthClose``
closes the lips *against* an open jaw; ``mouthPress`` presses closed lips together;
``mouthFunnel``/``mouthPucker`` round and protrude the lips; ``mouthStretch``/``mouthSmile``
spread them; ``mouthUpperUp``/``mouthLowerDown`` show the teeth) and are tuned to read clearly
on the product's procedural head (:mod:`avatar_mf.avatar.generate`) and on ARKit-rigged heads.

:data:`DOMINANCE` is the second half of the co-articulation model (:mod:`.coarticulation`):
how strongly a viseme imposes each of its parameters on its neighbours. Lip closure for
bilabials and lip contact for labiodentals dominate (they must happen however short the
consonant); tongue-only consonants (t d n l k g s ...) barely constrain the lips, so vowels
around them shape the mouth, as in real speech ("see" and "sue" have different s lips).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import VISEMES

#: The blendshapes the mouth model drives, in ARKit order.
MOUTH_BLENDSHAPES: Final[tuple[str, ...]] = (
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "tongueOut",
)


def _sym(name: str, value: float) -> dict[str, float]:
    return {f"{name}Left": value, f"{name}Right": value}


#: Target weights per viseme (names missing are 0).
VISEME_TARGETS: Final[Mapping[str, Mapping[str, float]]] = MappingProxyType(
    {
        "sil": {},
        # Lips closed and pressed; the jaw nearly closed (mouthClose seals against what is left).
        "PP": {
            "jawOpen": 0.04,
            "mouthClose": 0.04,
            **_sym("mouthPress", 0.5),
            "mouthRollLower": 0.2,
            "mouthRollUpper": 0.12,
        },
        # Lower lip tucked under the upper teeth.
        "FF": {
            "jawOpen": 0.08,
            "mouthRollLower": 0.55,
            **_sym("mouthUpperUp", 0.2),
            "mouthShrugUpper": 0.15,
            **_sym("mouthStretch", 0.08),
        },
        # Tongue tip between the teeth.
        "TH": {
            "jawOpen": 0.14,
            "tongueOut": 0.3,
            **_sym("mouthLowerDown", 0.1),
            **_sym("mouthStretch", 0.06),
        },
        "DD": {
            "jawOpen": 0.13,
            **_sym("mouthStretch", 0.1),
            **_sym("mouthLowerDown", 0.08),
            **_sym("mouthUpperUp", 0.05),
        },
        "kk": {
            "jawOpen": 0.17,
            **_sym("mouthStretch", 0.1),
            **_sym("mouthLowerDown", 0.06),
        },
        # Lips rounded and pushed out, teeth close.
        "CH": {
            "jawOpen": 0.1,
            "mouthFunnel": 0.45,
            "mouthPucker": 0.2,
            **_sym("mouthUpperUp", 0.18),
            **_sym("mouthLowerDown", 0.15),
        },
        # Teeth together, lips spread.
        "SS": {
            "jawOpen": 0.05,
            **_sym("mouthStretch", 0.28),
            **_sym("mouthSmile", 0.12),
            **_sym("mouthUpperUp", 0.12),
            **_sym("mouthLowerDown", 0.12),
        },
        "nn": {
            "jawOpen": 0.12,
            **_sym("mouthStretch", 0.08),
            **_sym("mouthLowerDown", 0.05),
        },
        "RR": {
            "jawOpen": 0.12,
            "mouthFunnel": 0.25,
            "mouthPucker": 0.3,
            **_sym("mouthUpperUp", 0.06),
        },
        "aa": {
            "jawOpen": 0.6,
            **_sym("mouthLowerDown", 0.25),
            **_sym("mouthUpperUp", 0.1),
            **_sym("mouthStretch", 0.05),
        },
        "E": {
            "jawOpen": 0.34,
            **_sym("mouthStretch", 0.22),
            **_sym("mouthSmile", 0.1),
            **_sym("mouthLowerDown", 0.18),
            **_sym("mouthUpperUp", 0.08),
        },
        "ih": {
            "jawOpen": 0.2,
            **_sym("mouthStretch", 0.32),
            **_sym("mouthSmile", 0.25),
            **_sym("mouthUpperUp", 0.1),
            **_sym("mouthLowerDown", 0.1),
        },
        "oh": {
            "jawOpen": 0.4,
            "mouthFunnel": 0.5,
            "mouthPucker": 0.2,
            **_sym("mouthLowerDown", 0.1),
        },
        "ou": {
            "jawOpen": 0.15,
            "mouthPucker": 0.65,
            "mouthFunnel": 0.35,
        },
    }
)

#: Base dominance per viseme (vowels 1).
_BASE_DOMINANCE: Final[Mapping[str, float]] = MappingProxyType(
    {
        "sil": 0.6,
        "PP": 1.0,
        "FF": 1.0,
        "TH": 0.7,
        "DD": 0.35,
        "kk": 0.3,
        "CH": 0.9,
        "SS": 0.5,
        "nn": 0.3,
        "RR": 0.8,
        "aa": 1.0,
        "E": 1.0,
        "ih": 1.0,
        "oh": 1.0,
        "ou": 1.0,
    }
)

_LIPS: Final = (
    "mouthClose",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
)

#: Per (viseme, blendshape) overrides of the base dominance.
_DOMINANCE_OVERRIDES: Final[Mapping[str, Mapping[str, float]]] = MappingProxyType(
    {
        # Bilabial closure wins over any neighbour, however short the consonant; the jaw
        # also rises (a little less: the lips can seal over a slightly open jaw).
        "PP": {**dict.fromkeys(_LIPS, 10.0), "jawOpen": 2.0},
        "FF": {
            **dict.fromkeys(_LIPS, 6.0),
            "mouthUpperUpLeft": 4.0,
            "mouthUpperUpRight": 4.0,
            "jawOpen": 1.5,
        },
        "CH": {"mouthFunnel": 3.0, "mouthPucker": 3.0},
        "ou": {"mouthFunnel": 1.5, "mouthPucker": 1.5},
        "SS": {"jawOpen": 1.5},
        "TH": {"tongueOut": 4.0},
    }
)

#: Reach of each viseme's dominance, seconds: (before its core, after its core). Vowels and
#: lip-rounding reach furthest (anticipatory rounding starts early); the lip contacts of
#: p b m f v are sharp, so their strong dominance does not leak into the vowels around them.
TIMING: Final[Mapping[str, tuple[float, float]]] = MappingProxyType(
    {
        "sil": (0.06, 0.05),
        "PP": (0.024, 0.02),
        "FF": (0.026, 0.022),
        "TH": (0.03, 0.025),
        "DD": (0.035, 0.03),
        "kk": (0.035, 0.03),
        "CH": (0.05, 0.04),
        "SS": (0.035, 0.03),
        "nn": (0.035, 0.03),
        "RR": (0.05, 0.04),
        "aa": (0.065, 0.055),
        "E": (0.065, 0.055),
        "ih": (0.065, 0.055),
        "oh": (0.075, 0.06),
        "ou": (0.09, 0.07),
    }
)

#: Seal strength per viseme: how much the lips close against whatever jaw opening remains
#: (``mouthClose = max(mouthClose, seal * jawOpen)`` after blending; see :mod:`.coarticulation`).
SEAL: Final[Mapping[str, float]] = MappingProxyType({"PP": 1.0})
#: Dominance of the seal for the visemes in :data:`SEAL` (others use their base dominance):
#: higher than the lip shapes' so the seal is complete at the centre of even a short closure.
SEAL_DOMINANCE: Final = 30.0


def target_matrix(
    names: tuple[str, ...] = MOUTH_BLENDSHAPES,
) -> NDArray[np.float64]:
    """(15, K) target weights, rows in :data:`VISEMES` order, columns ``names``."""
    out = np.zeros((len(VISEMES), len(names)))
    column = {name: k for k, name in enumerate(names)}
    for row, viseme in enumerate(VISEMES):
        for name, weight in VISEME_TARGETS[viseme].items():
            if name in column:
                out[row, column[name]] = weight
    return out


def dominance_matrix(
    names: tuple[str, ...] = MOUTH_BLENDSHAPES,
) -> NDArray[np.float64]:
    """(15, K) dominance magnitudes, rows in :data:`VISEMES` order, columns ``names``."""
    out = np.empty((len(VISEMES), len(names)))
    for row, viseme in enumerate(VISEMES):
        overrides = _DOMINANCE_OVERRIDES.get(viseme, {})
        base = _BASE_DOMINANCE[viseme]
        for k, name in enumerate(names):
            out[row, k] = overrides.get(name, base)
    return out


def timing_matrix() -> NDArray[np.float64]:
    """(15, 2) reach before / after the core per viseme, :data:`VISEMES` order."""
    return np.array([TIMING[v] for v in VISEMES])


def seal_vector() -> NDArray[np.float64]:
    """(15,) seal strength per viseme, :data:`VISEMES` order."""
    return np.array([SEAL.get(v, 0.0) for v in VISEMES])


def seal_dominance() -> NDArray[np.float64]:
    """(15,) dominance of the seal parameter: :data:`SEAL_DOMINANCE` for the visemes with a
    seal, the base dominance otherwise."""
    return np.array([SEAL_DOMINANCE if v in SEAL else _BASE_DOMINANCE[v] for v in VISEMES])
