"""The portrait warp's geometry on the astronaut's landmarks: each checked against the rule
docs/rendering.md states, worked out here from the landmarks (not by the code under test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.stages.animation.portrait import PortraitAvatar
from avatar_mf.stages.animation.portrait.model import CORNERS, MOUTH, TEETH, VERTEX_COUNT
from avatar_mf.stages.animation_data.idle import head_matrices

F64 = NDArray[np.float64]

CHIN, UPPER_LIP_MIDDLE, LOWER_LIP_MIDDLE = 152, 13, 14
LEFT_MOUTH_CORNER = 291
LEFT_LIDS, RIGHT_LIDS = (386, 374), (159, 145)  # middle of the upper and lower lid
NOSE_TIP = 1


def posed(avatar: PortraitAvatar, joint: F64 | None = None, **weights: float) -> F64:
    pose = avatar.rig.neutral()
    for name, value in weights.items():
        pose.weights[ARKIT_INDEX[name]] = value
    if joint is not None:
        pose.locals[2] = joint
    return avatar.rig.points(pose)


def face_axes(rest: F64) -> tuple[F64, F64, float]:
    """(u, v, IOD) from the eye corners: u right eye -> left eye, v down the face."""
    right = rest[[33, 133], :2].mean(axis=0)
    left = rest[[263, 362], :2].mean(axis=0)
    iod = float(np.linalg.norm(left - right))
    u = (left - right) / iod
    return u, np.array([-u[1], u[0]]), iod


def test_rest_is_the_photo(portrait: PortraitAvatar) -> None:
    assert np.array_equal(posed(portrait), portrait.model.rest)


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_jaw_open_turns_the_chin_down_about_the_hinge(
    portrait: PortraitAvatar, weight: float
) -> None:
    rest = portrait.model.rest
    u, v, iod = face_axes(rest)
    eyes = (rest[[33, 133], :2].mean(axis=0) + rest[[263, 362], :2].mean(axis=0)) / 2
    # The product head's jaw: 0.3 rad about a hinge (0.177 - 0.146) / 0.064 IOD below the
    # eyes and 1.4 IOD behind the lips; orthographic projection of the turn.
    hinge_v = (0.177 - 0.146) / 0.064 * iod
    hinge_z = rest[[UPPER_LIP_MIDDLE, LOWER_LIP_MIDDLE], 2].mean() + 1.4 * iod
    along = (rest[CHIN, :2] - eyes) @ v - hinge_v
    depth = rest[CHIN, 2] - hinge_z
    drop = (math.cos(0.3) - 1) * along - math.sin(0.3) * depth
    moved = posed(portrait, jawOpen=weight) - rest
    assert moved[CHIN, :2] @ v == pytest.approx(weight * drop, rel=1e-9)
    assert moved[CHIN, :2] @ u == pytest.approx(0.0, abs=1e-9)
    assert 0.15 * iod < drop < 0.5 * iod  # a jaw's opening, not a dislocation
    assert np.allclose(moved[UPPER_LIP_MIDDLE], 0.0)  # the upper lip stays
    assert moved[LOWER_LIP_MIDDLE, :2] @ v > 0.15 * iod * weight
    assert np.allclose(moved[CORNERS:MOUTH], 0.0)  # the picture's corners stay


def test_a_blink_brings_the_lids_together(portrait: PortraitAvatar) -> None:
    rest = portrait.model.rest
    closed = posed(portrait, eyeBlinkLeft=1.0)
    upper, lower = LEFT_LIDS
    gap = np.linalg.norm(rest[upper, :2] - rest[lower, :2])
    assert gap > 3.0  # pixels: the astronaut's eyes are open
    assert np.linalg.norm(closed[upper, :2] - closed[lower, :2]) < 1e-9 * gap + 1e-9
    # The lids meet a fifth of the way up from the lower lid.
    meet = rest[lower, :2] + 0.2 * (rest[upper, :2] - rest[lower, :2])
    assert np.allclose(closed[upper, :2], meet)
    half = posed(portrait, eyeBlinkLeft=0.5)
    assert np.linalg.norm(half[upper, :2] - half[lower, :2]) == pytest.approx(gap / 2)
    other_upper, other_lower = RIGHT_LIDS  # the right eye stays open
    assert np.allclose(closed[[other_upper, other_lower]], rest[[other_upper, other_lower]])


def test_a_smile_raises_and_widens_its_corner(portrait: PortraitAvatar) -> None:
    rest = portrait.model.rest
    u, v, iod = face_axes(rest)
    moved = posed(portrait, mouthSmileLeft=1.0) - rest
    corner = moved[LEFT_MOUTH_CORNER, :2]
    # The product head's smile: the corner 4 mm out and 7.5 mm up on a 64 mm IOD.
    assert corner @ u == pytest.approx(0.004 / 0.064 * iod)
    assert corner @ v == pytest.approx(-0.0075 / 0.064 * iod)
    assert np.allclose(moved[61], 0.0)  # the right corner does not move


def test_pucker_narrows_the_mouth(portrait: PortraitAvatar) -> None:
    rest = portrait.model.rest
    width = np.linalg.norm(rest[291, :2] - rest[61, :2])
    puckered = posed(portrait, mouthPucker=1.0)
    assert np.linalg.norm(puckered[291, :2] - puckered[61, :2]) < width * 0.8


def test_head_yaw_turns_the_face_not_the_picture(portrait: PortraitAvatar) -> None:
    rest = portrait.model.rest
    u, _, iod = face_axes(rest)
    turned = posed(portrait, joint=head_matrices(np.array([[0.2, 0.0, 0.0]]))[0].reshape(4, 4))
    # Positive yaw turns the face to its own left (+u); the nose, in front, goes furthest.
    nose = (turned[NOSE_TIP, :2] - rest[NOSE_TIP, :2]) @ u
    assert nose > 0.1 * iod
    assert np.allclose(turned[CORNERS:MOUTH], rest[CORNERS:MOUTH])  # the picture's corners
    held = posed(portrait, joint=head_matrices(np.array([[1.0, 0.0, 0.0]]))[0].reshape(4, 4))
    limit = posed(portrait, joint=head_matrices(np.array([[math.radians(20), 0.0, 0.0]]))[0]
                  .reshape(4, 4))
    assert np.allclose(held, limit)  # 1 rad is held to 20 degrees


def _area(points: F64, triangles: NDArray[np.int64]) -> float:
    a, b, c = (points[triangles[:, i], :2] for i in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    return float(np.abs(cross).sum() / 2)


def test_the_mesh_covers_the_picture_once(portrait: PortraitAvatar) -> None:
    model = portrait.model
    tris = model.triangles
    assert tris.max() == VERTEX_COUNT - 1
    teeth = np.all(tris >= TEETH, axis=1)  # the photo's mouth lies over the dark inside
    side = model.size
    # Every pixel once: no gap, and no overlap past a sliver where a fan's centre (the iris,
    # the mouth's middle) does not see all of its opening's rim.
    assert _area(model.rest, tris[~teeth]) == pytest.approx(side * side, rel=1e-3)
