"""What a face tracker reports for one picture, and why it can report nothing.

:class:`FaceResult` is the one face a tracker found: 478 landmarks (MediaPipe's face mesh
topology: the 468 points of the canonical face mesh plus 10 iris points), the blendshape
weights by ARKit name (:data:`avatar_mf.arf.blendshapes.ARKIT_BLENDSHAPES`; MediaPipe gives 51
of the 52, no ``tongueOut``) and the head pose.

Head pose convention (the one the product's head joint uses, ``stages/animation_data/idle.py``):
the face looks along +Z towards the camera, Y up; the rotation is ``Ry(yaw) @ Rx(pitch) @
Rz(roll)`` (column vectors, radians). Positive yaw turns the face towards its own left (+X),
positive pitch tilts it down, positive roll tilts the top of the head towards the face's
right. Because the camera sees the person and a receiver sees the avatar from the same side,
the same angles drive the avatar's head: the avatar turns the way the person turns.

:class:`FaceTrackingError` carries the answer for a picture without a usable face (TR 26.813
D.1.1 and D.3.3 both start from a picture of one face): ``code`` is one of :class:`FaceError`,
``rejected`` says the picture (the UE's input), not the MF, was at fault.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

#: Landmarks per face (MediaPipe face mesh with irises).
LANDMARK_COUNT = 478


class FaceError(enum.StrEnum):
    """Why a picture gave no face result (codes for the UE's ``error`` message)."""

    NO_FACE = "no-face"
    SEVERAL_FACES = "several-faces"
    FACE_TOO_SMALL = "face-too-small"
    TOO_DARK = "too-dark"
    TOO_BLURRED = "too-blurred"
    #: Not a picture the tracker can read (bad shape, undecodable JPEG/PNG, too large).
    UNSUPPORTED_IMAGE = "unsupported-image"


class FaceTrackingError(Exception):
    """A picture without one usable face. ``code`` and ``retryable`` as a
    :class:`~avatar_mf.pipeline.stage.StageFailure` reads them; ``faces`` how many faces were
    seen (for ``several-faces``)."""

    def __init__(self, code: FaceError, message: str, *, faces: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.faces = faces
        self.retryable = False
        self.rejected = True


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Head rotation (radians, the convention of the module docstring) and, when the tracker
    knows it, the face-to-camera transform (4x4, column vectors, centimetres for MediaPipe)."""

    yaw: float
    pitch: float
    roll: float
    matrix: tuple[float, ...] | None = None

    @classmethod
    def from_rotation(
        cls, rotation: NDArray[np.float64], matrix: NDArray[np.float64] | None = None
    ) -> HeadPose:
        """Angles of a rotation matrix ``Ry(yaw) @ Rx(pitch) @ Rz(roll)`` (3x3)."""
        r = np.asarray(rotation, dtype=np.float64)
        pitch = math.asin(max(-1.0, min(1.0, -float(r[1, 2]))))
        yaw = math.atan2(float(r[0, 2]), float(r[2, 2]))
        roll = math.atan2(float(r[1, 0]), float(r[1, 1]))
        flat = None if matrix is None else tuple(float(v) for v in np.asarray(matrix).reshape(-1))
        return cls(yaw, pitch, roll, flat)

    def rotation(self) -> NDArray[np.float64]:
        """The 3x3 rotation ``Ry(yaw) @ Rx(pitch) @ Rz(roll)``."""
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
        rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
        rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
        out: NDArray[np.float64] = ry @ rx @ rz
        return out


@dataclass(frozen=True, slots=True, eq=False)
class FaceResult:
    """One tracked face.

    ``landmarks`` (478, 3): x and y in image fractions (0..1 left to right, top to bottom), z
    depth in the same scale as x (smaller: nearer the camera). ``blendshapes``: ARKit name ->
    weight 0..1. ``box`` (x0, y0, x1, y1): the landmarks' bounding box in image fractions.
    """

    landmarks: NDArray[np.float32] = field(repr=False)
    blendshapes: Mapping[str, float]
    head: HeadPose
    width: int
    height: int

    @property
    def box(self) -> tuple[float, float, float, float]:
        xy = self.landmarks[:, :2]
        return (
            float(xy[:, 0].min()),
            float(xy[:, 1].min()),
            float(xy[:, 0].max()),
            float(xy[:, 1].max()),
        )

    @property
    def face_pixels(self) -> float:
        """The face's size in pixels: the larger side of its landmark box."""
        x0, y0, x1, y1 = self.box
        return max((x1 - x0) * self.width, (y1 - y0) * self.height)
