"""Integer-ratio FIR resampling (codecs/resample.py): accuracy on sines, frame continuity."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.codecs.resample import Downsampler, Upsampler
from tests.codecs.signals import from_pcm, sine, snr_db, to_pcm


@pytest.mark.parametrize(("factor", "low_rate"), [(2, 8000), (3, 16000)])
@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_upsampled_sine_matches_the_analytic_sine(factor: int, low_rate: int, freq: float) -> None:
    up = Upsampler(factor)
    x = sine(freq, seconds=0.5, rate=low_rate)
    pcm = to_pcm(x)
    chunk = 2 * low_rate // 50  # 20 ms
    y = from_pcm(b"".join(up.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)))
    high = low_rate * factor
    # The same sine at the high rate, delayed by the filter's group delay.
    t = (np.arange(len(y)) - up.delay_high) / high
    ref = 8000.0 * np.sin(2 * np.pi * freq * t)
    skip = 4 * up.delay_high
    snr = snr_db(ref[skip:], y[skip:])
    print(f"up x{factor} {freq:.0f} Hz: SNR {snr:.1f} dB")
    assert snr > 55.0


@pytest.mark.parametrize(("factor", "high_rate"), [(2, 16000), (3, 48000)])
@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_downsampled_sine_matches_the_analytic_sine(
    factor: int, high_rate: int, freq: float
) -> None:
    down = Downsampler(factor)
    pcm = to_pcm(sine(freq, seconds=0.5, rate=high_rate))
    chunk = 2 * high_rate // 50
    y = from_pcm(b"".join(down.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)))
    low = high_rate // factor
    assert len(y) == len(pcm) // 2 // factor
    t = np.arange(len(y)) / low - down.delay_high / high_rate
    ref = 8000.0 * np.sin(2 * np.pi * freq * t)
    skip = 4 * down.delay_high // factor
    snr = snr_db(ref[skip:], y[skip:])
    print(f"down /{factor} {freq:.0f} Hz: SNR {snr:.1f} dB")
    assert snr > 55.0


def test_downsampling_removes_what_the_low_rate_cannot_carry() -> None:
    down = Downsampler(2)
    y = from_pcm(down.process(to_pcm(sine(6000.0, seconds=0.5))))  # above 4 kHz: would alias
    assert np.sqrt(np.mean(y[200:] ** 2)) < 8000 / np.sqrt(2) * 10 ** (-50 / 20)


@pytest.mark.parametrize("cls", [Upsampler, Downsampler])
def test_chunking_does_not_change_the_output(cls: type[Upsampler] | type[Downsampler]) -> None:
    rng = np.random.default_rng(1)
    pcm = to_pcm(rng.normal(0, 3000, 960 * 4))
    whole = cls(3).process(pcm)
    r = cls(3)
    sizes = [2 * 30, 2 * 300, 2 * 960, 2 * 1500]
    parts, pos = [], 0
    for s in sizes:
        parts.append(r.process(pcm[pos : pos + s]))
        pos += s
    parts.append(r.process(pcm[pos:]))
    assert b"".join(parts) == whole
