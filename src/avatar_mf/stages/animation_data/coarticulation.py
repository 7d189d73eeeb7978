"""Co-articulation: viseme segments to smooth blendshape trajectories sampled at a frame rate.

The model is Cohen & Massaro's dominance blending (Cohen and Massaro, "Modeling coarticulation
in synthetic visual speech", 1993), per blendshape:

* every viseme segment ``i`` (centre ``c_i``, half-length ``h_i``) has a target ``T_ik`` for each
  blendshape ``k`` (:data:`.visemes.VISEME_TARGETS`) and a dominance magnitude ``a_ik``
  (:func:`.visemes.dominance_matrix`);
* its dominance over time is flat over the middle of the segment and falls off outside it
  (Cohen-Massaro's ``exp(-theta * tau^c)`` with ``c = 2``), faster after the segment
  (carry-over) than before it (anticipation)::

      D_i(t) = exp(-(max(0, |t - c_i| - p * h_i) / tau_i) ** 2),
      tau_i  = (ahead_v if t < c_i else behind_v) + q * h_i

  (``p`` = :data:`PLATEAU`, ``q`` = :data:`REACH_PER_SECOND`, ``ahead_v``/``behind_v`` per
  viseme in :data:`.visemes.TIMING`), so long segments hold their target and reach further,
  short ones are coloured by their neighbours;
* the weight of blendshape ``k`` at time ``t`` is the dominance-weighted mean of the targets,
  with a faint neutral (all zero) background ``eps`` so the face rests where nothing speaks::

      w_k(t) = sum_i D_i(t) a_ik T_ik / (eps + sum_i D_i(t) a_ik)

Why this meets the requirements: the mean never jumps (every ``D_i`` is continuous), vowels
blend into each other and into weakly-dominant consonants (t d n l k s barely constrain the
lips, ``a`` 0.3-0.5), and bilabials close the lips fully even when they last 20-30 ms because
their lip parameters have a dominance of 10 against 1 for vowels -- with a sharp (about 20 ms)
fall-off, so the closure does not leak into the vowels 50 ms away. One more constraint: the
lips *seal* for p b m even when the blended jaw is still a little open (the jaw is slower than
the lips), as ARKit expresses with ``mouthClose`` tracking ``jawOpen``: a seal parameter
``s(t)`` is blended like the others (1 for PP, 0 otherwise, dominance
:data:`.visemes.SEAL_DOMINANCE`), then ``mouthClose = max(mouthClose, s(t) * jawOpen)``, and
``mouthClose <= jawOpen`` always (more would push the lips through each other).

Sampling: weights are evaluated at the frame times themselves (no averaging over the frame),
which keeps peaks: a closure shorter than a frame still shows at the nearest frame because its
dominance is flat over its centre and dominant within +-20 ms of it. Each frame only looks at
segments within :data:`WINDOW` seconds, so cost is linear in the utterance length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import VISEME_INDEX
from avatar_mf.stages.animation_data.phonemes import VisemeSegment
from avatar_mf.stages.animation_data.visemes import (
    MOUTH_BLENDSHAPES,
    dominance_matrix,
    seal_dominance,
    seal_vector,
    target_matrix,
    timing_matrix,
)

#: Fraction of a segment's half-length over which its dominance stays at its maximum.
PLATEAU: Final = 0.6
#: Extra decay time per second of half-length (long segments reach further).
REACH_PER_SECOND: Final = 0.3
#: Dominance of the neutral background.
EPSILON: Final = 1e-3
#: Segments further than this from a frame are ignored (their dominance is < 1e-6).
WINDOW: Final = 0.6
#: Frames evaluated per block (bounds the size of the dominance matrix).
_BLOCK: Final = 256


class Coarticulator:
    """Turns viseme segments into (frames, K) weights of :data:`MOUTH_BLENDSHAPES`.

    Stateless after construction; safe to share between threads.
    """

    def __init__(self, *, articulation: float = 1.0) -> None:
        if not 0.0 < articulation <= 2.0:
            raise ValueError(f"articulation must be in (0, 2], not {articulation!r}")
        self.names: tuple[str, ...] = MOUTH_BLENDSHAPES
        targets = target_matrix(self.names) * articulation
        dominance = dominance_matrix(self.names)
        self._num = targets * dominance  # (15, K)
        self._den = dominance  # (15, K)
        seal = seal_vector()
        seal_dom = seal_dominance()
        self._seal_num = seal * seal_dom  # (15,)
        self._seal_den = seal_dom
        self._timing = timing_matrix()  # (15, 2)
        self._close = self.names.index("mouthClose")
        self._jaw = self.names.index("jawOpen")

    def weights(
        self, segments: Sequence[VisemeSegment], times: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """(len(times), K) blendshape weights in 0..1 at ``times`` (seconds, sorted)."""
        out = np.zeros((len(times), len(self.names)))
        if not segments or not len(times):
            return out
        starts = np.array([s.start for s in segments])
        ends = np.array([s.end for s in segments])
        rows = np.array([VISEME_INDEX[s.viseme] for s in segments])
        centres = (starts + ends) * 0.5
        halves = (ends - starts) * 0.5
        core = PLATEAU * halves
        reach = REACH_PER_SECOND * halves
        ahead = self._timing[rows, 0] + reach
        behind = self._timing[rows, 1] + reach
        num = self._num[rows]  # (S, K)
        den = self._den[rows]
        seal_num = self._seal_num[rows]  # (S,)
        seal_den = self._seal_den[rows]
        for first in range(0, len(times), _BLOCK):
            t = times[first : first + _BLOCK]
            lo = int(np.searchsorted(ends, t[0] - WINDOW, side="left"))
            hi = int(np.searchsorted(starts, t[-1] + WINDOW, side="right"))
            if lo >= hi:
                continue
            delta = t[:, None] - centres[None, lo:hi]  # (n, s): > 0 after the centre
            tau = np.where(delta < 0.0, ahead[None, lo:hi], behind[None, lo:hi])
            dom = np.exp(-np.square(np.maximum(np.abs(delta) - core[None, lo:hi], 0.0) / tau))
            block = (dom @ num[lo:hi]) / (EPSILON + dom @ den[lo:hi])
            seal = (dom @ seal_num[lo:hi]) / (EPSILON + dom @ seal_den[lo:hi])
            jaw = block[:, self._jaw]
            block[:, self._close] = np.minimum(np.maximum(block[:, self._close], seal * jaw), jaw)
            out[first : first + len(t)] = block
        np.clip(out, 0.0, 1.0, out=out)
        return out
