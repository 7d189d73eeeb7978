"""Expression sets and the linear maps between them and ARKit-52, the common format's set.

TR 26.813 section 4: a media gateway converts proprietary animation streams to and from a
common format. The product's hub is the ARKit-52 set (:data:`ARKIT_BLENDSHAPES`): every other
set converts through it. An :class:`ExpressionSet` holds, for its ``names``:

* ``to_arkit`` -- a (52, n) matrix: column ``j`` is the ARKit pose of the set's entry ``j``
  at weight 1, so ARKit weights are ``clip(to_arkit @ s, 0, 1)``;
* ``from_arkit`` -- a (n, 52) matrix: the set's weights are ``clip(from_arkit @ a, 0, 1)``;
  by default a ridge-regularised pseudo-inverse of ``to_arkit`` (exact for one-to-one maps,
  a least-squares fit where entries overlap), optionally followed by ``pairs`` (entries that
  are the common part of two others, such as VRM ``blink`` of ``blinkLeft`` and
  ``blinkRight``: ``both = min(left, right)``, each side keeps the rest).

The sets:

* :data:`VISEME_SET` -- the 15 MPEG-4/Oculus visemes (:data:`~avatar_mf.arf.blendshapes.VISEMES`),
  each a mouth pose;
* :data:`VRM_SET` -- the VRM 1.0 expression presets (:data:`VRM_PRESETS`);
* :data:`FACS_SET` -- FACS action units with laterality, by the usual ARKit-to-AU
  correspondences (``AU12L`` is ``mouthSmileLeft`` ...);
* any other set: :func:`linear_set` from a declared map (``{name: {arkitName: weight}}``), or
  :func:`derive_set` from morph target names by synonyms (ARKit names in other spellings,
  viseme, VRM 0.x/1.0 and VRoid names, plain English ones).

What each conversion loses is in docs/avatar-format.md (*Conversions*). Pure numpy; a
conversion of one frame is a matrix-vector product and a clip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX, VISEMES

__all__ = [
    "ARKIT_SET",
    "FACS_SET",
    "VISEME_POSES",
    "VISEME_SET",
    "VRM_PRESETS",
    "VRM_SET",
    "ExpressionSet",
    "derive_set",
    "linear_set",
]

F32 = NDArray[np.float32]
N_ARKIT: Final = len(ARKIT_BLENDSHAPES)
#: Ridge term of the pseudo-inverse (keeps overlapping entries from cancelling each other).
RIDGE: Final = 1e-4


def _lr(name: str, value: float) -> dict[str, float]:
    return {f"{name}Left": value, f"{name}Right": value}


@dataclass(frozen=True, slots=True, eq=False)
class ExpressionSet:
    """A named set of expressions (blendshapes, visemes, presets, AUs) and its ARKit maps."""

    name: str
    names: tuple[str, ...]
    to_arkit: F32
    from_arkit: F32
    #: ``(both, left, right)`` index triples resolved after ``from_arkit`` (see module doc).
    pairs: tuple[tuple[int, int, int], ...] = ()
    #: Names of the set that map to nothing in ARKit (their weights are lost).
    unmapped: tuple[str, ...] = ()
    index: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.to_arkit.shape != (N_ARKIT, n) or self.from_arkit.shape != (n, N_ARKIT):
            raise ValueError(f"{self.name}: maps do not match {n} names")
        object.__setattr__(
            self, "index", MappingProxyType({k: i for i, k in enumerate(self.names)})
        )

    def arkit(self, weights: F32) -> F32:
        """ARKit-52 weights of this set's weights (clipped to [0, 1])."""
        out = self.to_arkit @ weights
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def from_common(self, arkit: F32) -> F32:
        """This set's weights of ARKit-52 weights (clipped to [0, 1])."""
        out = self.from_arkit @ arkit
        for both, left, right in self.pairs:
            common = min(out[left], out[right])
            out[both] += common
            out[left] -= common
            out[right] -= common
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def pose(self, name: str) -> dict[str, float]:
        """The ARKit pose of one entry at weight 1 (non-zero weights only)."""
        column = self.to_arkit[:, self.index[name]]
        return {ARKIT_BLENDSHAPES[i]: float(column[i]) for i in np.flatnonzero(column)}


