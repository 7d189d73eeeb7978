"""Prosody in the voice face (stages/voice/face.py): pitch accents raise the brows (and nod a
little), energy accents nod (and raise the brows a little), a flat voice moves neither, octave
jumps and clipped audio make no accent; end to end through the voice stage on a synthetic
voice whose pitch rises, against the same voice kept flat."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_INDEX, VISEMES
from avatar_mf.arf.units import BlendshapeUnit, JointUnit, decode_unit
from avatar_mf.pipeline.frames import AnimationUnitFrame, Frame
from avatar_mf.stages.voice.evaluation import packets
from avatar_mf.stages.voice.face import BROW_MAX, CROSS_SHARE, NOD_MAX, FaceModel
from avatar_mf.stages.voice.features import SAMPLE_RATE
from avatar_mf.stages.voice.stage import VoiceStage, VoiceToAnimation
from avatar_mf.testing.pipeline import stage_context

RATE = 30.0
#: The accent rises from 2.5 s to 2.8 s, is held to 3.1 s and gone by 3.3 s; before 2.4 s
#: the onset's energy accent (speech after silence) has faded.
TIMES = [2.5, 2.8, 3.1, 3.3]
SECONDS = 4.0
SETTLED = int(2.4 * RATE)
ACCENT = slice(int(2.5 * RATE), int(3.4 * RATE))
#: Brows below this are still (what is left of the onset's accent at 2.4 s is ~0.014).
QUIET = 0.1 * BROW_MAX
SPEECH = np.zeros(len(VISEMES))
SPEECH[VISEMES.index("aa")] = 1.0


def _run(f0: list[float], levels: list[float] | None = None, *, clipped: bool = False
         ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Brows (browInnerUp) and nod (head pitch, radians) per frame of a speaking face."""
    face = FaceModel(random.Random(1), rate=RATE, blinks=False)
    brow = face.names.index("browInnerUp")
    brows, nods = [], []
    for k, hz in enumerate(f0):
        level = -6.0 if levels is None else levels[k]
        frame = face.step(SPEECH, level, clipped=clipped, f0=hz)
        brows.append(frame.weights[brow])
        nods.append(frame.head[1])
    return np.array(brows), np.array(nods)


def _contour(accent_st: float) -> list[float]:
    """150 Hz, with a rise of ``accent_st`` semitones at TIMES."""
    out: list[float] = []
    for k in range(int(SECONDS * RATE)):
        t = k / RATE
        rise = float(np.interp(t, TIMES, [0.0, accent_st, accent_st, 0.0]))
        out.append(150.0 * 2.0 ** (rise / 12.0))
    return out


def test_a_pitch_rise_raises_the_brows_and_a_flat_voice_does_not() -> None:
    rising_brows, rising_nods = _run(_contour(6.0))
    flat_brows, flat_nods = _run(_contour(0.0))
    assert flat_brows[SETTLED:].max() < QUIET and flat_nods[SETTLED:].max() < 0.1 * NOD_MAX
    assert rising_brows[ACCENT].max() > 0.8 * BROW_MAX
    assert rising_brows[SETTLED : ACCENT.start].max() < QUIET  # not before the rise
    assert rising_brows[-5:].max() < 0.2 * BROW_MAX  # and it fades after it
    # Nods follow pitch accents at the cross share only.
    nod = rising_nods[ACCENT].max()
    assert nod == pytest.approx(CROSS_SHARE * NOD_MAX * rising_brows[ACCENT].max() / BROW_MAX)


def test_a_small_rise_is_no_accent_and_a_larger_one_a_bigger_accent() -> None:
    small, _ = _run(_contour(0.8))
    medium, _ = _run(_contour(3.0))
    large, _ = _run(_contour(5.0))
    assert small[SETTLED:].max() < QUIET
    assert 0.1 * BROW_MAX < medium[SETTLED:].max() < large[SETTLED:].max()


