"""Animation converters on known inputs, and the round-trip errors docs/avatar-format.md states.

Expected values are the physical meaning of the shapes (an open-mouth viseme opens the jaw,
a left blink closes the left eye), not numbers read back from the code.
"""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX, VISEMES
from avatar_mf.arf.units import (
    BlendshapeUnit,
    ConfigUnit,
    JointUnit,
    decode_unit,
    encode_unit,
)
from avatar_mf.avatar.mapping import (
    ARKIT_SET,
    FACS_SET,
    VISEME_SET,
    VRM_PRESETS,
    VRM_SET,
    ExpressionSet,
    derive_set,
    linear_set,
)
from avatar_mf.stages.conversion.animation import StreamConverter
from avatar_mf.stages.conversion.filters import parse_filter

MOUTH = [i for i, n in enumerate(ARKIT_BLENDSHAPES) if n.startswith(("mouth", "jaw", "tongue"))]


def one_hot(s: ExpressionSet, name: str, weight: float = 1.0) -> np.ndarray:
    v = np.zeros(len(s.names), np.float32)
    v[s.index[name]] = weight
    return v


def arkit(**weights: float) -> np.ndarray:
    a = np.zeros(len(ARKIT_BLENDSHAPES), np.float32)
    for name, w in weights.items():
        a[ARKIT_INDEX[name]] = w
    return a


def test_a_pure_aa_viseme_opens_the_jaw_and_comes_back_as_aa() -> None:
    a = VISEME_SET.arkit(one_hot(VISEME_SET, "aa"))
    assert 0.5 <= a[ARKIT_INDEX["jawOpen"]] <= 0.8
    assert a[ARKIT_INDEX["eyeBlinkLeft"]] == 0.0
    back = VISEME_SET.from_common(a)
    assert VISEMES[int(back.argmax())] == "aa" and back.max() >= 0.9


@pytest.mark.parametrize("viseme", ["PP", "FF", "TH", "CH", "SS", "aa", "ih", "oh", "ou"])
def test_distinct_visemes_survive_a_round_trip(viseme: str) -> None:
    back = VISEME_SET.from_common(VISEME_SET.arkit(one_hot(VISEME_SET, viseme)))
    assert VISEMES[int(back.argmax())] == viseme


def test_viseme_shapes_mean_what_they_say() -> None:
    pp = VISEME_SET.arkit(one_hot(VISEME_SET, "PP"))
    ou = VISEME_SET.arkit(one_hot(VISEME_SET, "ou"))
    sil = VISEME_SET.arkit(one_hot(VISEME_SET, "sil"))
    assert pp[ARKIT_INDEX["mouthPressLeft"]] > 0.3 and pp[ARKIT_INDEX["jawOpen"]] < 0.1
    assert ou[ARKIT_INDEX["mouthPucker"]] > 0.5
    assert not sil.any()


def test_vrm_presets_on_known_faces() -> None:
    happy = VRM_SET.arkit(one_hot(VRM_SET, "happy"))
    assert (
        happy[ARKIT_INDEX["mouthSmileLeft"]] > 0.5 and happy[ARKIT_INDEX["mouthSmileRight"]] > 0.5
    )
    left = VRM_SET.from_common(arkit(eyeBlinkLeft=1.0))
    assert left[VRM_SET.index["blinkLeft"]] == pytest.approx(1.0, abs=1e-3)
    assert left[VRM_SET.index["blink"]] == 0.0
    both = VRM_SET.from_common(arkit(eyeBlinkLeft=0.8, eyeBlinkRight=0.8))
    assert both[VRM_SET.index["blink"]] == pytest.approx(0.8, abs=1e-3)
    assert both[VRM_SET.index["blinkLeft"]] == pytest.approx(0.0, abs=1e-3)
    # The avatar looks to its own left: its left eye turns outwards, its right eye inwards.
    look = VRM_SET.from_common(arkit(eyeLookOutLeft=1.0, eyeLookInRight=1.0))
    assert VRM_PRESETS[int(look.argmax())] == "lookLeft"
    smile = VRM_SET.from_common(VRM_SET.arkit(one_hot(VRM_SET, "happy")))
    assert VRM_PRESETS[int(smile.argmax())] == "happy"


def test_facs_units_are_the_documented_arkit_shapes() -> None:
    for au, shape in (
        ("AU12L", "mouthSmileLeft"),
        ("AU26", "jawOpen"),
        ("AU1", "browInnerUp"),
        ("AU45R", "eyeBlinkRight"),
        ("AU9L", "noseSneerLeft"),
    ):
        assert FACS_SET.pose(au) == {shape: 1.0}
    back = FACS_SET.from_common(arkit(mouthSmileLeft=0.7, jawOpen=0.4))
    assert back[FACS_SET.index["AU12L"]] == pytest.approx(0.7, abs=1e-3)
    assert back[FACS_SET.index["AU26"]] == pytest.approx(0.4, abs=1e-3)
    assert back[FACS_SET.index["AU12R"]] == pytest.approx(0.0, abs=1e-3)