def _matrix(names: Sequence[str], poses: Mapping[str, Mapping[str, float]]) -> F32:
    m = np.zeros((N_ARKIT, len(names)), np.float32)
    for j, name in enumerate(names):
        for shape, weight in poses.get(name, {}).items():
            m[ARKIT_INDEX[shape], j] = weight
    return m


def _pinv(to_arkit: F32, columns: Sequence[int] | None = None) -> F32:
    """Ridge pseudo-inverse of ``to_arkit`` (only ``columns`` take part; others get 0 rows)."""
    n = to_arkit.shape[1]
    cols = list(range(n)) if columns is None else list(columns)
    out = np.zeros((n, N_ARKIT), np.float32)
    if not cols:
        return out
    p = to_arkit[:, cols].astype(np.float64)
    gram = p.T @ p + RIDGE * np.eye(len(cols))
    out[cols] = np.linalg.solve(gram, p.T).astype(np.float32)
    return out


def linear_set(
    name: str, poses: Mapping[str, Mapping[str, float]], names: Sequence[str] | None = None
) -> ExpressionSet:
    """A set declared by its ARKit poses (``{entry: {arkitName: weight}}``; ``names`` gives
    the order, default the mapping's). Unknown ARKit names raise ``ValueError``."""
    order = tuple(poses) if names is None else tuple(names)
    for entry, pose in poses.items():
        bad = [shape for shape in pose if shape not in ARKIT_INDEX]
        if bad:
            raise ValueError(f"{name}: {entry} maps to names that are not ARKit: {bad}")
    to = _matrix(order, poses)
    mapped = [j for j, entry in enumerate(order) if poses.get(entry)]
    unmapped = tuple(entry for entry in order if not poses.get(entry))
    return ExpressionSet(name, order, to, _pinv(to, mapped), unmapped=unmapped)


# --- ARKit itself ---------------------------------------------------------------------------

_EYE = np.eye(N_ARKIT, dtype=np.float32)
ARKIT_SET: Final = ExpressionSet("arkit-52", ARKIT_BLENDSHAPES, _EYE.copy(), _EYE.copy())

# --- visemes (MPEG-4 FAP visemes 1-14 + silence; Oculus/Meta OVR names) ------------------------

#: The mouth pose of each viseme at weight 1, in ARKit weights (absent names: 0).
VISEME_POSES: Final[Mapping[str, Mapping[str, float]]] = MappingProxyType(
    {
        "sil": {},
        "PP": {
            "mouthClose": 0.1,
            **_lr("mouthPress", 0.6),
            "mouthRollLower": 0.25,
            "mouthRollUpper": 0.15,
        },
        "FF": {"jawOpen": 0.1, "mouthRollLower": 0.6, **_lr("mouthUpperUp", 0.25)},
        "TH": {"jawOpen": 0.15, "tongueOut": 0.35, **_lr("mouthLowerDown", 0.1)},
        "DD": {"jawOpen": 0.15, **_lr("mouthStretch", 0.12), **_lr("mouthLowerDown", 0.1)},
        "kk": {"jawOpen": 0.2, **_lr("mouthStretch", 0.15)},
        "CH": {
            "jawOpen": 0.12,
            "mouthFunnel": 0.5,
            "mouthPucker": 0.15,
            **_lr("mouthUpperUp", 0.15),
        },
        "SS": {
            "jawOpen": 0.05,
            "jawForward": 0.1,
            **_lr("mouthStretch", 0.3),
            **_lr("mouthSmile", 0.15),
        },
        "nn": {"jawOpen": 0.12, **_lr("mouthLowerDown", 0.08), "mouthShrugUpper": 0.1},
        "RR": {"jawOpen": 0.12, "mouthFunnel": 0.3, "mouthPucker": 0.35},
        "aa": {"jawOpen": 0.65, **_lr("mouthLowerDown", 0.3), **_lr("mouthUpperUp", 0.1)},
        "E": {"jawOpen": 0.35, **_lr("mouthStretch", 0.45), **_lr("mouthSmile", 0.15)},
        "ih": {"jawOpen": 0.25, **_lr("mouthStretch", 0.25), **_lr("mouthSmile", 0.3)},
        "oh": {"jawOpen": 0.45, "mouthFunnel": 0.6, "mouthPucker": 0.1},
        "ou": {"jawOpen": 0.18, "mouthPucker": 0.8, "mouthFunnel": 0.3},
    }
)

