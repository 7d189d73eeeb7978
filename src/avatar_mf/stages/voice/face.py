"""One frame of face from one decision: visemes, loudness, prosody and blinks -> weights.

Mouth. The viseme probabilities blend the text stage's viseme targets
(:data:`avatar_mf.stages.animation_data.visemes.VISEME_TARGETS`, the same ARKit semantics);
the blend then moves toward that target with a short time constant (:data:`MOUTH_TAU`), the
streaming counterpart of the text stage's dominance co-articulation: a short consonant only
partly shapes the lips, and the lips move from shape to shape instead of jumping. ``jawOpen``
follows loudness (level relative to the speaker's recent peak) as much as the visemes; a
bilabial or labiodental decision closes it.

Prosody. Two kinds of accent, each 0..1 and low-passed so they read as emphasis:

* a pitch accent: the voiced F0 (:mod:`.pitch`) rising above the speaker's running median
  (the median of the last :data:`PITCH_HISTORY` voiced frames, in semitones) by
  :data:`PITCH_ACCENT_ST` (from 1 st nothing to 5 st fully); held through short unvoiced
  stretches (:data:`PITCH_HOLD`) since a stressed syllable's consonants are unvoiced; a rise
  of more than :data:`PITCH_JUMP_ST` is taken for a tracking error (an octave jump), not an
  accent; none before the median rests on :data:`PITCH_MIN_HISTORY` voiced frames;
* an energy accent: the level rising above its slow mean (dB, :data:`ACCENT_DB` for full).

Brows follow pitch accents fully and energy accents at :data:`CROSS_SHARE`; head nods (pitch
down) the other way round: eyebrow raises go with F0 rises (Cave et al., "About the
relationship between eyebrow movements and F0 variations", ICSLP 1996), head nods with
stressed, loud syllables (Graf et al., "Visual prosody: facial movements accompanying
speech", FG 2002). A flat voice at a steady level moves neither.

Blinks keep their natural rate (every 2-6 s, 60 ms closing, 90 ms opening, as in
:mod:`avatar_mf.stages.animation_data.idle`), from an injected random generator.

Degradation. Silence, a gap in the audio (filled with silence by the stage) and clipped audio
all lead to a calm face: silence relaxes the mouth to rest over :data:`RELAX_TAU`; clipped
audio halves the mouth's movement and suppresses accents, so distortion never makes a wild face.
"""

from __future__ import annotations

import math
import random
from collections import deque
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
#: Semitones above the running median F0 at which a pitch accent starts / is full.
PITCH_ACCENT_ST: Final = (1.0, 5.0)
#: A rise above this (semitones) is a tracking error, not an accent.
PITCH_JUMP_ST: Final = 9.0
#: Voiced frames the running median spans (~3 s of voicing at 30/s); the fewest it needs.
PITCH_HISTORY: Final = 90
PITCH_MIN_HISTORY: Final = 15
#: Seconds a pitch accent is held through unvoiced frames while speaking.
PITCH_HOLD: Final = 0.12
#: The share of the other kind of accent in the brows (energy) and in the nods (pitch).
CROSS_SHARE: Final = 0.5
#: Seconds of the accents' low-pass.
ACCENT_TAU: Final = 0.15
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
        self._accent = 0.0  # energy accent, low-passed
        self._pitch_accent = 0.0  # pitch accent, low-passed
        self._pitch_target = 0.0  # the last voiced frame's pitch accent
        self._unvoiced_for = 0.0  # seconds since the last voiced frame
        self._semitones: deque[float] = deque(maxlen=PITCH_HISTORY)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(ARKIT_BLENDSHAPES[i] for i in self.indices)

    def step(
        self,
        probabilities: NDArray[np.float64] | None,
        relative_level: float,
        *,
        clipped: bool = False,
        f0: float = 0.0,
    ) -> FaceFrame:
        """Advance one frame. ``probabilities``: (15,) viseme probabilities, or None for
        silence or no audio (the face relaxes); ``f0``: the frame's pitch in Hz, 0 when
        unvoiced (:class:`~.pitch.PitchTracker`)."""
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
        smooth = 1.0 - math.exp(-dt / ACCENT_TAU)
        self._accent += (accent - self._accent) * smooth
        live = speaking and not clipped
        pitch_accent = self._pitch_accent_of(f0 if live else 0.0, live)
        self._pitch_accent += (pitch_accent - self._pitch_accent) * smooth
        brows = max(self._pitch_accent, CROSS_SHARE * self._accent)
        nod = max(self._accent, CROSS_SHARE * self._pitch_accent)
        out = np.zeros(len(self.indices))
        out[self._mouth_slots] = np.clip(self._mouth, 0.0, 1.0)
        for slot in self._brow_slots:
            out[slot] = BROW_MAX * brows
        blink = self._blink(self._time) if self._blinks else 0.0
        for slot in self._blink_slots:
            out[slot] = blink
        self._time += dt
        return FaceFrame(tuple(out.tolist()), (0.0, NOD_MAX * nod, 0.0))

    def _pitch_accent_of(self, f0: float, speaking: bool) -> float:
        """This frame's pitch accent (before the low-pass); updates the running median."""
        if f0 <= 0.0:
            self._unvoiced_for += self._dt
            if not speaking or self._unvoiced_for > PITCH_HOLD:
                self._pitch_target = 0.0
            return self._pitch_target
        self._unvoiced_for = 0.0
        semitones = 12.0 * math.log2(f0 / 100.0)
        target = 0.0
        if len(self._semitones) >= PITCH_MIN_HISTORY:
            rise = semitones - float(np.median(np.fromiter(self._semitones, float)))
            low, high = PITCH_ACCENT_ST
            if rise <= PITCH_JUMP_ST:
                target = min(max((rise - low) / (high - low), 0.0), 1.0)
        self._semitones.append(semitones)
        self._pitch_target = target
        return target

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
