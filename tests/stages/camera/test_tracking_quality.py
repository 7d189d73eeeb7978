"""Tracking quality on renders of the product's own head at known weights and head poses.

Floors the current tracker clearly passes (measured figures, goals and the channels that do
not reach the goal yet: docs/performance.md, "Camera animation"). These score MediaPipe's raw
reading; test_retarget.py scores the retargeted one. A change that breaks the head pose
convention, swaps left and right, or loses a channel fails here.
"""

from __future__ import annotations

import math

import pytest

from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker
from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot, random_sequence
from avatar_mf.stages.camera.quality import score


@pytest.fixture(scope="module")
def tracked(face_model: bytes, ground_truth: GroundTruthRenderer) -> tuple[list[Shot], list]:
    tracker = MediapipeFaceTracker(model=face_model)
    shots = random_sequence(30, seed=7)
    try:
        faces = [tracker.track(ground_truth.render(shot)) for shot in shots]
    finally:
        tracker.close()
    return shots, faces


def test_weights_follow_the_truth(tracked: tuple[list[Shot], list]) -> None:
    result = score(*tracked)
    assert result.correlation["jawOpen"] >= 0.8  # the goal (measured ~0.91)
    assert result.correlation["eyeBlinkLeft"] >= 0.6  # measured ~0.8
    assert result.correlation["eyeBlinkRight"] >= 0.5  # measured ~0.7


def test_head_angles_follow_the_truth(tracked: tuple[list[Shot], list]) -> None:
    result = score(*tracked)
    assert result.yaw_error <= 3.0 and result.yaw_worst <= 5.0  # goal 5; measured ~0.9 / 2.2
    assert result.pitch_error <= 7.0  # goal 5; ~4.4 raw (retargeted: test_retarget.py)


def test_left_is_left(face_model: bytes, ground_truth: GroundTruthRenderer) -> None:
    """One eye closed at a time: the tracker names the same eye, and a turn to the head's
    left reads as positive yaw (the convention the JOINT units use)."""
    tracker = MediapipeFaceTracker(model=face_model)
    try:
        left = tracker.track(ground_truth.render(Shot({"eyeBlinkLeft": 1.0})))
        right = tracker.track(ground_truth.render(Shot({"eyeBlinkRight": 1.0})))
        turned = tracker.track(ground_truth.render(Shot(yaw=20.0)))
    finally:
        tracker.close()
    assert left.blendshapes["eyeBlinkLeft"] > left.blendshapes["eyeBlinkRight"]
    assert right.blendshapes["eyeBlinkRight"] > right.blendshapes["eyeBlinkLeft"]
    assert math.degrees(turned.head.yaw) == pytest.approx(20.0, abs=5.0)


def test_score_needs_matching_lengths() -> None:
    with pytest.raises(ValueError):
        score([Shot()] * 3, [])