VISEME_SET: Final = linear_set("ovr-visemes-15", VISEME_POSES, VISEMES)

# --- VRM 1.0 expression presets ---------------------------------------------------------------

VRM_PRESETS: Final[tuple[str, ...]] = (
    "happy",
    "angry",
    "sad",
    "relaxed",
    "surprised",
    "aa",
    "ih",
    "ou",
    "ee",
    "oh",
    "blink",
    "blinkLeft",
    "blinkRight",
    "lookUp",
    "lookDown",
    "lookLeft",
    "lookRight",
    "neutral",
)

_VRM_POSES: Final[dict[str, dict[str, float]]] = {
    "happy": {**_lr("mouthSmile", 0.8), **_lr("cheekSquint", 0.5), **_lr("eyeSquint", 0.3)},
    "angry": {
        **_lr("browDown", 0.8),
        **_lr("noseSneer", 0.4),
        **_lr("mouthFrown", 0.3),
        **_lr("mouthPress", 0.3),
    },
    "sad": {"browInnerUp": 0.7, **_lr("mouthFrown", 0.6), "mouthShrugLower": 0.3},
    "relaxed": {**_lr("mouthSmile", 0.35), **_lr("eyeSquint", 0.2), **_lr("cheekSquint", 0.1)},
    "surprised": {
        **_lr("eyeWide", 0.8),
        "browInnerUp": 0.6,
        **_lr("browOuterUp", 0.7),
        "jawOpen": 0.25,
    },
    "aa": dict(VISEME_POSES["aa"]),
    "ih": dict(VISEME_POSES["ih"]),
    "ou": dict(VISEME_POSES["ou"]),
    "ee": dict(VISEME_POSES["E"]),
    "oh": dict(VISEME_POSES["oh"]),
    "blink": _lr("eyeBlink", 1.0),
    "blinkLeft": {"eyeBlinkLeft": 1.0},
    "blinkRight": {"eyeBlinkRight": 1.0},
    "lookUp": _lr("eyeLookUp", 1.0),
    "lookDown": _lr("eyeLookDown", 1.0),
    # The avatar looks to its own left: its left eye turns out, its right eye in.
    "lookLeft": {"eyeLookOutLeft": 1.0, "eyeLookInRight": 1.0},
    "lookRight": {"eyeLookInLeft": 1.0, "eyeLookOutRight": 1.0},
    "neutral": {},
}


def _vrm_set() -> ExpressionSet:
    to = _matrix(VRM_PRESETS, _VRM_POSES)
    index = {name: i for i, name in enumerate(VRM_PRESETS)}
    # ``blink`` is the common part of blinkLeft and blinkRight (resolved by ``pairs``); the
    # rest is a least-squares fit.
    fitted = [index[n] for n in VRM_PRESETS if n not in ("blink", "neutral")]
    pairs = ((index["blink"], index["blinkLeft"], index["blinkRight"]),)
    return ExpressionSet(
        "vrm-1.0", VRM_PRESETS, to, _pinv(to, fitted), pairs=pairs, unmapped=("neutral",)
    )


VRM_SET: Final = _vrm_set()

# --- FACS action units (the usual ARKit <-> AU correspondences) --------------------------------

