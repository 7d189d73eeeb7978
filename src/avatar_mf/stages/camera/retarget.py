"""Retargeting a tracked face to the avatar's ARKit weights: landmark geometry -> weights.

MediaPipe's blendshape model reads the product's procedural head poorly on some channels (its
neutral face scores as half puckered with raised inner brows, and its smile barely moves the
scores: docs/performance.md, "Camera animation"), and reads only ~0.7 of the head's pitch.
:class:`Retargeting` corrects both from what the tracker measures well, the 478 landmarks:

* features (:func:`features`): 40 distances between landmarks (mouth opening and width, lip
  corners to the eyes and the chin, eye openings, inner brows to the eyes, lips to the nose
  tip ...), in 3D and over the distance between the outer eye corners, so they do not change
  with the head's turn or the face's size; plus MediaPipe's own 7 scores of the measured
  channels;
* per measured channel (:data:`~.groundtruth.MEASURED`) a ridge-regression line on the
  standardized features, clipped to 0..1; the other 45 channels keep MediaPipe's scores;
* head pitch: a ridge-regression line on MediaPipe's pitch and the same standardized features
  (MediaPipe's face transform is fitted to the landmarks, so an open jaw or raised brows tilt
  it: its pitch error correlates ~0.6 with jawOpen on the renders; the features correct it);
* only for faces like those it was fitted on: the root mean square of the standardized
  features (:meth:`Retargeting.distance`) is 0.99 (median), 1.71 (99th percentile) on 80
  held-out renders of the head (1.93 at most on the 240 it was fitted on) and 1.95-2.23 on the
  astronaut photograph (as is, mirrored, at 256x256, turned 10 degrees); up to ``near`` (1.6)
  the map is used, past ``far`` (2.0) MediaPipe's own scores and pitch are, linearly blended
  between. A real face thus keeps (nearly) what MediaPipe reads: the map alone reads the
  astronaut's open eyes as 20-50 % closed (a real face's eyes are narrower than the
  mannequin's). The gate is set from one photograph: a real face closer to the mannequin's
  proportions would be partly retargeted.

The coefficients are fitted by ``tools/fit_face_retarget.py`` on renders of the product's head
at known weights (:mod:`.groundtruth`, seeds apart from those the tests and the benchmark
score on) and shipped as :mod:`.retarget_fit` (generated; no file is read at run time). The
fit is to the product's head: on a real face it must stay plausible (the tests check the
astronaut photograph keeps a calm face), and an operator whose UEs send real faces can turn it
off (``retarget = "none"``). Pure numpy, ~50 us a face.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face.result import FaceResult, HeadPose
from avatar_mf.stages.camera.groundtruth import MEASURED, Shot

#: Landmark pairs whose distances are the features (MediaPipe Face Mesh indices: 13/14 inner
#: lips, 0/17 outer lips, 61/291 and 78/308 mouth corners, 33/263 outer and 133/362 inner eye
#: corners, 159/145 and 386/374 eyelids, 105/107/334/336/55/285/66/296/70/300 brows, 1 nose
#: tip, 152 chin, 168 nose bridge).
PAIRS: tuple[tuple[int, int], ...] = (
    (13, 14), (0, 17), (61, 291), (78, 308), (61, 33), (291, 263), (61, 152), (291, 152),
    (159, 145), (386, 374), (33, 133), (362, 263), (107, 133), (336, 362), (105, 33),
    (334, 263), (107, 336), (0, 1), (17, 1), (13, 1), (61, 1), (291, 1), (0, 152), (1, 152),
    (70, 159), (300, 386), (37, 0), (267, 0), (40, 91), (270, 321), (81, 178), (311, 402),
    (107, 159), (336, 386), (55, 133), (285, 362), (66, 159), (296, 386), (107, 168),
    (336, 168),
)  # fmt: skip
FEATURES = len(PAIRS) + len(MEASURED)

F64 = NDArray[np.float64]


def features(face: FaceResult) -> F64:
    """The (FEATURES,) feature vector of one tracked face."""
    scale = np.array([face.width, face.height, face.width], dtype=np.float64)
    points = face.landmarks.astype(np.float64) * scale
    a = points[[i for i, _ in PAIRS]]
    b = points[[j for _, j in PAIRS]]
    eyes = float(np.linalg.norm(points[33] - points[263])) or 1.0
    distances = np.linalg.norm(a - b, axis=1) / eyes
    scores = [face.blendshapes.get(name, 0.0) for name in MEASURED]
    return np.concatenate([distances, np.asarray(scores, dtype=np.float64)])


@dataclass(frozen=True, slots=True, eq=False)
class Retargeting:
    """``mean``/``scale`` standardize the features; ``weights`` (FEATURES + 1, 7): one
    column per measured channel, the last row the intercept; ``pitch`` (FEATURES + 2,): the
    head pitch in degrees is ``pitch @ [measured pitch in degrees, *z-scores, 1]``."""

    mean: F64
    scale: F64
    weights: F64
    pitch: F64
    near: float = 1.6
    far: float = 2.0

    def z_scores(self, face: FaceResult) -> F64:
        """``face``'s standardized features."""
        z: F64 = (features(face) - self.mean) / self.scale
        return z

    def distance(self, face: FaceResult) -> float:
        """How far ``face`` is from the faces the map was fitted on (RMS of the z-scores)."""
        return self._distance(self.z_scores(face))

    def trust(self, face: FaceResult) -> float:
        """1 where the map is used, 0 where MediaPipe's own values are, linear between."""
        return self._trust(self.z_scores(face))

    def weights_of(self, face: FaceResult) -> dict[str, float]:
        """The measured channels' weights the map gives ``face``, 0..1 (no blending)."""
        return self._weights(self.z_scores(face))

    def pitch_of(self, face: FaceResult) -> float:
        """The head pitch in degrees the map gives ``face`` (no blending)."""
        return self._pitch(face, self.z_scores(face))

    def apply(self, face: FaceResult) -> FaceResult:
        """``face`` with the measured channels and the head pitch retargeted (as far as it is
        trusted, :meth:`trust`)."""
        z = self.z_scores(face)
        trust = self._trust(z)
        if trust == 0.0:
            return face
        blendshapes = dict(face.blendshapes)
        for name, value in self._weights(z).items():
            raw = blendshapes.get(name, 0.0)
            blendshapes[name] = raw + trust * (value - raw)
        raw_pitch = math.degrees(face.head.pitch)
        pitch = math.radians(raw_pitch + trust * (self._pitch(face, z) - raw_pitch))
        head = HeadPose(face.head.yaw, pitch, face.head.roll, face.head.matrix)
        return replace(face, blendshapes=blendshapes, head=head)

    def _distance(self, z: F64) -> float:
        return float(np.sqrt(np.mean(z * z)))

    def _trust(self, z: F64) -> float:
        d = self._distance(z)
        return float(np.clip((self.far - d) / max(1e-9, self.far - self.near), 0.0, 1.0))

    def _weights(self, z: F64) -> dict[str, float]:
        out = np.clip(np.append(z, 1.0) @ self.weights, 0.0, 1.0)
        return {name: float(v) for name, v in zip(MEASURED, out, strict=True)}

    def _pitch(self, face: FaceResult, z: F64) -> float:
        measured = math.degrees(face.head.pitch)
        return float(np.concatenate([[measured], z, [1.0]]) @ self.pitch)


