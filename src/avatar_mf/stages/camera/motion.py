"""From tracked faces to animation values: rate limit, smoothing, relax when the face is lost.

Sans-IO and pure numpy: :class:`FaceMotion` is fed one observation per picture (its media time
in seconds and the tracker's :class:`~avatar_mf.face.result.FaceResult`, or None when the
picture had no usable face) and answers the 52 ARKit weights and the head's yaw, pitch and
roll to send for that picture, or None when the picture comes too soon after the last one
sent (``max_rate``: a 60 fps camera gives 30 units per second).

* **Smoothing**: first-order low-pass per value with time constant ``smoothing`` seconds
  (``alpha = 1 - exp(-dt / smoothing)``; 0 turns it off), so tracker jitter does not shake the
  avatar and a dropped picture does not make it jump. Blinks are fast (~100 ms): the default
  35 ms keeps them.
* **Face lost**: from the first picture without a face, the last values sent ease to neutral
  (weights 0, head at rest) over ``relax_time`` seconds (smoothstep), then stay there; when
  the face comes back the filter starts from wherever the relaxing face was, so there is no
  jump either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX
from avatar_mf.face.result import FaceResult

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class MotionSample:
    """What to send for one picture: (52,) weights in ARKit order, (3,) yaw/pitch/roll."""

    time: float
    weights: F64
    head: F64
    #: True while the face is lost (relaxing or at rest).
    lost: bool = False


class FaceMotion:
    def __init__(
        self, *, max_rate: float = 30.0, smoothing: float = 0.035, relax_time: float = 0.3
    ) -> None:
        if not (math.isfinite(max_rate) and 0.0 < max_rate <= 240.0):
            raise ValueError(f"max_rate must be in (0, 240] per second, not {max_rate!r}")
        if not (0.0 <= smoothing <= 1.0) or not (0.0 <= relax_time <= 5.0):
            raise ValueError("smoothing must be 0..1 s and relax_time 0..5 s")
        # A little slack so a camera at exactly max_rate with jitter is not halved.
        self._min_interval = 0.9 / max_rate
        self.smoothing = smoothing
        self.relax_time = relax_time
        self._count = len(ARKIT_BLENDSHAPES)
        self._weights = np.zeros(self._count)
        self._head = np.zeros(3)
        self._last: float | None = None
        self._lost_at: float | None = None
        self._lost_from: tuple[F64, F64] | None = None

    def due(self, time: float) -> bool:
        """Whether a picture at ``time`` would be used (not too soon after the last one): a
        caller asks before tracking it, so a 60 fps camera costs 30 trackings a second."""
        return self._last is None or time - self._last >= self._min_interval

    def update(self, time: float, face: FaceResult | None) -> MotionSample | None:
        last = self._last
        if not self.due(time):
            return None
        dt = 0.0 if last is None else time - last
        self._last = time
        if face is None:
            return self._relax(time)
        self._lost_at = self._lost_from = None
        target = np.zeros(self._count)
        for name, value in face.blendshapes.items():
            index = ARKIT_INDEX.get(name)
            if index is not None:
                target[index] = value
        head = np.array([face.head.yaw, face.head.pitch, face.head.roll])
        if last is None or self.smoothing == 0.0:
            alpha = 1.0
        else:
            alpha = 1.0 - math.exp(-dt / self.smoothing)
        self._weights = self._weights + alpha * (target - self._weights)
        self._head = self._head + alpha * (head - self._head)
        return MotionSample(time, self._weights.copy(), self._head.copy())

    def _relax(self, time: float) -> MotionSample:
        if self._lost_at is None:
            self._lost_at = time
            self._lost_from = (self._weights.copy(), self._head.copy())
        assert self._lost_from is not None
        x = 1.0 if self.relax_time == 0.0 else min(1.0, (time - self._lost_at) / self.relax_time)
        keep = 1.0 - x * x * (3.0 - 2.0 * x)
        self._weights = self._lost_from[0] * keep
        self._head = self._lost_from[1] * keep
        return MotionSample(time, self._weights.copy(), self._head.copy(), lost=True)
