"""The streaming level meter: the level of each 10 ms hop's 25 ms window, and its level
relative to a peak tracker; nothing else (the classifier's features are sphinx_mfcc's)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from avatar_mf.stages.voice.features import (
    HOP,
    LEVEL_FLOOR,
    SAMPLE_RATE,
    WINDOW,
    FrontEnd,
    HopFeatures,
)


def test_level_is_the_windows_rms_in_db_full_scale() -> None:
    """A 1 kHz sine of amplitude A fills every whole window with RMS A / sqrt(2): its level
    is 20 log10(A / sqrt(2) / 32768) dB FS once the window is past the silent start."""
    amplitude = 10000.0
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    x = amplitude * np.sin(2 * np.pi * 1000.0 * t)
    level = FrontEnd().push(x).level
    expected = 20 * math.log10(amplitude / math.sqrt(2) / 32768)
    whole = WINDOW // HOP + 1  # the first hop whose window holds no start-up silence
    assert level.size == SAMPLE_RATE // HOP
    assert np.allclose(level[whole:], expected, atol=0.01)
    assert level[0] < expected - 3  # the first window is mostly silence


def test_digital_silence_sits_at_the_floor() -> None:
    assert np.all(FrontEnd().push(np.zeros(HOP * 5, dtype=np.int16)).level == LEVEL_FLOOR)


def test_packet_sizes_do_not_change_the_levels() -> None:
    """Hops cut across packets: odd packet sizes give the rows one push gives."""
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(HOP * 40 + 77) * 3000).astype(np.int16)
    whole = FrontEnd().push(x)
    front, parts, start = FrontEnd(), [], 0
    for size in (7, 320, 333, 1000, 160, 2000, 2600):
        parts.append(front.push(x[start : start + size]))
        start += size
    assert np.allclose(np.concatenate([p.level for p in parts]), whole.level)
    assert np.allclose(np.concatenate([p.relative_level for p in parts]), whole.relative_level)


def test_relative_level_does_not_depend_on_the_gain() -> None:
    """The same voice 12 dB louder has the same relative level once the peak tracker has
    followed it (from the first loud hop: it starts at -30 dB FS)."""
    rng = np.random.default_rng(3)
    envelope = np.repeat(rng.uniform(0.05, 1.0, 30), HOP * 2)
    x = rng.standard_normal(envelope.size) * envelope
    quiet, loud = FrontEnd().push(x * 2000), FrontEnd().push(x * 8000)
    assert np.allclose(loud.level - quiet.level, 20 * math.log10(4), atol=1e-6)
    assert np.allclose(loud.relative_level[10:], quiet.relative_level[10:], atol=1e-6)
    assert np.all(quiet.relative_level <= 0)


def test_only_the_level_is_computed() -> None:
    """The classifier no longer decides on this front end's cepstra: it makes none."""
    assert [f.name for f in dataclasses.fields(HopFeatures)] == ["level", "relative_level"]


def test_each_session_has_its_own_state() -> None:
    """Two sessions fed different audio differ; a session fed the same audio as a fresh one
    measures the same; a reset forgets the audio but not the peak."""
    rng = np.random.default_rng(5)
    loud = (rng.standard_normal(HOP * 20) * 8000).astype(np.int16)
    quiet = (rng.standard_normal(HOP * 20) * 80).astype(np.int16)
    a, b, c = FrontEnd(), FrontEnd(), FrontEnd()
    fa, fb, fc = a.push(loud), b.push(quiet), c.push(loud)
    assert np.allclose(fa.level, fc.level)
    assert fa.level.mean() > fb.level.mean() + 30
    a.reset()
    again = a.push(loud)
    assert np.allclose(again.level, fa.level)
    assert np.all(again.relative_level[:3] <= fa.relative_level[:3])
