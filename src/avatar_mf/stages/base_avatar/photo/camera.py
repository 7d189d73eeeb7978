"""A photo's camera: a pinhole (perspective) projection in the template's frame.

Hartley and Zisserman, *Multiple View Geometry* (2nd ed.), 6.1: a point ``X`` seen by a camera
at ``C`` with rotation ``R`` lies at ``q = R^T (X - C)`` in the camera's frame (x right, y up,
the camera looking along -z) and at ``c + f q_xy / (-q_z)`` in the picture (pixels, y up, as
:func:`.alignment.landmark_shape` gives them). The focal length ``f`` in pixels comes from the
photo's EXIF (``FocalLengthIn35mmFilm``, 35 mm equivalent, over the full frame's 43.27 mm
diagonal; or ``FocalLength`` with ``FocalPlaneXResolution``, EXIF 2.32 tags 0xA405, 0x920A,
0xA20E, 0xA210), or :data:`DEFAULT_FOCAL_35MM` when the photo does not say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

#: The 35 mm equivalent focal length assumed for a photo without one in its EXIF: a portrait
#: lens (29 degrees across the diagonal). Assuming too long a lens costs little (the limit is
#: the weak-perspective fit), too short a lens more (docs/avatars.md: on renders taken at
#: 79 mm, assuming 150 mm gives a front photo's shape 4.73 %, 50 mm 4.64 %, 26 mm 5.42 %,
#: weak perspective 5.00 %); a phone's selfie is about 26 mm, but a phone writes EXIF.
DEFAULT_FOCAL_35MM = 85.0
#: The diagonal of a 36 x 24 mm frame (what "35 mm equivalent" is measured against).
FULL_FRAME_DIAGONAL = 43.27


def focal_pixels(focal_35mm: float | None, width: int, height: int) -> float:
    """The focal length in pixels of a ``width`` x ``height`` photo whose lens is
    ``focal_35mm`` (35 mm equivalent; None: :data:`DEFAULT_FOCAL_35MM`)."""
    focal = DEFAULT_FOCAL_35MM if focal_35mm is None else focal_35mm
    return focal / FULL_FRAME_DIAGONAL * math.hypot(width, height)


@dataclass(frozen=True, slots=True, eq=False)
class PinholePose:
    """A photo's perspective camera in the template's frame (metres).

    ``rotation`` (3, 3): its columns are the camera's x (right), y (up) and z (backwards,
    towards the camera from the face) axes; ``centre`` (3,): where the camera is; ``focal``:
    pixels; ``principal`` (2,): the picture's centre (x right, y up, pixels); ``scale``:
    metres per pixel at the face's distance (as :class:`.alignment.Similarity`'s)."""

    rotation: F64
    centre: F64
    focal: float
    principal: F64
    scale: float

    def camera_frame(self, points: F64) -> F64:
        out: F64 = (points - self.centre) @ self.rotation
        return out

    def inverse(self, points: F64) -> F64:
        """(N, 3): each point's picture position (pixels, x right, y up) and its depth
        relative to the face's distance, in pixels (negative: farther), as
        :meth:`.alignment.Similarity.inverse` gives for a weak-perspective photo."""
        q = self.camera_frame(points)
        depth = -q[:, 2]
        xy = self.principal + self.focal * q[:, :2] / depth[:, None]
        distance = self.focal * self.scale
        out: F64 = np.column_stack([xy, (distance - depth) / self.scale])
        return out
