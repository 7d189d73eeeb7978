"""Which of the caller's video pictures the photo generator builds from (``avatar generate``
with ``source: video``; issue 14: "points at its RTP video stream (a few frames are taken)").

The session keeps the last few decoded pictures of the call's RTP video (I420, the newest
key frame and pictures spread over about a second). In the generator's worker each is
converted to RGB (:func:`avatar_mf.face.pictures.i420_to_rgb`) and tracked; of those with one
usable face, the most frontal ones (within :data:`FRONTAL_SLACK` of the most frontal: the
fit is made for a front view) are ranked by sharpness (:func:`sharpness`: the variance of a
Laplacian of the face's grey levels, what motion blur and a coarse quantizer lower), and the
sharpest :data:`VIDEO_PICTURES` are built from, as photos. No picture with a face: the last
picture's face code (``no-face``, ``too-blurred``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face.result import FaceResult

#: Radians a picture may be less frontal than the most frontal one and still be chosen.
FRONTAL_SLACK = math.radians(8.0)
#: Pictures built from (the sharpest frontal one: several views of one pose add nothing).
VIDEO_PICTURES = 1


@dataclass(frozen=True, slots=True)
class Candidate:
    """One tracked picture: its index in the request, how far from frontal (radians) and
    how sharp its face is."""

    index: int
    turn: float
    sharpness: float


def turn(face: FaceResult) -> float:
    """Angle between the face's forward direction and the camera's axis (radians)."""
    cosine = math.cos(face.head.yaw) * math.cos(face.head.pitch)
    return math.acos(max(-1.0, min(1.0, cosine)))


def sharpness(rgb: NDArray[np.uint8], face: FaceResult) -> float:
    """Variance of the 4-neighbour Laplacian of the grey levels inside the face's box."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = face.box
    left, right = max(0, int(x0 * width)), min(width, int(math.ceil(x1 * width)))
    top, bottom = max(0, int(y0 * height)), min(height, int(math.ceil(y1 * height)))
    grey = rgb[top:bottom, left:right].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    laplacian = (
        grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
        - 4.0 * grey[1:-1, 1:-1]
    )
    return float(laplacian.var())


def choose(candidates: Sequence[Candidate], count: int = VIDEO_PICTURES) -> list[int]:
    """Indices of the sharpest ``count`` among the most frontal candidates, in request order."""
    if not candidates:
        return []
    best = min(c.turn for c in candidates)
    frontal = [c for c in candidates if c.turn <= best + FRONTAL_SLACK]
    frontal.sort(key=lambda c: (-c.sharpness, c.turn, -c.index))
    return sorted(c.index for c in frontal[:count])
