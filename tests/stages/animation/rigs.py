"""Tiny hand-built models whose posed vertices are worked out by hand in the tests."""

from __future__ import annotations

import numpy as np

from avatar_mf.avatar.model import AvatarModel, Joint


def two_bone_model() -> AvatarModel:
    """Joint 0 ``root`` at the origin, joint 1 ``bone`` one metre up (+Y) from it.

    Vertex 0 (1, 0, 0) follows the root, vertex 1 (0, 2, 0) the bone, vertex 2 (1, 1, 0) both
    half and half. Two morph targets: ``a`` moves vertex 0 by (0, 1, 0); ``b`` moves vertex 0
    by (1, 0, 0) and vertex 1 by (0, 0, 2).
    """
    positions = [(1.0, 0.0, 0.0), (0.0, 2.0, 0.0), (1.0, 1.0, 0.0)]
    ibm = np.stack([np.eye(4), np.eye(4)])
    ibm[1, 1, 3] = -1.0  # inverse of the bone's rest transform: translate (0, -1, 0)
    targets = np.zeros((2, 3, 3))
    targets[0, 0] = (0.0, 1.0, 0.0)
    targets[1, 0] = (1.0, 0.0, 0.0)
    targets[1, 1] = (0.0, 0.0, 2.0)
    return AvatarModel(
        positions=positions,
        normals=[(0.0, 0.0, 1.0)] * 3,
        triangles=[(0, 1, 2)],
        joints=(Joint("root", None), Joint("bone", 0, translation=(0.0, 1.0, 0.0))),
        inverse_bind_matrices=ibm,
        skin_joints=[(0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0)],
        skin_weights=[(1, 0, 0, 0), (1, 0, 0, 0), (0.5, 0.5, 0, 0)],
        target_names=("a", "b"),
        target_positions=targets,
    )


def rot_z(degrees: float, translation: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    """A 4x4 rotation about +Z (counter-clockwise seen from +Z) then a translation."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    out = np.eye(4)
    out[:2, :2] = [[c, -s], [s, c]]
    out[:3, 3] = translation
    return out
