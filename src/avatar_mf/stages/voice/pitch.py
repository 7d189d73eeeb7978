"""A streaming pitch tracker for voice prosody: 16 kHz PCM -> one F0 (or unvoiced) per hop.

The voice stage's face raises the brows and nods on pitch accents (:mod:`.face`), so it needs
the speaker's fundamental frequency per 10 ms hop, on the same hops as the feature front end
(:mod:`.features`: hop ``k`` is the audio up to sample ``(k + 1) * HOP``).

Method: YIN (A. de Cheveigne and H. Kawahara, "YIN, a fundamental frequency estimator for
speech and music", JASA 111(4), 2002), steps 2-5:

* the signal is low-passed (a 31-tap windowed-sinc FIR, cutoff 1 kHz: the first formant's
  peaks above it otherwise pull the estimate to an octave error) and decimated to 8 kHz as
  it streams in;
* per hop, the last :data:`WINDOW` samples (32 ms, ending at the hop's end) give the
  difference function ``d(tau) = sum_j (x_j - x_{j+tau})^2`` over the first
  ``WINDOW - max_lag`` samples, for lags of :data:`F0_RANGE` (70-400 Hz), computed through
  FFTs for all the hops of a packet at once (cross-correlation plus running energies);
* its cumulative-mean-normalized form ``d'(tau) = d(tau) * tau / sum_{1..tau} d``; the first
  lag whose ``d'`` dips below :data:`THRESHOLD`, at the bottom of that dip (the global minimum
  when none dips), refined by a parabola through its neighbours;
* voiced when that ``d'`` (the aperiodicity) is below :data:`VOICED_BELOW` and the level at
  both ends of the window (its first and last 2 ms) is above
  :data:`MIN_LEVEL` dB FS, so a window straddling an onset is not read; otherwise F0 is 0
  (unvoiced or silent).

Cost: about 60 us a 20 ms packet of voice, less in pauses (docs/performance.md,
"Voice-driven animation": ~0.5 % of a core per stream, most of it numpy's per-call
overhead). Pure numpy, sans-IO: :meth:`PitchTracker.push` takes samples and returns the
completed hops' values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.stages.voice.features import HOP, SAMPLE_RATE

F64 = NDArray[np.float64]

#: The analysis rate (Hz): the input decimated by 2 after the low-pass.
RATE: Final = SAMPLE_RATE // 2
#: Samples (at RATE) in one analysis window (32 ms), ending at the hop's end.
WINDOW: Final = 256
#: The F0 search range, Hz (adult speech).
F0_RANGE: Final = (70.0, 400.0)
#: YIN's absolute threshold on d'.
THRESHOLD: Final = 0.15
#: Largest d' (aperiodicity) of a voiced window.
VOICED_BELOW: Final = 0.35
#: Windows quieter than this (dB FS) are unvoiced.
MIN_LEVEL: Final = -50.0
#: The low-pass FIR: taps and cutoff (Hz).
_TAPS: Final = 31
_CUTOFF: Final = 1000.0
_FFT: Final = 512
_STEP: Final = HOP // 2  # a hop at RATE
_EDGE: Final = 16  # samples (2 ms) at each end of a window that must sound


def _lowpass() -> F64:
    n = np.arange(_TAPS) - (_TAPS - 1) / 2
    h = np.sinc(2.0 * _CUTOFF / SAMPLE_RATE * n) * np.hamming(_TAPS)
    out: F64 = h / h.sum()
    return out


@dataclass(frozen=True, slots=True)
class PitchHops:
    """Per completed hop: ``f0`` in Hz (0.0 = unvoiced or silent) and ``aperiodicity``
    (YIN's d' at the chosen lag, 0 = perfectly periodic, 1 = noise)."""

    f0: F64
    aperiodicity: F64


class PitchTracker:
    """One stream's pitch tracker (state: the low-pass filter's tail, the window, a part hop)."""

    def __init__(self) -> None:
        self._h = _lowpass()
        self._min_lag = int(math.floor(RATE / F0_RANGE[1]))
        self._max_lag = int(math.ceil(RATE / F0_RANGE[0]))
        self._span = WINDOW - self._max_lag  # the difference function's integration length
        self._tau = np.arange(self._max_lag + 1, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a restart after a long gap): the next window starts silent."""
        self._tail = np.zeros(_TAPS - 1)
        self._window = np.zeros(WINDOW)
        self._pending = np.zeros(0)

    def push(self, samples: NDArray[np.int16] | F64) -> PitchHops:
        """Add samples (int16, or float in int16's scale); one value per hop completed."""
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64) / 32768.0])
        count = data.size // HOP
        self._pending = data[count * HOP :]
        if count == 0:
            return PitchHops(np.zeros(0), np.zeros(0))
        new = data[: count * HOP]
        joined = np.concatenate([self._tail, new])
        filtered = np.convolve(joined, self._h, mode="valid")[::2]
        self._tail = joined[-(_TAPS - 1) :]
        stream = np.concatenate([self._window, filtered])
        self._window = stream[-WINDOW:]
        ends = WINDOW + _STEP * np.arange(1, count + 1)
        windows = np.lib.stride_tricks.sliding_window_view(stream, WINDOW)[ends - WINDOW]
        return self._analyse(windows)

    def _analyse(self, x: F64) -> PitchHops:
        """YIN on the (n, WINDOW) windows."""
        n, span, top, edge = x.shape[0], self._span, self._max_lag, _EDGE
        energy = np.zeros((n, WINDOW + 1))
        np.cumsum(x * x, axis=1, out=energy[:, 1:])
        # Both ends of the window must sound: a window straddling an onset or an end has a
        # silent integration span or lag span, where d' means nothing.
        floor = edge * 10.0 ** (MIN_LEVEL / 10.0)
        sounding = [
            float(row[edge]) > floor and float(row[-1] - row[-1 - edge]) > floor
            for row in energy
        ]
        f0 = np.zeros(n)
        aperiodicity = np.ones(n)
        if not any(sounding):  # silence and pauses cost no search
            return PitchHops(f0, aperiodicity)
        spectra = np.fft.rfft(x, _FFT, axis=1)
        heads = np.fft.rfft(x[:, :span], _FFT, axis=1)
        r = np.fft.irfft(np.conj(heads) * spectra, _FFT, axis=1)[:, : top + 1]
        e_tau = energy[:, span : span + top + 1] - energy[:, : top + 1]
        d = np.maximum(e_tau[:, :1] + e_tau - 2.0 * r, 0.0)
        cmndf = d * self._tau / np.maximum(np.cumsum(d, axis=1) - d[:, :1], 1e-20)
        low = self._min_lag
        for k in range(n):
            if not sounding[k]:
                continue
            row = cmndf[k]
            dips = np.flatnonzero(row[low:top] < THRESHOLD)
            if dips.size:
                tau = int(dips[0]) + low
                while tau + 1 < top and row[tau + 1] < row[tau]:
                    tau += 1
            else:
                tau = int(np.argmin(row[low:top])) + low
            a, b, c = float(row[tau - 1]), float(row[tau]), float(row[tau + 1])
            curvature = a - 2.0 * b + c
            shift = 0.5 * (a - c) / curvature if curvature > 1e-12 else 0.0
            period = tau + min(max(shift, -0.5), 0.5)
            aperiodicity[k] = min(max(b, 0.0), 1.0)
            if b < VOICED_BELOW:
                f0[k] = RATE / period
        return PitchHops(f0, aperiodicity)