_FACS_POSES: Final[dict[str, dict[str, float]]] = {
    "AU1": {"browInnerUp": 1.0},  # inner brow raiser
    "AU2L": {"browOuterUpLeft": 1.0},  # outer brow raiser
    "AU2R": {"browOuterUpRight": 1.0},
    "AU4L": {"browDownLeft": 1.0},  # brow lowerer
    "AU4R": {"browDownRight": 1.0},
    "AU5L": {"eyeWideLeft": 1.0},  # upper lid raiser
    "AU5R": {"eyeWideRight": 1.0},
    "AU6L": {"cheekSquintLeft": 1.0},  # cheek raiser
    "AU6R": {"cheekSquintRight": 1.0},
    "AU7L": {"eyeSquintLeft": 1.0},  # lid tightener
    "AU7R": {"eyeSquintRight": 1.0},
    "AU9L": {"noseSneerLeft": 1.0},  # nose wrinkler
    "AU9R": {"noseSneerRight": 1.0},
    "AU10L": {"mouthUpperUpLeft": 1.0},  # upper lip raiser
    "AU10R": {"mouthUpperUpRight": 1.0},
    "AU12L": {"mouthSmileLeft": 1.0},  # lip corner puller
    "AU12R": {"mouthSmileRight": 1.0},
    "AU14L": {"mouthDimpleLeft": 1.0},  # dimpler
    "AU14R": {"mouthDimpleRight": 1.0},
    "AU15L": {"mouthFrownLeft": 1.0},  # lip corner depressor
    "AU15R": {"mouthFrownRight": 1.0},
    "AU16L": {"mouthLowerDownLeft": 1.0},  # lower lip depressor
    "AU16R": {"mouthLowerDownRight": 1.0},
    "AU17": {"mouthShrugLower": 1.0, "mouthShrugUpper": 1.0},  # chin raiser
    "AU18": {"mouthPucker": 1.0},  # lip pucker
    "AU19": {"tongueOut": 1.0},  # tongue show
    "AU20L": {"mouthStretchLeft": 1.0},  # lip stretcher
    "AU20R": {"mouthStretchRight": 1.0},
    "AU22": {"mouthFunnel": 1.0},  # lip funneler
    "AU24L": {"mouthPressLeft": 1.0},  # lip pressor
    "AU24R": {"mouthPressRight": 1.0},
    "AU26": {"jawOpen": 1.0},  # jaw drop
    "AU28": {"mouthRollLower": 1.0, "mouthRollUpper": 1.0},  # lip suck
    "AU29": {"jawForward": 1.0},  # jaw thrust
    "AU30L": {"jawLeft": 1.0},  # jaw sideways
    "AU30R": {"jawRight": 1.0},
    "AU34": {"cheekPuff": 1.0},  # cheek puff
    "AU45L": {"eyeBlinkLeft": 1.0},  # blink
    "AU45R": {"eyeBlinkRight": 1.0},
    "AU61": {"eyeLookOutLeft": 1.0, "eyeLookInRight": 1.0},  # eyes turn left
    "AU62": {"eyeLookInLeft": 1.0, "eyeLookOutRight": 1.0},  # eyes turn right
    "AU63": {"eyeLookUpLeft": 1.0, "eyeLookUpRight": 1.0},  # eyes up
    "AU64": {"eyeLookDownLeft": 1.0, "eyeLookDownRight": 1.0},  # eyes down
}

FACS_SET: Final = linear_set("facs-au", _FACS_POSES)

# --- sets derived from morph target names ------------------------------------------------------

_SEPARATORS = re.compile(r"[\s_.\-:]+")


def _key(name: str) -> str:
    return _SEPARATORS.sub("", name).lower()


