"""Phoneme -> viseme mapping, viseme targets and the co-articulation model (no espeak-ng)."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_INDEX, VISEMES
from avatar_mf.stages.animation_data.coarticulation import Coarticulator
from avatar_mf.stages.animation_data.phonemes import (
    BASE,
    ENGLISH,
    VisemeSegment,
    phonemes_to_visemes,
    visemes_for,
)
from avatar_mf.stages.animation_data.visemes import (
    MOUTH_BLENDSHAPES,
    VISEME_TARGETS,
    dominance_matrix,
    target_matrix,
)

# Every mnemonic espeak-ng 1.51 emitted for English (en-us, en, en-gb-x-rp, en-029) on a few
# thousand words of mixed text.
ESPEAK_ENGLISH = (
    "0 3 3: @ @- @2 @5 @L A@ D E I I# I2 N O2 O: O@ OI S T U U@ V Z _ _: a a# aI aI3 aI@ aU aa "
    "b d dZ e@ eI f g h i i: i@ i@3 j k l m n n- o@ oU p r r- s t t# t2 t[ tS u: v w x z ?"
).split()


def test_english_inventory_is_covered() -> None:
    for phoneme in ESPEAK_ENGLISH:
        assert phoneme in ENGLISH or phoneme.startswith("_"), phoneme
    for targets in ENGLISH.values():
        assert abs(sum(share for _, share in targets) - 1.0) < 1e-9
        assert all(viseme in VISEMES for viseme, _ in targets)
    assert set(BASE.values()) <= set(VISEMES)
    assert set(VISEME_TARGETS) == set(VISEMES)


@pytest.mark.parametrize(
    ("phoneme", "viseme"),
    [
        ("p", "PP"),
        ("b", "PP"),
        ("m", "PP"),
        ("f", "FF"),
        ("T", "TH"),
        ("t#", "DD"),
        ("k", "kk"),
        ("tS", "CH"),
        ("z", "SS"),
        ("n", "nn"),
        ("r", "RR"),
        ("A:", "aa"),
        ("E", "E"),
        ("i:", "ih"),
        ("O:", "oh"),
        ("u:", "ou"),
        ("_:", "sil"),
        # other languages, through the modifier-stripping and first-letter fallbacks
        ("A~", "aa"),  # French nasal vowel
        ("d;", "DD"),  # Russian palatalised d
        ("l^", "nn"),  # Spanish ll
        ("y:", "ou"),  # German long u-umlaut
        ("C", "CH"),  # German ich-Laut
        ("ts", "DD"),
    ],
)
def test_visemes_for(phoneme: str, viseme: str) -> None:
    targets = visemes_for(phoneme)
    assert targets is not None and targets[0][0] == viseme


def test_track_markers_diphthongs_and_unknowns() -> None:
    events = [(0.05, "h"), (0.1, "aI"), (0.3, ";"), (0.35, "%9"), (0.4, "(en)"), (0.45, "_:")]
    track = phonemes_to_visemes(events, 0.6)
    assert [(s.viseme, s.phoneme) for s in track.segments] == [
        ("sil", "_"),
        ("kk", "h"),
        ("aa", "aI"),
        ("ih", "aI"),
        ("DD", "%9"),  # unknown: the default consonant, counted
        ("sil", "_:"),
    ]
    assert track.unknown == {"%9": 1}
    # contiguous cover of [0, end); the marker ';' extended "aI" to the next phoneme
    segments = track.segments
    assert segments[0].start == 0.0 and segments[-1].end == 0.6
    assert all(a.end == b.start for a, b in zip(segments, segments[1:], strict=False))
    assert segments[3].end == pytest.approx(0.35)
    assert phonemes_to_visemes([], 0.0).segments == ()


def test_targets_have_the_expected_character() -> None:
    t = {v: VISEME_TARGETS[v] for v in VISEMES}
    assert t["aa"]["jawOpen"] > max(t[v].get("jawOpen", 0.0) for v in VISEMES if v != "aa")
    assert t["PP"]["mouthPressLeft"] > 0.3 and t["PP"]["jawOpen"] < 0.1
    assert t["ou"]["mouthPucker"] > 0.5 and t["oh"]["mouthFunnel"] > 0.4
    assert t["ih"]["mouthStretchLeft"] > 0.2 and t["E"]["mouthStretchLeft"] > 0.1
    assert not t["sil"]
    assert target_matrix().shape == dominance_matrix().shape == (15, len(MOUTH_BLENDSHAPES))
    assert list(MOUTH_BLENDSHAPES) == sorted(MOUTH_BLENDSHAPES, key=ARKIT_INDEX.__getitem__)


def _col(name: str) -> int:
    return MOUTH_BLENDSHAPES.index(name)


def _segments(*spec: tuple[str, float]) -> list[VisemeSegment]:
    out, at = [], 0.0
    for viseme, length in spec:
        out.append(VisemeSegment(at, at + length, viseme, viseme))
        at += length
    return out


@pytest.mark.parametrize("offset", [0.0, 0.007, 0.013, 0.0166])
def test_short_bilabial_closes_the_lips_at_any_frame_phase(offset: float) -> None:
    # "a-p-a": a 25 ms closure between two open vowels, sampled at 30 fps.
    segments = _segments(("sil", 0.2), ("aa", 0.15), ("PP", 0.025), ("aa", 0.15), ("sil", 0.3))
    times = np.arange(0, 0.8, 1 / 30) + offset
    w = Coarticulator().weights(segments, times)
    closure = 0.2 + 0.15 + 0.0125
    at = int(np.argmin(np.abs(times - closure)))
    press, close, jaw = (w[at, _col(n)] for n in ("mouthPressLeft", "mouthClose", "jawOpen"))
    assert press > 0.35
    assert close >= 0.85 * jaw  # lips sealed over what is left of the jaw opening
    vowel = int(np.argmin(np.abs(times - (0.2 + 0.075))))
    assert w[vowel, _col("jawOpen")] > 0.45
    assert w[vowel, _col("mouthPressLeft")] < 0.1
    # no jumps: at 30 fps no weight moves by more than 0.45 between frames
    assert np.abs(np.diff(w, axis=0)).max() < 0.45
    # rest in silence far from speech
    assert np.all(w[times < 0.04] < 0.01) and np.all(w[times > 0.72] < 1e-3)


def test_weak_consonants_take_the_lips_of_their_vowels() -> None:
    # s between rounded vowels is rounded; between spread vowels it is spread.
    rounded = _segments(("ou", 0.15), ("SS", 0.08), ("ou", 0.15))
    spread = _segments(("ih", 0.15), ("SS", 0.08), ("ih", 0.15))
    t = np.array([0.19])
    c = Coarticulator()
    assert c.weights(rounded, t)[0, _col("mouthPucker")] > 0.3
    assert c.weights(spread, t)[0, _col("mouthPucker")] == 0.0
    assert c.weights(spread, t)[0, _col("mouthSmileLeft")] > 0.15


def test_long_utterance_blocks_match_a_direct_evaluation() -> None:
    rng = np.random.default_rng(1)
    spec = [(str(rng.choice(VISEMES)), float(rng.uniform(0.03, 0.2))) for _ in range(400)]
    segments = _segments(*spec)
    times = np.arange(0, segments[-1].end, 1 / 30)
    c = Coarticulator()
    blocked = c.weights(segments, times)
    pieces = np.concatenate(
        [c.weights(segments, times[i : i + 7]) for i in range(0, len(times), 7)]
    )
    np.testing.assert_allclose(blocked, pieces, atol=1e-9)
    assert blocked.min() >= 0.0 and blocked.max() <= 1.0


def test_articulation_scales_movement() -> None:
    segments = _segments(("aa", 0.3))
    t = np.array([0.15])
    assert Coarticulator(articulation=0.5).weights(segments, t)[0, _col("jawOpen")] == (
        pytest.approx(0.5 * Coarticulator().weights(segments, t)[0, _col("jawOpen")])
    )
    with pytest.raises(ValueError):
        Coarticulator(articulation=0.0)
