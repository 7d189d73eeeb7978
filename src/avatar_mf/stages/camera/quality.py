"""Scoring tracked faces against the ground truth they were rendered from (pure numpy).

Issue 13's measures: per blendshape, the Pearson correlation over the frames of the recovered
weight with the true one (goal >= 0.8 for the :data:`.groundtruth.MEASURED` set); per head
angle, the absolute error in degrees (goal <= 5). Used by ``bench/video_animation.py`` and the
tests (which assert floors below the goals where the goals are not met yet).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from avatar_mf.face.result import FaceResult
from avatar_mf.stages.camera.groundtruth import MEASURED, Shot


@dataclass(frozen=True, slots=True)
class Score:
    """Correlation per measured blendshape; mean and worst absolute yaw/pitch error (deg)."""

    correlation: Mapping[str, float]
    yaw_error: float
    yaw_worst: float
    pitch_error: float
    pitch_worst: float
    frames: int


def score(shots: Sequence[Shot], faces: Sequence[FaceResult]) -> Score:
    """Score ``faces`` tracked from the pictures of ``shots`` (same order, same length)."""
    if len(shots) != len(faces) or len(shots) < 3:
        raise ValueError("need as many faces as shots, at least 3")
    truth = np.array([[s.weights.get(n, 0.0) for n in MEASURED] for s in shots])
    found = np.array([[f.blendshapes.get(n, 0.0) for n in MEASURED] for f in faces])
    correlation = {}
    for i, name in enumerate(MEASURED):
        t, f = truth[:, i], found[:, i]
        correlation[name] = (
            float(np.corrcoef(t, f)[0, 1]) if t.std() > 0 and f.std() > 0 else 0.0
        )
    yaw = np.abs([math.degrees(f.head.yaw) - s.yaw for s, f in zip(shots, faces, strict=True)])
    pitch = np.abs(
        [math.degrees(f.head.pitch) - s.pitch for s, f in zip(shots, faces, strict=True)]
    )
    return Score(
        correlation,
        float(yaw.mean()),
        float(yaw.max()),
        float(pitch.mean()),
        float(pitch.max()),
        len(shots),
    )