def _side_variants(base: str, pose: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """``base`` for both sides, plus ``baseleft``/``basel``/``leftbase`` ... for one side."""
    out = {base: dict(pose)}
    for side, short in (("Left", "l"), ("Right", "r")):
        one = {
            k: v for k, v in pose.items() if not k.endswith("Right" if side == "Left" else "Left")
        }
        for key in (base + side.lower(), base + short, side.lower() + base, short + base):
            out[key] = one
    return out


def _synonyms() -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for shape in ARKIT_BLENDSHAPES:
        table[_key(shape)] = {shape: 1.0}
        for side, short in (("Left", "l"), ("Right", "r")):
            if shape.endswith(side):
                stem = _key(shape[: -len(side)])
                table[stem + short] = {shape: 1.0}
                table[side.lower() + stem] = {shape: 1.0}
    for viseme in VISEMES:
        pose = dict(VISEME_POSES[viseme])
        for prefix in ("viseme", "v", "vrcv", "ovr"):
            table[prefix + viseme.lower()] = pose
    vrm_aliases = {
        "happy": ("happy", "joy", "fclalljoy", "smile"),
        "angry": ("angry", "fclallangry", "anger"),
        "sad": ("sad", "sorrow", "fclallsorrow"),
        "relaxed": ("relaxed", "fun", "fclallfun", "calm"),
        "surprised": ("surprised", "fclallsurprised", "surprise"),
        "aa": ("a", "aa", "fclmtha", "mouthopen", "openmouth"),
        "ih": ("i", "ih", "fclmthi"),
        "ou": ("u", "ou", "fclmthu"),
        "ee": ("e", "ee", "fclmthe"),
        "oh": ("o", "oh", "fclmtho"),
        "lookUp": ("lookup",),
        "lookDown": ("lookdown",),
        "lookLeft": ("lookleft",),
        "lookRight": ("lookright",),
    }
    for preset, aliases in vrm_aliases.items():
        for alias in aliases:
            table.setdefault(alias, dict(_VRM_POSES[preset]))
    for base, pose in (
        ("blink", _lr("eyeBlink", 1.0)),
        ("eyeclose", _lr("eyeBlink", 1.0)),
        ("fcleyeclose", _lr("eyeBlink", 1.0)),
        ("frown", _lr("mouthFrown", 1.0)),
        ("browdown", _lr("browDown", 1.0)),
        ("browup", {"browInnerUp": 1.0, **_lr("browOuterUp", 1.0)}),
        ("browraise", {"browInnerUp": 1.0, **_lr("browOuterUp", 1.0)}),
        ("squint", _lr("eyeSquint", 1.0)),
        ("sneer", _lr("noseSneer", 1.0)),
        ("wide", _lr("eyeWide", 1.0)),
    ):
        for key, value in _side_variants(base, pose).items():
            table.setdefault(key, value)
    table.setdefault("jawdrop", {"jawOpen": 1.0})
    table.setdefault("pucker", {"mouthPucker": 1.0})
    table.setdefault("kiss", {"mouthPucker": 1.0})
    table.setdefault("puff", {"cheekPuff": 1.0})
    table.setdefault("tongue", {"tongueOut": 1.0})
    table.setdefault("eyesclosed", _lr("eyeBlink", 1.0))
    table.setdefault("winkleft", {"eyeBlinkLeft": 1.0})
    table.setdefault("winkright", {"eyeBlinkRight": 1.0})
    return table


#: Normalised morph target name -> ARKit pose (see :func:`derive_set`).
SYNONYMS: Final[Mapping[str, Mapping[str, float]]] = MappingProxyType(_synonyms())

#: Name prefixes that tools put before the shape's own name (``blendShape1.``, ``Fcl_``...).
_PREFIX = re.compile(r"^(?:.*\.)?(?:blendshape\d*|bs|shape|morph|face)?", re.IGNORECASE)


def _lookup(name: str) -> Mapping[str, float] | None:
    key = _key(name)
    if key in SYNONYMS:
        return SYNONYMS[key]
    short = _key(_PREFIX.sub("", name, count=1))
    return SYNONYMS.get(short)


def derive_set(name: str, target_names: Sequence[str]) -> ExpressionSet:
    """A set whose ARKit map is derived from morph target names by synonyms: ARKit names in
    any case and separator style (``EyeBlink_L``, ``blendShape1.jawOpen``), viseme names
    (``viseme_aa``, ``vrc.v_oh``), VRM 0.x/1.0 and VRoid names (``A``, ``Joy``,
    ``Fcl_MTH_A``), plain English (``smile``, ``blink_left``). Names with no synonym are
    ``unmapped``. When two names map to the same pose, both keep it (a stream driving either
    converts)."""
    poses: dict[str, Mapping[str, float]] = {}
    for target in target_names:
        pose = _lookup(target)
        if pose is not None:
            poses[target] = pose
    return linear_set(name, poses, target_names)