def test_an_octave_jump_is_a_tracking_error_not_an_accent() -> None:
    f0 = [150.0] * ACCENT.start + [300.0] * 9 + [150.0] * 20  # the tracker jumps an octave
    brows, _ = _run(f0)
    assert brows[SETTLED:].max() < QUIET


def test_no_pitch_accent_before_the_median_has_history() -> None:
    f0 = [0.0] * SETTLED + [100.0] * 5 + [200.0] * 20  # a rise before 15 voiced frames
    brows, _ = _run(f0)
    assert brows[SETTLED:].max() < QUIET


def test_short_unvoiced_stretches_keep_the_accent() -> None:
    f0 = _contour(6.0)
    held = list(f0)
    gap = slice(int(2.85 * RATE), int(2.85 * RATE) + 3)  # a 100 ms voiceless consonant
    held[gap] = [0.0] * 3
    brows, _ = _run(f0)
    with_gap, _ = _run(held)
    assert np.all(with_gap[gap] > 0.8 * brows[gap])


def test_an_energy_accent_nods_and_raises_the_brows_less() -> None:
    levels = [-20.0] * int(2.5 * RATE) + [-8.0] * int(0.3 * RATE) + [-20.0] * int(1.2 * RATE)
    brows, nods = _run([150.0] * len(levels), levels)
    assert nods[ACCENT].max() > 0.5 * NOD_MAX
    assert nods[SETTLED : ACCENT.start].max() < 0.1 * NOD_MAX
    assert brows[ACCENT].max() == pytest.approx(
        CROSS_SHARE * BROW_MAX * nods[ACCENT].max() / NOD_MAX
    )


def test_clipped_audio_makes_no_accent() -> None:
    brows, nods = _run(_contour(6.0), clipped=True)
    assert brows.max() == 0.0 and nods.max() == 0.0


# -- through the stage ----------------------------------------------------------------------


def _voice(accent_st: float) -> NDArray[np.int16]:
    """A vowel-like voice (harmonics 1/k up to 4 kHz) at a steady level, F0 as _contour."""
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    rise = np.interp(t, TIMES, [0.0, accent_st, accent_st, 0.0])
    f0 = 150.0 * 2.0 ** (rise / 12.0)
    phase = 2.0 * math.pi * np.cumsum(f0) / SAMPLE_RATE
    x = np.zeros_like(t)
    for k in range(1, 20):
        x += np.where(k * f0 < 4000.0, np.sin(k * phase) / k, 0.0)
    out: NDArray[np.int16] = (x / np.abs(x).max() * 6000.0).astype(np.int16)
    return out


def _stage_output(pcm: NDArray[np.int16]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    stage = VoiceToAnimation(blinks=False).open(stage_context())
    assert isinstance(stage, VoiceStage)
    out: list[Frame] = []
    for frame in packets(pcm):
        out.extend(stage.process_inline(frame))
    units = [decode_unit(f.unit) for f in out if isinstance(f, AnimationUnitFrame)]
    brows = [
        u.weights[u.indices.index(ARKIT_INDEX["browInnerUp"])]
        for u in units
        if isinstance(u, BlendshapeUnit)
    ]
    nods = [-u.matrices[0][6] for u in units if isinstance(u, JointUnit)]  # m[1][2] = -sin
    return np.array(brows), np.array(nods)


def test_the_stage_raises_the_brows_on_a_rising_voice_only() -> None:
    rising, rising_nods = _stage_output(_voice(6.0))
    flat, flat_nods = _stage_output(_voice(0.0))
    assert flat[SETTLED:].max() < QUIET
    assert rising[ACCENT].max() > 0.6 * BROW_MAX
    assert rising[SETTLED : ACCENT.start].max() < QUIET
    assert np.abs(flat_nods[ACCENT]).max() < 0.1 * NOD_MAX
    assert rising_nods[ACCENT].max() > 0.3 * NOD_MAX  # the pitch accent's share of a nod