def fit(shots: Sequence[Shot], faces: Sequence[FaceResult], *, ridge: float = 3.0) -> Retargeting:
    """Fit on faces tracked from the renders of ``shots`` (same order)."""
    if len(shots) != len(faces) or len(shots) < FEATURES:
        raise ValueError(f"need as many faces as shots, at least {FEATURES}")
    x = np.array([features(f) for f in faces])
    y = np.array([[s.weights.get(n, 0.0) for n in MEASURED] for s in shots])
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-9
    a = np.c_[(x - mean) / scale, np.ones(len(x))]
    penalty = ridge * np.diag([1.0] * FEATURES + [0.0])
    weights = np.linalg.solve(a.T @ a + penalty, a.T @ y)
    measured = np.array([math.degrees(f.head.pitch) for f in faces])
    truth = np.array([s.pitch for s in shots])
    b = np.c_[measured, a]  # the measured pitch, the z-scores, the intercept; not penalized
    penalty = ridge * np.diag([0.0] + [1.0] * FEATURES + [0.0])
    pitch = np.linalg.solve(b.T @ b + penalty, b.T @ truth)
    return Retargeting(mean, scale, weights, pitch)


def product_head() -> Retargeting:
    """The map fitted on the product's default head (:mod:`.retarget_fit`)."""
    from avatar_mf.stages.camera import retarget_fit as fitted

    return Retargeting(
        np.array(fitted.MEAN),
        np.array(fitted.SCALE),
        np.array(fitted.WEIGHTS).reshape(FEATURES + 1, len(MEASURED)),
        np.array(fitted.PITCH),
    )
