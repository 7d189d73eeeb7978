"""One frame of face from one decision: visemes, loudness, prosody and blinks -> weights.

Mouth. The viseme probabilities blend the text stage's viseme targets
(:data:`avatar_mf.stages.animation_data.visemes.VISEME_TARGETS`, the same ARKit semantics);
the blend then moves toward that target with a short time constant (:data:`MOUTH_TAU`), the
streaming counterpart of the text stage's dominance co-articulation: a short consonant only
partly shapes the lips, and the lips move from shape to shape instead of jumping. ``jawOpen``
follows loudness (level relative to the speaker's recent peak) as much as the visemes; a
bilabial or labiodental decision closes it.

Prosody. An accent is the level rising above its slow mean (energy accent, dB); accents raise
the brows and nod the head (pitch down), both low-passed so they read as emphasis.

Blinks keep their natural rate (every 2-6 s, 60 ms closing, 90 ms opening, as in
:mod:`avatar_mf.stages.animation_data.idle`), from an injected random generator.

Degradation. Silence, a gap in the audio (filled with silence by the stage) and clipped audio
all lead to a calm face: silence relaxes the mouth to rest over :data:`RELAX_TAU`; clipped
audio halves the mouth's movement and suppresses accents, so distortion never makes a wild face.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX
from avatar_mf.stages.animation_data.idle import BLINK_CLOSE, BLINK_INTERVAL, BLINK_OPEN
from avatar_mf.stages.animation_data.visemes import MOUTH_BLENDSHAPES, target_matrix
from avatar_mf.stages.voice.labels import COARSE, COARSE_OF_VISEME

#: Seconds for the mouth to move most of the way to a new target.
MOUTH_TAU: Final = 0.035
#: Seconds for the face to relax on silence.
RELAX_TAU: Final = 0.08
#: Relative level (dB below the recent peak) at which loudness opens the jaw not at all / fully.
JAW_LEVELS: Final = (-30.0, 0.0)
#: Largest jaw opening from loudness alone.
JAW_MAX: Final = 0.55
#: dB of accent for full brow raise; the brows' largest weight; the nod per full accent.
ACCENT_DB: Final = 10.0
BROW_MAX: Final = 0.35
NOD_MAX: Final = math.radians(3.0)
_BROWS: Final = ("browInnerUp", "browOuterUpLeft", "browOuterUpRight")
_BLINKS: Final = ("eyeBlinkLeft", "eyeBlinkRight")
_CLOSED: Final = COARSE.index("closed")


@dataclass(frozen=True, slots=True)
class FaceFrame:
    """The driven weights (ARKit order, :attr:`FaceModel.indices`) and the head angles."""

    weights: tuple[float, ...]
    #: yaw, pitch, roll in radians.
    head: tuple[float, float, float]


class FaceModel:
    """Per-session face state; :meth:`step` once per output frame."""

    def __init__(self, rng: random.Random, *, rate: float = 30.0, blinks: bool = True) -> None:
        self._rng = rng
        self._dt = 1.0 / rate
        self._targets = target_matrix(MOUTH_BLENDSHAPES)
        self._mouth = np.zeros(len(MOUTH_BLENDSHAPES))
        self._jaw = MOUTH_BLENDSHAPES.index("jawOpen")
        self._closed_mask = (COARSE_OF_VISEME == _CLOSED).astype(np.float64)
        names = {*MOUTH_BLENDSHAPES, *_BROWS, *_BLINKS}
        self.indices: tuple[int, ...] = tuple(sorted(ARKIT_INDEX[n] for n in names))
        position = {index: k for k, index in enumerate(self.indices)}
        self._mouth_slots = np.array([position[ARKIT_INDEX[n]] for n in MOUTH_BLENDSHAPES])
        self._brow_slots = [position[ARKIT_INDEX[n]] for n in _BROWS]
        self._blink_slots = [position[ARKIT_INDEX[n]] for n in _BLINKS]
        self._blinks = blinks
        self._time = 0.0
        self._next_blink = rng.uniform(0.4, 2.5)
        self._slow_level = -40.0
        self._accent = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(ARKIT_BLENDSHAPES[i] for i in self.indices)

    def step(
        self,
        probabilities: NDArray[np.float64] | None,
        relative_level: float,
        *,
        clipped: bool = False,
    ) -> FaceFrame:
        """Advance one frame. ``probabilities``: (15,) viseme probabilities, or None for
        silence or no audio (the face relaxes)."""
        dt = self._dt
        speaking = probabilities is not None
        if probabilities is not None:
            target = probabilities @ self._targets
            low, high = JAW_LEVELS
            loud = min(max((relative_level - low) / (high - low), 0.0), 1.0) * JAW_MAX
            loud *= 1.0 - float(probabilities[0])  # sil: loud noise is not speech
            closed = float(probabilities @ self._closed_mask)
            target[self._jaw] = (0.5 * target[self._jaw] + loud) * (1.0 - closed)
            if clipped:
                target *= 0.5
            tau = MOUTH_TAU
        else:
            target = np.zeros_like(self._mouth)
            tau = RELAX_TAU
        self._mouth += (target - self._mouth) * (1.0 - math.exp(-dt / tau))
        # Prosody: energy accents while speaking.
        level = relative_level if speaking else -60.0
        rise = level - self._slow_level
        self._slow_level += (level - self._slow_level) * (1.0 - math.exp(-dt / 0.6))
        accent = min(max(rise / ACCENT_DB, 0.0), 1.0) if speaking and not clipped else 0.0
        self._accent += (accent - self._accent) * (1.0 - math.exp(-dt / 0.15))
        out = np.zeros(len(self.indices))
        out[self._mouth_slots] = np.clip(self._mouth, 0.0, 1.0)
        for slot in self._brow_slots:
            out[slot] = BROW_MAX * self._accent
        blink = self._blink(self._time) if self._blinks else 0.0
        for slot in self._blink_slots:
            out[slot] = blink
        self._time += dt
        return FaceFrame(tuple(out.tolist()), (0.0, NOD_MAX * self._accent, 0.0))

    def _blink(self, now: float) -> float:
        start = self._next_blink
        if now < start:
            return 0.0
        since = now - start
        if since < BLINK_CLOSE:
            return since / BLINK_CLOSE
        if since < BLINK_CLOSE + BLINK_OPEN:
            return 1.0 - (since - BLINK_CLOSE) / BLINK_OPEN
        self._next_blink = start + self._rng.uniform(*BLINK_INTERVAL)
        return 0.0
