"""Streaming MFCC front end of pocketsphinx's US English model (the tandem features' input).

The features pocketsphinx's ``en-us`` acoustic model was trained on (its ``feat.params``:
``-lowerf 130 -upperf 6800 -nfilt 25 -transform dct -lifter 22 -feat 1s_c_d_dd -agc none
-varnorm no``), computed as pocketsphinx's front end computes them (``src/fe/fe_sigproc.c``,
``src/feat/feat.c``, ``src/feat/cmn_live.c``), on the voice stage's 10 ms hops:

* per hop, the 410-sample (25.625 ms) window ending at the hop's last sample, pre-emphasised
  (``y[n] = x[n] - 0.97 x[n-1]`` across the stream), Hamming-windowed (symmetric), 512-point
  power spectrum in s16 units (no scaling);
* 25 triangular mel filters (mel = 2595 log10(1 + f/700)) spaced evenly in mel between 130 and
  6800 Hz, their edges rounded to DFT bins, each of unit area (pocketsphinx's ``unit_area`` and
  ``round_filters`` defaults); ``log(energy + 1e-4)``;
* the orthonormal DCT-II (``-transform dct``), 13 cepstra c0..c12, liftered by
  ``1 + 11 sin(pi i / 22)`` (``-lifter 22``);
* live cepstral mean normalisation: a running mean started from pocketsphinx's default
  ``-cmninit 40,3,-1`` (c0 = 40, c1 = 3, c2 = -1, the rest 0) weighted as 500 hops
  (:data:`CMN_START`), updated with every hop and decayed like ``cmn_live.c``'s window (at
  800 hops the sum is rescaled to 500); each hop is normalised by the mean before it;
* ``1s_c_d_dd``: one 39-dim stream of the normalised cepstra ``c[t]``, deltas
  ``c[t+2] - c[t-2]`` and delta-deltas ``(c[t+3] - c[t-1]) - (c[t+1] - c[t-3])``: the row of
  hop ``t`` is complete three hops later (:data:`DELTA_DELAY`, 30 ms of look-ahead). Hops
  before the start of a run repeat its first hop.

``-remove_noise`` (pocketsphinx's noise-floor tracking) is not done. Pure computation, no I/O.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.stages.voice.features import HOP, SAMPLE_RATE

#: Window length in samples (25.625 ms at 16 kHz, pocketsphinx's default ``-wlen``).
WINDOW: Final = 410
#: Points of the power spectrum (pocketsphinx's ``-nfft 512``).
FFT_SIZE: Final = 512
PRE_EMPHASIS: Final = 0.97
FILTERS: Final = 25
LOWER_HZ: Final = 130.0
UPPER_HZ: Final = 6800.0
CEPSTRA: Final = 13
LIFTER: Final = 22
#: ``-cmninit``'s default (the first three cepstra; the others start at 0).
CMN_INIT: Final = (40.0, 3.0, -1.0)
#: cmn_live.c's window: past this many hops the running sum is rescaled to ``_CMN_WINDOW``.
_CMN_HIGH: Final = 800
_CMN_WINDOW: Final = 500
#: The initial mean weighs as much as this many hops (cmn_live.c's window, 5 s).
CMN_START: Final = 500
#: Width of a feature row: cepstra, deltas, delta-deltas.
FEATURES: Final = 3 * CEPSTRA
#: Hops between a hop and the hop that completes its row (the delta-deltas' look-ahead).
DELTA_DELAY: Final = 3
_LOG_FLOOR: Final = 1e-4
_OFFSETS: Final = np.array([0, 2, -2, 3, -1, 1, -3])


def _mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _hz(mel: float) -> float:
    return 700.0 * (math.pow(10.0, mel / 2595.0) - 1.0)


def mel_filters(warp: float = 1.0) -> NDArray[np.float64]:
    """(FILTERS, FFT_SIZE // 2 + 1) unit-area triangles, edges rounded to DFT bins.

    ``warp`` moves every edge frequency by that factor (a linear vocal tract length warp,
    up to the Nyquist bin; tools/voice_limits.py's probe): 1.0, the stage's, leaves them."""
    low, high = _mel(LOWER_HZ), _mel(UPPER_HZ)
    width = (high - low) / (FILTERS + 1)
    step = SAMPLE_RATE / FFT_SIZE
    bins = np.arange(FFT_SIZE // 2 + 1) * step
    out = np.zeros((FILTERS, bins.size))
    for i in range(FILTERS):
        left, centre, right = (
            min(int(_hz(low + (i + j) * width) * warp / step + 0.5), FFT_SIZE // 2) * step
            for j in range(3)
        )
        rise = (bins - left) / (centre - left)
        fall = (right - bins) / (right - centre)
        inside = (bins >= left) & (bins <= right)
        out[i] = np.where(inside, np.minimum(rise, fall), 0.0) * 2.0 / (right - left)
    return out


def dct_lifter() -> NDArray[np.float64]:
    """(CEPSTRA, FILTERS): the orthonormal DCT-II rows times the lifter weights."""
    n = np.arange(FILTERS)
    rows = np.array([np.cos(math.pi / FILTERS * i * (n + 0.5)) for i in range(CEPSTRA)])
    rows *= math.sqrt(2.0 / FILTERS)
    rows[0] = math.sqrt(1.0 / FILTERS)
    lifter = 1.0 + LIFTER / 2.0 * np.sin(np.arange(CEPSTRA) * math.pi / LIFTER)
    out: NDArray[np.float64] = rows * lifter[:, None]
    return out


@cache
def _tables() -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    tables = (np.hamming(WINDOW), mel_filters(), dct_lifter())
    for table in tables:
        table.setflags(write=False)
    return tables


def cmn_init() -> NDArray[np.float64]:
    out = np.zeros(CEPSTRA)
    out[: len(CMN_INIT)] = CMN_INIT
    return out


class SphinxFeatures:
    """Cuts a PCM stream into 10 ms hops and gives their ``1s_c_d_dd`` rows (one per session).

    :meth:`push` returns the rows completed by the samples given: the row of hop ``t`` comes
    with hop ``t + DELTA_DELAY``. The CMN state survives :meth:`reset` (a long gap: the same
    caller continues)."""

    def __init__(self) -> None:
        self._window, self._filters, self._dct = _tables()
        self._buffer = np.zeros(WINDOW)
        self._pending = np.zeros(0)
        self._prior = 0.0  # the sample before the next one (pre-emphasis across packets)
        self._sum = cmn_init() * CMN_START
        self._count = float(CMN_START)
        self._history = np.zeros((0, CEPSTRA))  # normalised cepstra of the run's last hops
        self._emitted = 0  # rows given out in this run
        self._hops = 0  # hops computed in this run

    def reset(self) -> None:
        """Start a new run (after a long gap): the audio context goes, the CMN stays."""
        self._buffer[:] = 0.0
        self._pending = np.zeros(0)
        self._prior = 0.0
        self._history = np.zeros((0, CEPSTRA))
        self._emitted = 0
        self._hops = 0

    def cepstra(self, samples: NDArray[np.int16] | NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, CEPSTRA) liftered cepstra (before CMN) of the hops the samples complete."""
        x = np.asarray(samples, dtype=np.float64)
        emphasised = np.empty_like(x)
        if x.size:
            emphasised[0] = x[0] - PRE_EMPHASIS * self._prior
            emphasised[1:] = x[1:] - PRE_EMPHASIS * x[:-1]
            self._prior = float(x[-1])
        data = np.concatenate([self._pending, emphasised])
        count = data.size // HOP
        self._pending = data[count * HOP :]
        if count == 0:
            return np.zeros((0, CEPSTRA))
        stream = np.concatenate([self._buffer, data[: count * HOP]])
        starts = np.arange(1, count + 1) * HOP  # hop i's window ends (i + 1) hops into the data
        frames = stream[starts[:, None] + np.arange(WINDOW)[None, :]]
        self._buffer = stream[-WINDOW:].copy()
        spectrum = np.fft.rfft(frames * self._window, FFT_SIZE)
        power = spectrum.real**2 + spectrum.imag**2
        out: NDArray[np.float64] = np.log(power @ self._filters.T + _LOG_FLOOR) @ self._dct.T
        return out

    def _normalise(self, cepstra: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each hop minus the running mean of the hops before it (and the initial value)."""
        n = cepstra.shape[0]
        if self._count + n <= _CMN_HIGH:  # no rescaling within these hops: in one go
            before = self._sum + np.cumsum(cepstra, axis=0) - cepstra
            counts = self._count + np.arange(n, dtype=np.float64)
            self._sum = self._sum + cepstra.sum(axis=0)
            self._count += n
            normalised: NDArray[np.float64] = cepstra - before / counts[:, None]
            return normalised
        out = np.empty_like(cepstra)
        for i in range(cepstra.shape[0]):
            out[i] = cepstra[i] - self._sum / self._count
            self._sum = self._sum + cepstra[i]
            self._count += 1.0
            if self._count > _CMN_HIGH:
                self._sum = self._sum * (_CMN_WINDOW / self._count)
                self._count = float(_CMN_WINDOW)
        return out

    def push(self, samples: NDArray[np.int16] | NDArray[np.float64]) -> NDArray[np.float64]:
        """(m, FEATURES) rows of the hops whose row the samples complete, in hop order."""
        new = self._normalise(self.cepstra(samples))
        self._hops += new.shape[0]
        history = np.concatenate([self._history, new])
        base = self._hops - history.shape[0]  # the run's hop at history[0]
        ready = max(0, self._hops - DELTA_DELAY - self._emitted)
        hops = self._emitted + np.arange(ready)
        # c[t], c[t+2], c[t-2], c[t+3], c[t-1], c[t+1], c[t-3], the run's ends repeated
        index = np.minimum(np.maximum(hops[:, None] + _OFFSETS, 0), self._hops - 1) - base
        c = history[index]
        rows: NDArray[np.float64] = np.concatenate(
            [c[:, 0], c[:, 1] - c[:, 2], (c[:, 3] - c[:, 4]) - (c[:, 5] - c[:, 6])], axis=1
        )
        self._emitted += ready
        # The next row (hop ``_emitted``) reaches 3 hops back: the last 7 hops suffice.
        self._history = history[-(2 * DELTA_DELAY + 1) :]
        return rows
