"""A pose on a portrait: blendshape weights warp the landmarks, the head joint turns the face.

:class:`PortraitRig` has the 3D rig's interface (:class:`~avatar_mf.stages.animation.posing.Rig`:
``neutral()``, ``pose(pose) -> (positions, normals)``), so the network-animation stage drives
a portrait exactly as it drives a head:

1. **Morph**: ``rest + sum_k w_k * basis_k`` (:mod:`.shapes`), weights in ARKit order
   (BLENDSHAPE units of set 0).
2. **Head**: the rotation of the product skeleton's head (root, neck, head locals: JOINT
   units of skeleton 0, e.g. the text or camera stage's head motion), its yaw, pitch and roll
   held to +-:data:`MAX_ANGLE`, turns the 3D points (x, y, depth) about the head's pivot
   (:class:`~.model.PortraitModel`), projected straight on; each vertex follows by its
   ``head_weight`` (the face fully, the picture's edge not at all). The product's convention:
   Y up, +Z towards the camera, ``Ry(yaw) Rx(pitch) Rz(roll)``; the picture's axes are x right,
   y down, depth away, so the rotation is conjugated by diag(1, -1, -1).
3. **Out**: (V, 3) float32 for the renderer's flat meshes (:class:`~avatar_mf.render.MeshData`
   ``flat``): x and y as fractions of the picture, and a depth in 0..1 (nearer the camera:
   smaller; the mouth's inside behind everything); normals are zeros (flat meshes are unlit).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face import HeadPose
from avatar_mf.stages.animation.portrait.model import MOUTH, TEETH, PortraitModel
from avatar_mf.stages.animation.posing import Pose

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]

#: Largest head angle shown, each of yaw, pitch, roll (a 2D warp cannot show more).
MAX_ANGLE: Final = math.radians(20.0)
#: Joints of the product skeleton (root, neck, head, jaw, eyeLeft, eyeRight); the head is 2.
JOINTS: Final = 6
HEAD_CHAIN: Final = (0, 1, 2)
_FLIP = np.diag([1.0, -1.0, -1.0])
_ACTIVE = 1e-6


class PortraitRig:
    """Poses one :class:`~.model.PortraitModel` (see the module)."""

    def __init__(self, model: PortraitModel) -> None:
        self.model = model
        self.basis = model.basis
        self.rest = model.rest
        self._depth_scale = 0.05 / model.frame.iod
        self._reference_depth = float(model.pivot[2])

    @property
    def target_count(self) -> int:
        return int(self.basis.shape[0])

    def neutral(self) -> Pose:
        """No weight, every joint at the identity."""
        return Pose(np.zeros(self.target_count), np.tile(np.eye(4), (JOINTS, 1, 1)))

    def head_rotation(self, locals_: F64) -> F64:
        """The head's rotation in the picture's axes (3x3), its angles held to MAX_ANGLE."""
        rotation = np.eye(3)
        for joint in HEAD_CHAIN:
            if joint < len(locals_):
                rotation = rotation @ locals_[joint, :3, :3]
        angles = HeadPose.from_rotation(rotation)
        yaw, pitch, roll = (max(-MAX_ANGLE, min(MAX_ANGLE, a))
                            for a in (angles.yaw, angles.pitch, angles.roll))
        held = HeadPose(yaw, pitch, roll)
        out: F64 = _FLIP @ held.rotation() @ _FLIP
        return out

    def points(self, pose: Pose) -> F64:
        """(V, 3) posed vertices in the picture's pixels and depth."""
        weights = np.asarray(pose.weights, dtype=np.float64)
        points = self.rest.copy()
        active = np.flatnonzero(np.abs(weights[: self.target_count]) > _ACTIVE)
        if active.size:
            points[:, :2] += np.tensordot(weights[active], self.basis[active], axes=1)
        rotation = self.head_rotation(np.asarray(pose.locals, dtype=np.float64))
        if not np.allclose(rotation, np.eye(3)):
            pivot = self.model.pivot
            turned = (points - pivot) @ rotation.T + pivot
            points += self.model.head_weight[:, None] * (turned - points)
        return points

    def pose(self, pose: Pose) -> tuple[F32, F32]:
        """(V, 3) float32 positions for the renderer (x, y fractions; depth 0..1) and zero
        normals."""
        points = self.points(pose)
        out = np.empty_like(points)
        out[:, :2] = points[:, :2] / self.model.size
        depth = 0.5 + (points[:, 2] - self._reference_depth) * self._depth_scale
        out[:, 2] = np.clip(depth, 0.05, 0.9)
        out[MOUTH:TEETH, 2] = 0.95  # the mouth's dark inside, behind everything
        out[TEETH:, 2] = 0.93  # the photo's mouth, in front of it and behind the lips
        return out.astype(np.float32), np.zeros_like(out, dtype=np.float32)
