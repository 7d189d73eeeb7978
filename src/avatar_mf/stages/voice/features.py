"""Streaming level meter: 16 kHz PCM in, the level of each 10 ms hop out.

Each hop (160 samples) ends a 25 ms window (400 samples, the previous hops' samples before
it); the hop's :attr:`HopFeatures.level` is that window's RMS in dB full scale, and
:attr:`HopFeatures.relative_level` the level relative to a slow peak tracker, so what follows
(the silence gate, ``jawOpen``, the energy accents) does not depend on the caller's microphone
gain. The classifier's acoustic features are computed elsewhere (:mod:`.sphinx_mfcc`, on the
same hops); this front end computes only the level. Pure computation, no I/O: a session's
stage feeds it the packets it receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

SAMPLE_RATE: Final = 16000
HOP: Final = 160
WINDOW: Final = 400
#: Full-scale reference of s16 PCM.
_FULL_SCALE: Final = 32768.0
#: The floor of the level (digital silence), dB FS.
LEVEL_FLOOR: Final = -100.0
#: Decay of the peak tracker, dB per hop (about 6 dB per second).
_PEAK_DECAY: Final = 0.06
#: The peak tracker's start and floor, dB FS.
_PEAK_START: Final = -30.0
_PEAK_FLOOR: Final = -60.0


@dataclass(frozen=True, slots=True)
class HopFeatures:
    """The levels of the hops that one push completed (rows in time order)."""

    #: (n,) window level, dB FS (LEVEL_FLOOR for digital silence).
    level: NDArray[np.float64]
    #: (n,) level minus the tracked recent peak level, dB (<= 0).
    relative_level: NDArray[np.float64]


class FrontEnd:
    """Cuts a PCM stream into hops and measures their level (one per session)."""

    def __init__(self) -> None:
        self._history = np.zeros(WINDOW - HOP, dtype=np.float64)  # the window's earlier part
        self._pending = np.zeros(0, dtype=np.float64)
        self._peak = _PEAK_START

    def reset(self) -> None:
        """Forget the audio context (after a long gap); the peak tracker is kept."""
        self._history[:] = 0.0
        self._pending = np.zeros(0, dtype=np.float64)

    def push(self, samples: NDArray[np.int16] | NDArray[np.float64]) -> HopFeatures:
        """Feed samples (any length); the levels of every hop they complete."""
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64)])
        count = data.size // HOP
        self._pending = data[count * HOP :]
        if count == 0:
            empty = np.zeros(0)
            return HopFeatures(empty, empty)
        signal = np.concatenate([self._history, data[: count * HOP]]) / _FULL_SCALE
        self._history = signal[-(WINDOW - HOP) :] * _FULL_SCALE
        windows = sliding_window_view(signal, WINDOW)[::HOP]
        rms = np.sqrt(np.mean(windows * windows, axis=1))
        level = np.maximum(20.0 * np.log10(rms + 1e-12), LEVEL_FLOOR)
        relative = np.empty(count)
        peak = self._peak
        for i in range(count):
            peak = max(float(level[i]), peak - _PEAK_DECAY, _PEAK_FLOOR)
            relative[i] = level[i] - peak
        self._peak = peak
        return HopFeatures(level, relative)
