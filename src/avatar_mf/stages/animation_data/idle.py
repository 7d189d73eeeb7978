"""Life besides speech: eye blinks and small head motion, seeded and sampled at frame times.

Blinks. A person at rest or talking blinks every 2-6 s; a blink closes in about 60 ms and
opens in about 90 ms (the opening is slower). :func:`blink_weights` schedules blinks at random
intervals from a seeded generator, puts each closure peak exactly on a frame (so every blink
reaches full closure whatever the frame rate) and returns the ``eyeBlinkLeft``/``Right``
weight (both eyes blink together).

Head motion. :func:`head_angles` gives yaw, pitch and roll as smooth band-limited noise (three
sinusoids per axis with random frequencies in 0.07-0.45 Hz and random phases, a few degrees)
plus a small nod that follows the speech: the pitch dips with a low-passed jaw opening, so the
head moves with the emphasis of the sentence. An envelope starts and ends the motion at rest, so
consecutive utterances join without a jump.

Skeleton dependency. :func:`head_matrices` writes the local transform of the head joint for
JOINT units: index :data:`HEAD_JOINT_INDEX` = 2 in the product's skeleton
(``avatar_mf.avatar.model.DEFAULT_JOINT_NAMES`` = root, neck, head, jaw, eyeLeft, eyeRight),
whose rest pose is a translation of :data:`HEAD_REST_TRANSLATION` from the neck and no
rotation (``avatar_mf.avatar.generate``). A JOINT unit carries the whole local matrix, so the
translation must be the avatar's own: both are constructor options of
:class:`~avatar_mf.stages.animation_data.text_animation.TextToAnimation`. The jaw joint is not
animated: the product head's ``jawOpen`` blendshape already rotates the jaw, and driving both
would open it twice.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import NDArray

#: Index of the head joint in the product skeleton (root, neck, head, jaw, eyeLeft, eyeRight).
HEAD_JOINT_INDEX: Final = 2
#: The head joint's rest translation from the neck in the product's default head, metres.
HEAD_REST_TRANSLATION: Final = (0.0, 0.075, 0.0)

#: Seconds from one blink to the next: uniform in this range.
BLINK_INTERVAL: Final = (2.0, 6.0)
#: When the first blink may come, seconds from the start.
FIRST_BLINK: Final = (0.4, 2.5)
#: Closing and opening times of a blink, seconds.
BLINK_CLOSE: Final = 0.06
BLINK_OPEN: Final = 0.09

#: Peak amplitude of the idle head motion per axis (yaw, pitch, roll), radians.
HEAD_AMPLITUDE: Final = (math.radians(2.2), math.radians(1.5), math.radians(0.8))
#: Pitch (nod, face down) per unit of low-passed jaw opening, radians.
NOD_PER_JAW: Final = math.radians(4.0)
#: Seconds over which head motion fades in at the start and out at the end.
HEAD_FADE: Final = 0.4


def _smoothstep(x: NDArray[np.float64]) -> NDArray[np.float64]:
    x = np.clip(x, 0.0, 1.0)
    out: NDArray[np.float64] = x * x * (3.0 - 2.0 * x)
    return out


def blink_peaks(
    rng: np.random.Generator, duration: float, rate: float, *, margin: float = 0.3
) -> list[float]:
    """Closure peak times (on frames of ``rate``) of the blinks in ``[0, duration]``, none
    closer than ``margin`` to the end (nor a blink's half-length to the start)."""
    peaks: list[float] = []
    at = float(rng.uniform(*FIRST_BLINK))
    while at <= duration - margin:
        snapped = round(at * rate) / rate
        if snapped >= BLINK_CLOSE:
            peaks.append(snapped)
        at += float(rng.uniform(*BLINK_INTERVAL))
    return peaks


def blink_weights(
    times: NDArray[np.float64], peaks: list[float], *, amplitude: float = 1.0
) -> NDArray[np.float64]:
    """``eyeBlink`` weight at ``times`` for blinks closing fully at ``peaks``."""
    out = np.zeros(len(times))
    for peak in peaks:
        closing = _smoothstep((times - (peak - BLINK_CLOSE)) / BLINK_CLOSE)
        opening = 1.0 - _smoothstep((times - peak) / BLINK_OPEN)
        shape = np.where(times <= peak, closing, opening)
        np.maximum(out, shape * amplitude, out=out)
    return out


def _lowpass(values: NDArray[np.float64], rate: float, seconds: float) -> NDArray[np.float64]:
    """Zero-phase moving average over about ``seconds``."""
    width = max(1, int(round(seconds * rate)))
    if width == 1 or len(values) == 0:
        return values.copy()
    kernel = np.ones(width) / width
    padded = np.pad(values, (width // 2, width - 1 - width // 2), mode="edge")
    out: NDArray[np.float64] = np.convolve(padded, kernel, mode="valid")
    return out


def head_angles(
    rng: np.random.Generator,
    times: NDArray[np.float64],
    end: float,
    *,
    rate: float,
    jaw: NDArray[np.float64] | None = None,
    scale: float = 1.0,
) -> NDArray[np.float64]:
    """(len(times), 3) yaw, pitch, roll in radians; at rest at ``t = 0`` and ``t >= end``."""
    out = np.zeros((len(times), 3))
    for axis, amplitude in enumerate(HEAD_AMPLITUDE):
        freqs = rng.uniform(0.07, 0.45, size=3)
        phases = rng.uniform(0.0, 2.0 * math.pi, size=3)
        gains = rng.uniform(0.5, 1.0, size=3)
        waves = np.sin(2.0 * math.pi * freqs[None, :] * times[:, None] + phases[None, :])
        out[:, axis] = amplitude * (waves @ gains) / gains.sum()
    if jaw is not None and len(jaw):
        envelope = _lowpass(jaw, rate, 0.35)
        out[:, 1] += NOD_PER_JAW * (envelope - float(np.mean(envelope)))
    fade = _smoothstep(times / HEAD_FADE) * _smoothstep((end - times) / HEAD_FADE)
    out *= (fade * scale)[:, None]
    return out


def head_matrices(
    angles: NDArray[np.float64],
    translation: tuple[float, float, float] = HEAD_REST_TRANSLATION,
) -> NDArray[np.float64]:
    """(N, 16) row-major local matrices ``T(translation) * Ry(yaw) * Rx(pitch) * Rz(roll)``
    (column vectors, translation in elements 3, 7, 11) for (N, 3) yaw, pitch, roll."""
    yaw, pitch, roll = angles[:, 0], angles[:, 1], angles[:, 2]
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    n = len(angles)
    m = np.zeros((n, 4, 4))
    # Ry @ Rx @ Rz, expanded.
    m[:, 0, 0] = cy * cr + sy * sp * sr
    m[:, 0, 1] = -cy * sr + sy * sp * cr
    m[:, 0, 2] = sy * cp
    m[:, 1, 0] = cp * sr
    m[:, 1, 1] = cp * cr
    m[:, 1, 2] = -sp
    m[:, 2, 0] = -sy * cr + cy * sp * sr
    m[:, 2, 1] = sy * sr + cy * sp * cr
    m[:, 2, 2] = cy * cp
    m[:, 0, 3], m[:, 1, 3], m[:, 2, 3] = translation
    m[:, 3, 3] = 1.0
    return m.reshape(n, 16)
