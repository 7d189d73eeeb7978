"""Blinks and head motion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avatar_mf.stages.animation_data.idle import (
    BLINK_INTERVAL,
    HEAD_JOINT_INDEX,
    HEAD_REST_TRANSLATION,
    blink_peaks,
    blink_weights,
    head_angles,
    head_matrices,
)


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_head_matrix_is_translation_times_yaw_pitch_roll() -> None:
    angles = np.array([[0.3, -0.2, 0.1], [0.0, 0.0, 0.0]])
    m = head_matrices(angles, (0.01, 0.02, 0.03)).reshape(2, 4, 4)
    expected = _rot("y", 0.3) @ _rot("x", -0.2) @ _rot("z", 0.1)
    np.testing.assert_allclose(m[0, :3, :3], expected, atol=1e-12)
    np.testing.assert_allclose(m[0, :3, 3], (0.01, 0.02, 0.03))
    np.testing.assert_allclose(m[0, 3], (0, 0, 0, 1))
    np.testing.assert_allclose(m[1, :3, :3], np.eye(3))


def test_head_angles_small_smooth_and_at_rest_at_both_ends() -> None:
    rate = 30.0
    times = np.arange(0, 12.0 + 1e-9, 1 / rate)
    angles = head_angles(np.random.default_rng(5), times, float(times[-1]), rate=rate)
    assert np.abs(angles).max() < math.radians(5)
    assert np.abs(angles).max() > math.radians(0.5)  # it does move
    np.testing.assert_allclose(angles[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(angles[-1], 0.0, atol=1e-12)
    assert np.abs(np.diff(angles, axis=0)).max() < math.radians(0.5)  # per frame


def test_blinks_every_two_to_six_seconds_full_closure() -> None:
    rate = 30.0
    times = np.arange(0, 60.0, 1 / rate)
    peaks = blink_peaks(np.random.default_rng(3), 60.0, rate)
    gaps = np.diff(peaks)
    assert len(peaks) >= 10
    assert gaps.min() >= BLINK_INTERVAL[0] - 1 / rate and gaps.max() <= BLINK_INTERVAL[1] + 1 / rate
    w = blink_weights(times, peaks)
    for peak in peaks:
        at = int(round(peak * rate))
        assert w[at] == pytest.approx(1.0)  # the closure lands on a frame
        assert w[at - 3] < 0.05 and w[at + 4] < 0.05  # about 150 ms in all
        assert w[at + 1] > w[at - 1]  # opening slower than closing


def test_product_skeleton_matches() -> None:
    # The head joint index and rest translation are the product's default head's.
    from avatar_mf.avatar import DEFAULT_JOINT_NAMES
    from avatar_mf.avatar.generate import generate_default_head

    assert DEFAULT_JOINT_NAMES.index("head") == HEAD_JOINT_INDEX
    joint = generate_default_head(resolution="low").joints[HEAD_JOINT_INDEX]
    assert joint.name == "head"
    assert joint.translation == pytest.approx(HEAD_REST_TRANSLATION)
    assert joint.rotation == (0.0, 0.0, 0.0, 1.0)
