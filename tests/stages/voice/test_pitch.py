"""The streaming pitch tracker (stages/voice/pitch.py): synthetic tones of known F0, the real
utterances' voiced frames against an offline reference computed another way, unvoiced and
silent audio, and streaming in any packet size."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.stages.voice.corpus import Utterance
from avatar_mf.stages.voice.features import HOP, SAMPLE_RATE
from avatar_mf.stages.voice.pitch import F0_RANGE, PitchHops, PitchTracker

PACKET = 320


def _tone(f0: float, seconds: float = 1.0, *, harmonics: bool = True, peak: float = 8000.0,
          ) -> NDArray[np.int16]:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    count = int(4000 / f0) if harmonics else 1
    x = np.zeros_like(t)
    for k in range(1, count + 1):
        x += np.sin(2 * np.pi * f0 * k * t + k) / k
    out: NDArray[np.int16] = (x / np.abs(x).max() * peak).astype(np.int16)
    return out


def _track(pcm: NDArray[np.int16], packet: int = PACKET) -> PitchHops:
    tracker = PitchTracker()
    parts = [tracker.push(pcm[i : i + packet]) for i in range(0, pcm.size, packet)]
    return PitchHops(
        np.concatenate([p.f0 for p in parts]), np.concatenate([p.aperiodicity for p in parts])
    )


@pytest.mark.parametrize("f0", [72.0, 95.0, 118.0, 160.0, 210.0, 265.0, 330.0, 390.0])
@pytest.mark.parametrize("harmonics", [True, False])
def test_the_f0_of_tones(f0: float, harmonics: bool) -> None:
    hops = _track(_tone(f0, harmonics=harmonics))
    settled = hops.f0[4:]  # the first windows still hold the silence before the tone
    assert settled.size == SAMPLE_RATE // HOP - 4
    assert np.all(np.abs(settled / f0 - 1.0) < 0.01), (settled.min(), settled.max())
    assert hops.aperiodicity[4:].max() < 0.1
    onset = hops.f0[:4]  # windows straddling the onset: unvoiced, or already right
    assert np.all((onset == 0.0) | (np.abs(onset / f0 - 1.0) < 0.02)), onset


def test_a_glide_is_followed() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    f = 120.0 + 100.0 * t  # 120 -> 220 Hz over a second
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    pcm = (np.asarray(x) / np.max(np.abs(x)) * 8000).astype(np.int16)
    hops = _track(pcm)
    # Hop k's window ends at (k + 1) * HOP and is 32 ms long: its centre's frequency.
    centre = ((np.arange(hops.f0.size) + 1) * HOP - 256 - 15) / SAMPLE_RATE
    truth = 120.0 + 100.0 * centre
    assert np.all(np.abs(hops.f0[4:] / truth[4:] - 1.0) < 0.02)
    assert np.all(np.diff(hops.f0[4:]) > 0)


def test_noise_silence_and_whispers_are_unvoiced() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 3000.0, 2 * SAMPLE_RATE).astype(np.int16)
    assert np.mean(_track(noise).f0 > 0) < 0.05
    assert np.all(_track(np.zeros(SAMPLE_RATE, dtype=np.int16)).f0 == 0.0)
    quiet = _tone(150.0, peak=20.0)  # about -65 dB FS: below the level floor
    assert np.all(_track(quiet).f0 == 0.0)
    # A tone then noise: voiced, then unvoiced within two hops of the window leaving the tone.
    mixed = np.concatenate([_tone(150.0), noise[:SAMPLE_RATE]])
    f0 = _track(mixed).f0
    assert np.all(f0[4:100] > 0) and np.mean(f0[106:] > 0) < 0.05


def test_streaming_in_any_packet_size_gives_the_same_values() -> None:
    pcm = np.concatenate([_tone(140.0, 0.5), np.zeros(3000, dtype=np.int16), _tone(230.0, 0.5)])
    whole = _track(pcm, packet=pcm.size)
    for packet in (PACKET, 77, 1000):
        part = _track(pcm, packet=packet)
        assert part.f0.size == whole.f0.size == pcm.size // HOP
        assert np.allclose(part.f0, whole.f0) and np.allclose(part.aperiodicity, whole.aperiodicity)


def test_reset_starts_afresh() -> None:
    tracker = PitchTracker()
    tracker.push(_tone(300.0, 0.3))
    tracker.reset()
    again = tracker.push(_tone(100.0, 0.3))
    fresh = PitchTracker().push(_tone(100.0, 0.3))
    assert np.array_equal(again.f0, fresh.f0)


def _reference(pcm: NDArray[np.int16], end: int) -> tuple[float, float]:
    """An offline F0 computed another way: the normalized cross-correlation (RAPT's NCCF) at
    the full 16 kHz over a 40 ms window centred where the tracker's 32 ms one is, the shortest
    lag within 10 % of the best peak (no octave-down), refined by a parabola. (F0, peak)."""
    length = 640
    centre = end - 15 - 256
    x = pcm[max(0, centre - length // 2) : centre + length // 2].astype(np.float64)
    if x.size < length:
        return 0.0, 0.0
    x -= x.mean()
    low, high = int(SAMPLE_RATE // F0_RANGE[1]), int(np.ceil(SAMPLE_RATE / F0_RANGE[0]))
    n = length - high
    a = x[:n]
    nccf = np.array(
        [a @ x[t : t + n] / np.sqrt((a @ a) * (x[t : t + n] @ x[t : t + n]) + 1e-9)
         for t in range(low, high + 1)]
    )
    k = int(np.flatnonzero(nccf >= 0.9 * nccf.max())[0])
    while k + 1 < nccf.size and nccf[k + 1] > nccf[k]:
        k += 1
    shift = 0.0
    if 0 < k < nccf.size - 1:
        p, q, r = nccf[k - 1], nccf[k], nccf[k + 1]
        shift = 0.5 * (p - r) / (p - 2 * q + r)
    return SAMPLE_RATE / (low + k + shift), float(nccf[k])


def test_real_speech_against_an_offline_reference(speech: list[Utterance]) -> None:
    """On the 15 real utterances (five speakers), the frames both call clearly voiced: the
    tracker's F0 within a few % of the reference's (measured: median 0.2 %, 99.4 % of frames
    within 5 %, 97.4 % within 2 %), and each speaker's voiced share plausible."""
    errors = []
    for utterance in speech:
        f0 = _track(utterance.pcm).f0
        reference = [_reference(utterance.pcm, (k + 1) * HOP) for k in range(f0.size)]
        truth = np.array([r[0] for r in reference])
        clear = np.array([r[1] for r in reference]) > 0.8
        both = (f0 > 0) & clear
        assert both.sum() >= 15, utterance.name
        assert 0.2 <= np.mean(f0 > 0) <= 0.85, utterance.name  # speech has pauses and consonants
        assert np.mean((f0 > 0) == clear) >= 0.6, utterance.name
        errors.append(np.abs(f0[both] / truth[both] - 1.0))
    error = np.concatenate(errors)
    assert error.size > 1500
    assert np.median(error) < 0.01
    assert np.mean(error < 0.05) > 0.97
