"""The pocketsphinx-compatible front end: properties only a correct MFCC has, and its
streaming (rows complete three hops late, whatever the packet size)."""

from __future__ import annotations

import math

import numpy as np

from avatar_mf.stages.voice.features import HOP, SAMPLE_RATE
from avatar_mf.stages.voice.sphinx_mfcc import (
    CEPSTRA,
    DELTA_DELAY,
    FEATURES,
    SphinxFeatures,
    mel_filters,
)


def _noise(seconds: float, seed: int = 1, scale: float = 3000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * scale).astype(np.float64)


def test_a_louder_signal_moves_c0_alone() -> None:
    """Doubling the amplitude multiplies every mel energy by 4: with the log and an
    orthonormal DCT-II of 25 filters that adds sqrt(25) ln 4 to c0 (lifter weight 1) and
    leaves c1..c12 as they were (the DCT of a constant is zero past c0)."""
    x = _noise(1.0)
    quiet, loud = SphinxFeatures().cepstra(x), SphinxFeatures().cepstra(2.0 * x)
    hops = slice(5, None)  # past the windows that start with silence
    shift = loud[hops, 0] - quiet[hops, 0]
    assert np.allclose(shift, 5.0 * math.log(4.0), atol=1e-3)
    assert np.allclose(loud[hops, 1:], quiet[hops, 1:], atol=1e-3)


def test_a_tone_peaks_in_the_mel_filter_centred_nearest_it() -> None:
    """25 filters evenly spaced in mel (2595 log10(1 + f/700)) from 130 to 6800 Hz: a tone
    shows up in the log mel spectrum (the cepstra inverted) at the filter whose centre is
    nearest it."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    edges = np.linspace(mel(130.0), mel(6800.0), 27)
    centres_mel = edges[1:-1]
    n = np.arange(25)
    basis = np.array([np.cos(np.pi / 25 * i * (n + 0.5)) for i in range(CEPSTRA)])
    lifter = 1.0 + 11.0 * np.sin(np.arange(CEPSTRA) * np.pi / 22)
    for hz in (300.0, 1000.0, 2500.0, 5000.0):
        t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
        c = SphinxFeatures().cepstra(8000.0 * np.sin(2 * np.pi * hz * t))[10]
        # a smoothed log mel spectrum from the 13 cepstra (DCT-III up to scale)
        smooth = (c / lifter)[1:] @ basis[1:]
        assert abs(int(np.argmax(smooth)) - int(np.argmin(abs(centres_mel - mel(hz))))) <= 1, hz


def test_rows_come_three_hops_late_whatever_the_packet_size() -> None:
    x = _noise(0.8, seed=2)
    whole = SphinxFeatures().push(x)
    hops = x.size // HOP
    assert whole.shape == (hops - DELTA_DELAY, FEATURES)
    for size in (1, 37, 320, 1000):
        front = SphinxFeatures()
        parts = [front.push(x[s : s + size]) for s in range(0, x.size, size)]
        assert np.allclose(np.concatenate(parts), whole, atol=1e-9), size
    one = SphinxFeatures()
    counts = [one.push(x[s : s + HOP]).shape[0] for s in range(0, 6 * HOP, HOP)]
    assert counts == [0, 0, 0, 1, 1, 1]


def test_deltas_are_sphinx_1s_c_d_dd() -> None:
    """Row t = [c[t], c[t+2] - c[t-2], (c[t+3] - c[t-1]) - (c[t+1] - c[t-3])] of the
    mean-normalised cepstra, the first hop repeated before the start."""
    x = _noise(0.6, seed=4) * np.linspace(0.2, 1.5, int(0.6 * SAMPLE_RATE))
    rows = SphinxFeatures().push(x)
    c = rows[:, :CEPSTRA]
    for t in range(3, rows.shape[0] - 3):
        assert np.allclose(rows[t, CEPSTRA : 2 * CEPSTRA], c[t + 2] - c[t - 2])
        expected = (c[t + 3] - c[t - 1]) - (c[t + 1] - c[t - 3])
        assert np.allclose(rows[t, 2 * CEPSTRA :], expected)
    assert np.allclose(rows[0, CEPSTRA : 2 * CEPSTRA], c[2] - c[0])


def test_the_running_mean_removes_a_fixed_channel() -> None:
    """A fixed filter (a channel, a microphone) adds a constant to the log spectrum: after a
    few seconds the live mean normalisation takes most of it out of the cepstra."""
    x = _noise(8.0, seed=5)
    coloured = np.convolve(x, [1.0, 0.8], mode="same")  # a fixed tilt
    plain = SphinxFeatures().push(x)[:, :CEPSTRA]
    tilted = SphinxFeatures().push(coloured)[:, :CEPSTRA]
    early = np.abs(plain[20:60, 1:4] - tilted[20:60, 1:4]).mean()
    late = np.abs(plain[-100:, 1:4] - tilted[-100:, 1:4]).mean()
    assert late < 0.5 * early


def test_a_reset_keeps_the_mean_and_restarts_the_context() -> None:
    x = _noise(0.5, seed=6)
    front = SphinxFeatures()
    front.push(_noise(3.0, seed=7))
    front.reset()
    after = front.push(x)
    fresh = SphinxFeatures().push(x)
    assert after.shape == fresh.shape
    assert not np.allclose(after[:, 0], fresh[:, 0])  # the mean came along
    # the new run's first row looks back at its own first hop only, as a fresh one does
    c = after[:, :CEPSTRA]
    assert np.allclose(after[0, CEPSTRA : 2 * CEPSTRA], c[2] - c[0])
    assert np.allclose(after[1, 2 * CEPSTRA :], (c[4] - c[0]) - (c[2] - c[0]))


def test_a_warp_moves_every_filter_by_its_factor_and_one_leaves_them() -> None:
    plain = mel_filters()
    assert np.array_equal(mel_filters(1.0), plain)
    bins = np.arange(plain.shape[1])
    centre = (plain * bins).sum(axis=1) / plain.sum(axis=1)  # each triangle's centroid, bins
    for warp in (0.88, 1.12):
        warped = mel_filters(warp)
        assert np.isfinite(warped).all()
        moved = (warped * bins).sum(axis=1) / warped.sum(axis=1)
        # the edges are rounded to whole bins: the upper filters (many bins wide) move by the
        # factor within a few percent
        ratio = moved[-10:] / centre[-10:]
        assert np.all(np.abs(ratio - warp) < 0.03), ratio
        assert np.allclose(warped.sum(axis=1) * (SAMPLE_RATE / 512), 1.0)  # unit area kept
