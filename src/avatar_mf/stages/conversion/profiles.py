"""Animation profiles the converters know, and the expression set each one carries.

A profile names what the BLENDSHAPE units of a stream index (ARF CONFIG ``profile``, hello
``animationProfiles``). ``arf-face-v1`` is the common format (ARKit-52, the fallback every
session gets); the others are this product's names (unsettled: 3GPP has no list of profiles
beyond the ARF draft's examples):

============================  ========================================================
profile                       BLENDSHAPE set 0 is
============================  ========================================================
``arf-face-v1``               ARKit-52 (:data:`~avatar_mf.arf.blendshapes.ARKIT_BLENDSHAPES`)
``ovr-visemes-15``            the 15 MPEG-4/Oculus visemes (:data:`~avatar_mf.arf.VISEMES`)
``vrm-expressions-1.0``       the 18 VRM 1.0 expression presets
``facs-au-v1``                FACS action units with laterality (``AU1``, ``AU2L`` ...)
============================  ========================================================

JOINT units are relayed unchanged whatever the profile (the skeletons are the same head/neck/
jaw/eyes one); LANDMARK and unknown units too.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from avatar_mf.avatar.check import COMMON_PROFILE
from avatar_mf.avatar.mapping import ARKIT_SET, FACS_SET, VISEME_SET, VRM_SET, ExpressionSet

VISEME_PROFILE: Final = "ovr-visemes-15"
VRM_PROFILE: Final = "vrm-expressions-1.0"
FACS_PROFILE: Final = "facs-au-v1"

#: Every profile the converters handle, the common one first.
PROFILE_SETS: Final[Mapping[str, ExpressionSet]] = MappingProxyType(
    {
        COMMON_PROFILE: ARKIT_SET,
        VISEME_PROFILE: VISEME_SET,
        VRM_PROFILE: VRM_SET,
        FACS_PROFILE: FACS_SET,
    }
)

#: What converting a stream from the common profile to each one (and back) loses, for the
#: capabilities note and docs/avatar-format.md.
LOSSES: Final[Mapping[str, str]] = MappingProxyType(
    {
        VISEME_PROFILE: "mouth only: eyes, brows, cheeks, nose, head expression are dropped; "
        "DD/kk/nn (tongue-only differences) are not told apart",
        VRM_PROFILE: "18 presets: asymmetric and fine mouth shapes, cheek puff, jaw sideways "
        "and tongue are approximated or dropped",
        FACS_PROFILE: "mouthClose, mouthLeft/Right are dropped; AU17 and AU28 merge the "
        "upper/lower shrug and roll shapes",
    }
)
