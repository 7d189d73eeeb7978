"""Morph targets, linear blend skinning and landmark pulls against hand-computed vertices."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.stages.animation.posing import LandmarkBinding, Pose, Rig
from tests.stages.animation.rigs import rot_z, two_bone_model


def test_rest_pose_gives_the_model_back() -> None:
    rig = Rig(two_bone_model())
    positions, normals = rig.pose(rig.neutral())
    np.testing.assert_allclose(positions, [(1, 0, 0), (0, 2, 0), (1, 1, 0)], atol=1e-6)
    np.testing.assert_allclose(normals, [(0, 0, 1)] * 3, atol=1e-6)


def test_two_target_morph() -> None:
    rig = Rig(two_bone_model())
    pose = Pose(np.array([0.5, 0.25]), rig.rest_locals)
    positions, _ = rig.pose(pose)
    # v0 = (1,0,0) + 0.5*(0,1,0) + 0.25*(1,0,0); v1 = (0,2,0) + 0.25*(0,0,2); v2 untouched.
    np.testing.assert_allclose(positions, [(1.25, 0.5, 0), (0, 2, 0.5), (1, 1, 0)], atol=1e-6)


def test_two_bone_skin_child_rotated() -> None:
    rig = Rig(two_bone_model())
    locals_ = rig.rest_locals.copy()
    locals_[1] = rot_z(90, (0, 1, 0))  # the bone turns 90 degrees about its own joint
    positions, normals = rig.pose(Pose(np.zeros(2), locals_))
    # v1: (0,2,0) is 1 m up the bone -> turned to 1 m along -X from the joint at (0,1,0).
    # v2: root says (1,1,0); bone says (1,0,0) from the joint -> (0,1,0) -> (0,2,0); half each.
    np.testing.assert_allclose(positions, [(1, 0, 0), (-1, 1, 0), (0.5, 1.5, 0)], atol=1e-6)
    np.testing.assert_allclose(normals, [(0, 0, 1)] * 3, atol=1e-6)


def test_two_bone_skin_root_and_child_rotated() -> None:
    rig = Rig(two_bone_model())
    locals_ = np.stack([rot_z(90), rot_z(90, (0, 1, 0))])
    positions, _ = rig.pose(Pose(np.zeros(2), locals_))
    # Everything turns 90 degrees about the origin, and v1 a further 90 about the bone joint,
    # which is now at (-1, 0, 0): v1 ends 1 m from it along -Y.
    # v2: root (1,1,0) -> (-1,1,0); bone (1,0,0) from its joint -> (0,2,0) -> (-2,0,0).
    np.testing.assert_allclose(
        positions, [(0, 1, 0), (-1, -1, 0), (-1.5, 0.5, 0)], atol=1e-6
    )


def test_morph_then_skin() -> None:
    rig = Rig(two_bone_model())
    locals_ = rig.rest_locals.copy()
    locals_[1] = rot_z(90, (0, 1, 0))
    positions, _ = rig.pose(Pose(np.array([0.0, 1.0]), locals_))
    # v1 morphs to (0,2,2) first; the bone turns its (0,1,2) offset to (-1,0,2).
    np.testing.assert_allclose(positions[1], (-1, 1, 2), atol=1e-6)


def test_landmark_pulls_its_vertex_exactly_and_not_far_ones() -> None:
    rig = Rig(two_bone_model(), (LandmarkBinding(set_id=7, vertices=(0,), radius=0.1),))
    target = np.array([[1.0, 0.05, 0.02]])
    positions, _ = rig.pose(Pose(np.zeros(2), rig.rest_locals, {7: target}))
    np.testing.assert_allclose(positions[0], target[0], atol=1e-6)
    np.testing.assert_allclose(positions[1:], [(0, 2, 0), (1, 1, 0)], atol=1e-6)
    # A 2D landmark (z NaN) pulls x and y only; half strength goes half way.
    flat = np.array([[1.0, 0.1, np.nan]])
    half, _ = rig.pose(Pose(np.zeros(2), rig.rest_locals, {7: flat}, landmark_strength=0.5))
    np.testing.assert_allclose(half[0], (1.0, 0.05, 0.0), atol=1e-6)


def test_landmark_binding_checks_vertices() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Rig(two_bone_model(), (LandmarkBinding(1, (5,)),))
