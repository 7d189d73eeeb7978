"""Streaming acoustic front end: 16 kHz PCM in, one feature row per 10 ms hop out.

Each hop (160 samples) ends a 25 ms Hamming window (400 samples); its 512-point power spectrum
is pooled into :data:`MEL_BANDS` triangular mel bands, logged, and turned into
:data:`CEPSTRA` cepstral coefficients by a DCT-II (the usual MFCC recipe). ``c0`` (the
loudness) is kept apart as :attr:`HopFeatures.level` in dB full scale, and the classifier sees
it relative to a slow peak tracker (:attr:`HopFeatures.relative_level`), so the features do not
depend on the caller's microphone gain. Pure computation, no I/O: a session's stage feeds it
the packets it receives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

SAMPLE_RATE: Final = 16000
HOP: Final = 160
WINDOW: Final = 400
FFT_SIZE: Final = 512
MEL_BANDS: Final = 24
#: Cepstra c1..c12 go to the classifier (c0 is the level).
CEPSTRA: Final = 12
#: Full-scale reference of s16 PCM.
_FULL_SCALE: Final = 32768.0
#: The floor of the level (digital silence), dB FS.
LEVEL_FLOOR: Final = -100.0
#: Decay of the peak tracker, dB per hop (about 6 dB per second).
_PEAK_DECAY: Final = 0.06


def _mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _hz(mel: float) -> float:
    return 700.0 * (math.pow(10.0, mel / 2595.0) - 1.0)


def mel_filterbank(
    bands: int = MEL_BANDS, low: float = 80.0, high: float = 7600.0
) -> NDArray[np.float64]:
    """(bands, FFT_SIZE // 2 + 1) triangular mel filters."""
    edges = [_hz(float(m)) for m in np.linspace(_mel(low), _mel(high), bands + 2)]
    bins = np.arange(FFT_SIZE // 2 + 1) * SAMPLE_RATE / FFT_SIZE
    out = np.zeros((bands, bins.size))
    for b in range(bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        rise = (bins - lo) / (mid - lo)
        fall = (hi - bins) / (hi - mid)
        out[b] = np.clip(np.minimum(rise, fall), 0.0, None)
    return out


def dct_matrix(bands: int = MEL_BANDS, count: int = CEPSTRA + 1) -> NDArray[np.float64]:
    """(count, bands) orthonormal DCT-II rows."""
    n = np.arange(bands)
    rows = [np.cos(math.pi * k * (n + 0.5) / bands) for k in range(count)]
    out = np.array(rows) * math.sqrt(2.0 / bands)
    out[0] /= math.sqrt(2.0)
    return out


@cache
def _tables() -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The window, mel filters and DCT rows every session shares (built once, read-only)."""
    tables = (np.hamming(WINDOW), mel_filterbank(), dct_matrix())
    for table in tables:
        table.setflags(write=False)
    return tables


@dataclass(frozen=True, slots=True)
class HopFeatures:
    """The features of the hops that one push completed (rows in time order)."""

    #: (n, CEPSTRA) cepstra c1..c12.
    cepstra: NDArray[np.float64]
    #: (n,) window level, dB FS (LEVEL_FLOOR for digital silence).
    level: NDArray[np.float64]
    #: (n,) level minus the tracked recent peak level, dB (<= 0).
    relative_level: NDArray[np.float64]


class FrontEnd:
    """Cuts a PCM stream into hops and computes their features (one per session)."""

    def __init__(self) -> None:
        self._window, self._mel, self._dct = _tables()
        self._buffer = np.zeros(WINDOW, dtype=np.float64)
        self._filled = WINDOW - HOP  # the first hop's window starts with silence
        self._pending = np.zeros(0, dtype=np.float64)
        self._peak = -30.0

    def reset(self) -> None:
        """Forget the audio context (after a long gap); the peak tracker is kept."""
        self._buffer[:] = 0.0
        self._pending = np.zeros(0, dtype=np.float64)

    def push(self, samples: NDArray[np.int16] | NDArray[np.float64]) -> HopFeatures:
        """Feed samples (any length); the features of every hop they complete."""
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64)])
        count = data.size // HOP
        self._pending = data[count * HOP :]
        if count == 0:
            empty = np.zeros(0)
            return HopFeatures(np.zeros((0, CEPSTRA)), empty, empty)
        frames = np.empty((count, WINDOW))
        buffer = self._buffer
        for i in range(count):
            buffer[:-HOP] = buffer[HOP:]
            buffer[-HOP:] = data[i * HOP : (i + 1) * HOP]
            frames[i] = buffer
        spectrum = np.fft.rfft(frames * self._window / _FULL_SCALE, FFT_SIZE)
        power = spectrum.real**2 + spectrum.imag**2
        energies = np.log(power @ self._mel.T + 1e-10)
        ceps = energies @ self._dct.T
        raw = frames / _FULL_SCALE
        rms = np.sqrt(np.mean(raw * raw, axis=1))
        level = np.maximum(20.0 * np.log10(rms + 1e-12), LEVEL_FLOOR)
        relative = np.empty(count)
        peak = self._peak
        for i in range(count):
            peak = max(float(level[i]), peak - _PEAK_DECAY, -60.0)
            relative[i] = level[i] - peak
        self._peak = peak
        return HopFeatures(ceps[:, 1:], level, relative)
