"""Test signals and quality measures for codec tests (16 kHz mono s16le unless said)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RATE = 16000
FRAME = 320

Array = npt.NDArray[np.float64]


def sine(
    freq: float = 1000.0, seconds: float = 1.0, amp: float = 8000.0, rate: int = RATE
) -> Array:
    t = np.arange(int(seconds * rate)) / rate
    return np.asarray(amp * np.sin(2 * np.pi * freq * t))


def speech_like(seconds: float = 2.0, rate: int = RATE, seed: int = 7) -> Array:
    """A voiced, vowel-like signal: a gliding pitch pulse train through three formant
    resonators, with syllable-rate amplitude modulation and short pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = np.cumsum(f0 / rate)
    source = np.diff(np.floor(phase), prepend=0.0)  # one impulse per pitch period
    source += 0.02 * rng.standard_normal(n)
    out = np.zeros(n)
    # Formants change every 200 ms (vowel sequence).
    vowels = [(700, 1200, 2600), (300, 2300, 3000), (500, 900, 2400), (400, 1900, 2550)]
    seg = int(0.2 * rate)
    for start in range(0, n, seg):
        f1, f2, f3 = vowels[(start // seg) % len(vowels)]
        x = source[start : start + seg]
        y = np.zeros_like(x)
        for f, bw, gain in ((f1, 80, 1.0), (f2, 100, 0.6), (f3, 140, 0.3)):
            r = np.exp(-np.pi * bw / rate)
            a1, a2 = -2 * r * np.cos(2 * np.pi * f / rate), r * r
            y1 = y2 = 0.0
            res = np.empty_like(x)
            for i, v in enumerate(x):
                y0 = v - a1 * y1 - a2 * y2
                res[i] = y0
                y2, y1 = y1, y0
            y += gain * res
        out[start : start + seg] = y
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3.0 * t))  # ~3 syllables per second
    out *= envelope
    return np.asarray(out / np.max(np.abs(out)) * 12000)


def to_pcm(x: Array) -> bytes:
    return bytes(np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes())


def from_pcm(pcm: bytes) -> Array:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def frames(pcm: bytes, size: int = FRAME * 2) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def best_lag(ref: Array, out: Array, max_lag: int = 1200) -> int:
    """The delay (samples) of ``out`` against ``ref`` at the cross-correlation peak."""
    n = min(len(ref), len(out)) - max_lag
    scores = [float(np.dot(ref[:n], out[lag : lag + n])) for lag in range(max_lag)]
    return int(np.argmax(scores))


def aligned(ref: Array, out: Array, lag: int, skip: int = 1600) -> tuple[Array, Array]:
    n = min(len(ref), len(out) - lag)
    return ref[skip:n], out[lag + skip : lag + n]


def snr_db(ref: Array, out: Array) -> float:
    noise = ref - out
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum(noise**2), 1e-9)))


def correlation(ref: Array, out: Array) -> float:
    return float(np.corrcoef(ref, out)[0, 1])
