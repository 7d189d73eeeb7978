"""Expression and viseme name sets used with ARF BLENDSHAPE units.

* :data:`ARKIT_BLENDSHAPES` -- the 52 ARKit blendshape names. Indices 0..50 are the 51 names
  in the order MediaPipe's face blendshape model reports them after its ``_neutral`` entry
  (standards.md section 6 lists exactly these 51); index 51 is ``tongueOut``, ARKit's 52nd
  blendshape, which MediaPipe does not produce. So MediaPipe category ``i`` (1..51) is
  ``ARKIT_BLENDSHAPES[i - 1]``. When an avatar's ``arf.json`` declares a blendshape set with
  these names in this order, a BLENDSHAPE unit's entry index ``i`` is ``ARKIT_BLENDSHAPES[i]``;
  the index-to-name mapping always comes from the avatar's blendshape set, this order is a
  convention, not a wire rule.
* :data:`VISEMES` -- the 15 visemes of MPEG-4 FAP visemes 1-14 plus silence, with the names of
  the Oculus/Meta OVR viseme set, in that order (``sil`` first).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

ARKIT_BLENDSHAPES: Final[tuple[str, ...]] = (
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",  # ARKit only: not in MediaPipe's output, not in standards.md's list
)

#: Position of each name in :data:`ARKIT_BLENDSHAPES`.
ARKIT_INDEX: Final[Mapping[str, int]] = MappingProxyType(
    {name: i for i, name in enumerate(ARKIT_BLENDSHAPES)}
)

VISEMES: Final[tuple[str, ...]] = (
    "sil",  # silence
    "PP",  # p b m
    "FF",  # f v
    "TH",  # th dh
    "DD",  # t d
    "kk",  # k g
    "CH",  # ch jh sh
    "SS",  # s z
    "nn",  # n l
    "RR",  # r
    "aa",
    "E",
    "ih",
    "oh",
    "ou",
)

#: Position of each name in :data:`VISEMES`.
VISEME_INDEX: Final[Mapping[str, int]] = MappingProxyType(
    {name: i for i, name in enumerate(VISEMES)}
)
