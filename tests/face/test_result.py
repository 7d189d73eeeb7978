"""Head pose angles: the convention of the product's head joint (stages/animation_data/idle)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avatar_mf.face.result import HeadPose
from avatar_mf.stages.animation_data.idle import head_matrices


@pytest.mark.parametrize(
    "angles",
    [(0.0, 0.0, 0.0), (0.4, 0.0, 0.0), (0.0, -0.3, 0.0), (0.0, 0.0, 0.2), (-0.5, 0.25, -0.1)],
)
def test_angles_of_the_head_joints_rotation(angles: tuple[float, float, float]) -> None:
    matrix = head_matrices(np.array([angles])).reshape(4, 4)
    pose = HeadPose.from_rotation(matrix[:3, :3], matrix)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx(angles, abs=1e-9)
    assert np.allclose(pose.rotation(), matrix[:3, :3])
    assert pose.matrix is not None and len(pose.matrix) == 16


def test_positive_yaw_turns_the_face_towards_its_left() -> None:
    forward = HeadPose(math.radians(30), 0.0, 0.0).rotation() @ np.array([0.0, 0.0, 1.0])
    assert forward[0] > 0.4  # the face (looking along +Z) now looks towards +X, its left
    down = HeadPose(0.0, math.radians(20), 0.0).rotation() @ np.array([0.0, 0.0, 1.0])
    assert down[1] < -0.3
