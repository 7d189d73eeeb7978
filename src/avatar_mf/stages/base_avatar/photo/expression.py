"""The expression a photo shows, so the avatar's neutral face is neutral.

People smile for photos. Fitted as it is, a smiling photo would give an avatar whose *neutral*
face smiles (and smiles twice as much under mouthSmile). So the photo's expression is read from
the face model's blendshape scores and put on the template before fitting: the template,
showing that expression, is mapped onto the photo's landmarks, and the same map applied to
the template's neutral face gives the person's neutral face (:mod:`.transfer` carries the
blendshapes, so the avatar with the photo's weights shows the photo again).

Only the blendshapes a photo's expression commonly moves the face's outline with are used
(:data:`NEUTRALISED`), each as the score minus what the model reads on the template's own
neutral face (its bias on this head, stored with the anchors), clamped to 0..1. The photo that
sees the face most squarely (the smallest head turn) is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from avatar_mf.face.result import FaceResult

NEUTRALISED = (
    "jawOpen",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
)


def frontal(faces: Sequence[FaceResult]) -> FaceResult:
    """The face turned least (yaw and pitch)."""
    return min(faces, key=lambda face: abs(face.head.yaw) + abs(face.head.pitch))


def photo_expression(
    faces: Sequence[FaceResult], baseline: Mapping[str, float]
) -> dict[str, float]:
    """Weights by ARKit name of the expression the most frontal photo shows."""
    scores = frontal(faces).blendshapes
    out = {}
    for name in NEUTRALISED:
        weight = min(1.0, max(0.0, scores.get(name, 0.0) - baseline.get(name, 0.0)))
        if weight > 0.0:
            out[name] = weight
    return out