def _round_trip(s: ExpressionSet, faces: np.ndarray) -> tuple[float, float]:
    errors = [s.arkit(s.from_common(a)) - a for a in faces]
    return max(float(np.abs(e).max()) for e in errors), float(
        np.mean([np.sqrt(np.mean(e**2)) for e in errors])
    )


def _own_mixes(s: ExpressionSet, rng: np.random.Generator, n: int = 300) -> np.ndarray:
    faces = []
    for _ in range(n):
        v = np.zeros(len(s.names), np.float32)
        v[rng.choice(len(s.names), 2, replace=False)] = rng.random(2)
        faces.append(s.arkit(v))
    return np.array(faces)


# (set, max error on faces the set can express, mean RMS on arbitrary faces): the bounds of
# the table in docs/avatar-format.md (Conversions).
@pytest.mark.parametrize(
    ("s", "own_max", "any_rms"),
    [(VISEME_SET, 0.12, 0.35), (VRM_SET, 0.02, 0.30), (FACS_SET, 1e-3, 0.12)],
)
def test_round_trip_errors_stay_within_the_documented_bounds(
    s: ExpressionSet, own_max: float, any_rms: float
) -> None:
    rng = np.random.default_rng(7)
    worst, _ = _round_trip(s, _own_mixes(s, rng))
    assert worst <= own_max
    faces = (rng.random((300, len(ARKIT_BLENDSHAPES))) * 0.6).astype(np.float32)
    _, rms = _round_trip(s, faces)
    assert rms <= any_rms
    assert _round_trip(ARKIT_SET, faces)[0] == 0.0  # the common format itself loses nothing


def test_a_declared_linear_map_for_an_87_shape_rig() -> None:
    # The study's example: a proprietary rig with 87 shapes; the avatar declares how each
    # drives ARKit (here: 52 one-to-one, 15 visemes as combinations, 20 it cannot map).
    names = [f"rig_{n}" for n in ARKIT_BLENDSHAPES] + [f"vis_{v}" for v in VISEMES]
    names += [f"hair_{k}" for k in range(20)]
    poses = {f"rig_{n}": {n: 1.0} for n in ARKIT_BLENDSHAPES}
    poses["vis_aa"] = {"jawOpen": 0.6, "mouthLowerDownLeft": 0.2, "mouthLowerDownRight": 0.2}
    rig = linear_set("rig-87", poses, names)
    assert len(rig.names) == 87 and len(rig.unmapped) == 20 + 14
    s = one_hot(rig, "vis_aa")
    assert rig.arkit(s)[ARKIT_INDEX["jawOpen"]] == pytest.approx(0.6)
    back = rig.from_common(arkit(jawOpen=0.5, eyeBlinkLeft=1.0))
    assert back[rig.index["rig_eyeBlinkLeft"]] > 0.9
    with pytest.raises(ValueError, match="not ARKit"):
        linear_set("bad", {"x": {"jawOpn": 1.0}})


def test_maps_derived_from_morph_target_names() -> None:
    names = [
        "EyeBlink_L",
        "blendShape1.jawOpen",
        "viseme_aa",
        "Fcl_MTH_A",
        "Joy",
        "hairWiggle",
        "mouthSmile_R",
        "vrc.v_oh",
        "Blink",
        "browUp_left",
    ]
    s = derive_set("derived", names)
    assert s.unmapped == ("hairWiggle",)
    assert s.pose("EyeBlink_L") == {"eyeBlinkLeft": 1.0}
    assert s.pose("blendShape1.jawOpen") == {"jawOpen": 1.0}
    assert s.pose("mouthSmile_R") == {"mouthSmileRight": 1.0}
    assert s.pose("Blink") == {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}
    assert s.pose("browUp_left") == {"browInnerUp": 1.0, "browOuterUpLeft": 1.0}
    assert s.pose("viseme_aa")["jawOpen"] > 0.5
    assert s.pose("Fcl_MTH_A")["jawOpen"] > 0.5
    assert s.pose("Joy")["mouthSmileLeft"] > 0.5


