"""The animator: interpolation between units, hold, relaxation to neutral, uint32 wraps."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, JointUnit, LandmarkUnit
from avatar_mf.stages.animation.posing import Pose
from avatar_mf.stages.animation.timeline import (
    Animator,
    AnimatorSettings,
    blend_matrices,
    compose,
    decompose,
)
from tests.stages.animation.rigs import rot_z


def neutral() -> Pose:
    locals_ = np.stack([np.eye(4), np.eye(4)])
    locals_[1, 1, 3] = 1.0
    return Pose(np.zeros(3), locals_)


def matrix(m: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in m.reshape(16))  # row-major, translation in the last column


def animator(**settings: float) -> Animator:
    a = Animator(neutral(), settings=AnimatorSettings(**settings), landmark_sets={4: 2})
    a.feed(ConfigUnit(0, "arf-face-v1", 100.0))  # 100 ticks per second
    return a


def test_weights_interpolate_between_units_and_hold_after_the_last() -> None:
    a = animator(relax_after=1.0, relax_time=0.5)
    assert a.feed(BlendshapeUnit(10, 0, (0, 1), (0.0, 1.0))) == pytest.approx(0.1)
    a.feed(BlendshapeUnit(20, 0, (0,), (1.0,)))  # weight 1 not sent: it keeps 1.0
    np.testing.assert_allclose(a.sample(0.15).weights, [0.5, 1.0, 0.0])
    np.testing.assert_allclose(a.sample(0.05).weights, [0.0, 1.0, 0.0])  # before: first key
    np.testing.assert_allclose(a.sample(0.9).weights, [1.0, 1.0, 0.0])  # held


def test_pose_relaxes_to_neutral_after_the_timeout() -> None:
    a = animator(relax_after=1.0, relax_time=0.5)
    a.feed(BlendshapeUnit(0, 0, (2,), (0.8,)))
    a.feed(JointUnit(0, 0, (1,), (matrix(rot_z(90, (0, 1, 0))),)))
    assert a.sample(1.0).weights[2] == pytest.approx(0.8)  # still held at the timeout
    half = a.sample(1.25)  # half way through the relaxation: smoothstep(0.5) = 0.5
    assert half.weights[2] == pytest.approx(0.4)
    np.testing.assert_allclose(half.locals[1], rot_z(45, (0, 1, 0)), atol=1e-9)
    done = a.sample(1.6)
    np.testing.assert_allclose(done.weights, 0.0)
    np.testing.assert_allclose(done.locals, neutral().locals, atol=1e-12)
    a.feed(BlendshapeUnit(170, 0, (2,), (0.3,)))  # a new unit ends the relaxation
    assert a.sample(1.7).weights[2] == pytest.approx(0.3)


def test_joint_rotation_is_slerped_not_lerped() -> None:
    a = animator()
    a.feed(JointUnit(0, 0, (1,), (matrix(rot_z(0, (0, 1, 0))),)))
    a.feed(JointUnit(100, 0, (1,), (matrix(rot_z(90, (0, 3, 0))),)))
    mid = a.sample(0.5).locals[1]
    # A plain average of the matrices would scale the rotation by cos 45 (0.707).
    np.testing.assert_allclose(mid, rot_z(45, (0, 2, 0)), atol=1e-9)
    np.testing.assert_allclose(a.sample(0.5).locals[0], np.eye(4))  # joint 0 untouched


def test_decompose_compose_round_trip_with_scale() -> None:
    m = rot_z(30, (1, 2, 3)) @ np.diag([2.0, 2.0, 2.0, 1.0])
    t, q, s = decompose(m)
    np.testing.assert_allclose(compose(t, q, s), m, atol=1e-12)
    np.testing.assert_allclose(s, [2, 2, 2])
    np.testing.assert_allclose(blend_matrices(m, m, 0.3), m, atol=1e-12)


def test_quaternion_of_a_half_turn() -> None:
    m = np.diag([-1.0, -1.0, 1.0, 1.0])  # 180 degrees about Z: the trace is -1
    _, q, _ = decompose(m)
    np.testing.assert_allclose(np.abs(q), [0, 0, 1, 0], atol=1e-12)


def test_units_for_other_sets_and_bad_entries_are_ignored() -> None:
    a = animator()
    assert a.feed(BlendshapeUnit(0, 9, (0,), (1.0,))) is None
    a.feed(BlendshapeUnit(0, 0, (0, 7, 1), (0.5, 1.0, float("nan"))))
    assert a.ignored == 3
    np.testing.assert_allclose(a.sample(0.0).weights, [0.5, 0.0, 0.0])


def test_uint32_timestamps_unwrap() -> None:
    a = animator()
    a.feed(BlendshapeUnit(2**32 - 10, 0, (0,), (0.0,)))
    t = a.feed(BlendshapeUnit(10, 0, (0,), (1.0,)))  # 20 ticks later, after the wrap
    assert t == pytest.approx((2**32 + 10) / 100.0)
    assert a.sample(t - 0.1).weights[0] == pytest.approx(0.5)


def test_late_unit_is_merged_into_the_keys_after_it() -> None:
    a = animator()
    a.feed(BlendshapeUnit(0, 0, (0,), (0.0,)))
    a.feed(BlendshapeUnit(20, 0, (0,), (1.0,)))
    a.feed(BlendshapeUnit(10, 0, (1,), (1.0,)))  # late; weight 1 applies from 0.1 s on
    np.testing.assert_allclose(a.sample(0.2).weights, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(a.sample(0.05).weights, [0.0, 0.5, 0.0])


def test_landmarks_interpolate_and_fade() -> None:
    a = animator(relax_after=0.5, relax_time=0.5)
    a.feed(LandmarkUnit(0, 4, False, (1,), ((0.0, 0.0),)))
    a.feed(LandmarkUnit(10, 4, True, (1,), ((1.0, 2.0, 3.0),)))
    pose = a.sample(0.05)
    np.testing.assert_allclose(pose.landmarks[4][1], (0.5, 1.0, 3.0))  # z only from the 3D key
    assert np.isnan(pose.landmarks[4][0]).all()  # landmark 0 never set
    assert pose.landmark_strength == 1.0
    assert a.sample(0.1 + 0.75).landmark_strength == pytest.approx(0.5)


def test_old_keys_are_forgotten() -> None:
    a = animator(keep=1.0)
    for tick in range(0, 1000, 4):
        a.feed(BlendshapeUnit(tick, 0, (0,), (tick / 1000.0,)))
    a.sample(9.0)
    assert a._weights.times[0] == pytest.approx(8.0)  # one key at or before 9.0 - 1.0 kept
    assert a.sample(8.5).weights[0] == pytest.approx(0.85)