def test_stream_converter_units() -> None:
    conv = StreamConverter(VISEME_SET, ARKIT_SET, "arf-face-v1")
    config = decode_unit(conv.convert(encode_unit(ConfigUnit(5, "ovr-visemes-15", 1000.0))))
    assert config == ConfigUnit(5, "arf-face-v1", 1000.0)
    aa = VISEMES.index("aa")
    out = decode_unit(conv.convert(encode_unit(BlendshapeUnit(40, 0, (aa,), (1.0,), (0.9,)))))
    assert isinstance(out, BlendshapeUnit)
    assert out.timestamp == 40 and out.indices == tuple(range(52)) and out.confidences is None
    assert 0.5 <= out.weights[ARKIT_INDEX["jawOpen"]] <= 0.8
    # A unit with some entries updates those only: aa stays while PP comes in.
    pp = VISEMES.index("PP")
    out2 = decode_unit(conv.convert(encode_unit(BlendshapeUnit(80, 0, (pp,), (1.0,)))))
    assert isinstance(out2, BlendshapeUnit)
    assert out2.weights[ARKIT_INDEX["jawOpen"]] >= out.weights[ARKIT_INDEX["jawOpen"]]
    assert out2.weights[ARKIT_INDEX["mouthPressLeft"]] > 0.3
    # NaN and out-of-set indices do not poison the stream.
    out3 = decode_unit(
        conv.convert(encode_unit(BlendshapeUnit(90, 0, (aa, 99), (float("nan"), 1.0))))
    )
    assert isinstance(out3, BlendshapeUnit) and all(0.0 <= w <= 1.0 for w in out3.weights)
    joint = encode_unit(
        JointUnit(7, 0, (1,), (tuple(float(i == j) for i in range(4) for j in range(4)),))
    )
    assert conv.convert(joint) == joint
    # A new CONFIG starts the weights from zero.
    conv.convert(encode_unit(ConfigUnit(100, "ovr-visemes-15", 1000.0)))
    out4 = decode_unit(conv.convert(encode_unit(BlendshapeUnit(110, 0, (pp,), (0.0,)))))
    assert isinstance(out4, BlendshapeUnit) and not any(out4.weights)


def test_filters_on_arkit_weights() -> None:
    face = arkit(jawOpen=0.9, mouthFrownLeft=0.8, browDownLeft=0.7, eyeBlinkLeft=1.0)
    calm = parse_filter(
        {
            "clamp": 0.4,
            "replace": {"mouthFrownLeft": "mouthPressLeft"},
            "suppress": ["browDownLeft"],
            "scale": {"eyeBlinkLeft": 0.5},
        }
    )
    out = calm.apply(face)
    assert out[ARKIT_INDEX["jawOpen"]] == pytest.approx(0.4)
    assert out[ARKIT_INDEX["mouthFrownLeft"]] == 0.0
    assert out[ARKIT_INDEX["mouthPressLeft"]] == pytest.approx(0.4)
    assert out[ARKIT_INDEX["browDownLeft"]] == 0.0
    assert out[ARKIT_INDEX["eyeBlinkLeft"]] == pytest.approx(0.4)  # scaled to .5, clamped
    assert not parse_filter({"neutral": True}).apply(face).any()
    conv = StreamConverter(ARKIT_SET, VISEME_SET, "ovr-visemes-15", parse_filter({"neutral": True}))
    unit = decode_unit(conv.convert(encode_unit(BlendshapeUnit.dense(1, face.tolist()))))
    assert isinstance(unit, BlendshapeUnit) and not any(unit.weights)
    for bad in (
        {"clamp": 2},
        {"suppress": ["nose"]},
        {"frown": 1},
        {"neutral": 1},
        {"replace": {"jawOpen": "*"}},
    ):
        with pytest.raises(ValueError):
            parse_filter(bad)


def test_the_most_specific_audience_rule_wins() -> None:
    from avatar_mf.stages.conversion.filters import Audience, FilterBook, FilterError

    everyone, group, person, seat = (parse_filter({"clamp": c}) for c in (0.9, 0.7, 0.5, 0.3))
    book = FilterBook(groups={"class": ("sip:pupil-*@school",)}, policy={"*": everyone})
    pupil = Audience("p2", "sip:pupil-1@school")
    parent = Audience("p3", "sip:parent@home")
    assert book.for_receiver(pupil) is everyone  # only the operator's policy so far
    book.set(["group:class"], group)
    assert book.for_receiver(pupil) is group and book.for_receiver(parent) is everyone
    book.set(["sip:pupil-1@school"], person)
    assert book.for_receiver(pupil) is person
    book.set(["p2"], seat)
    assert book.for_receiver(pupil) is seat
    book.set(["p2", "sip:pupil-1@school"], None)
    assert book.for_receiver(pupil) is group
    with pytest.raises(FilterError, match="no receiver group"):
        book.set(["group:staff"], seat)
