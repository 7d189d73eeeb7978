"""The default tracker on a real photograph and on pictures that must be refused, each with
its code (issue 14 answers the UE with them)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker
from avatar_mf.face.quality import PHOTO_LIMITS, QualityLimits
from avatar_mf.face.result import FaceError, FaceTrackingError


def _code(tracker: MediapipeFaceTracker, picture: NDArray[np.uint8]) -> FaceError:
    with pytest.raises(FaceTrackingError) as caught:
        tracker.track(picture)
    return caught.value.code


def test_a_real_photograph_yields_one_face(
    tracker: MediapipeFaceTracker, astronaut: NDArray[np.uint8]
) -> None:
    face = tracker.track(astronaut)
    assert face.landmarks.shape == (478, 3)
    # Eileen Collins' face in the 512x512 photograph: right of centre-left, upper third.
    x0, y0, x1, y1 = face.box
    assert 0.25 < x0 < x1 < 0.65 and 0.05 < y0 < y1 < 0.45
    assert 80 < face.face_pixels < 160
    # MediaPipe's 51 ARKit names (no tongueOut), all in 0..1, and no "_neutral".
    assert set(face.blendshapes) == set(ARKIT_BLENDSHAPES[:51])
    assert all(0.0 <= w <= 1.0 for w in face.blendshapes.values())
    assert abs(face.head.yaw) < 0.5 and abs(face.head.pitch) < 0.5  # roughly frontal


def test_the_photograph_passes_the_photo_checks(
    face_model: bytes, astronaut: NDArray[np.uint8]
) -> None:
    strict = MediapipeFaceTracker(model=face_model, limits=PHOTO_LIMITS)
    try:
        strict.track(astronaut)
        assert _code(strict, (astronaut // 10).astype(np.uint8)) is FaceError.TOO_DARK
        # Blur: average 8x8 blocks and blow them up again (a 64-pixel mosaic of the photo).
        mosaic = astronaut.reshape(64, 8, 64, 8, 3).mean(axis=(1, 3)).astype(np.uint8)
        blurred = np.ascontiguousarray(np.repeat(np.repeat(mosaic, 8, 0), 8, 1))
        code = _code(strict, blurred)
        assert code in (FaceError.TOO_BLURRED, FaceError.NO_FACE)
    finally:
        strict.close()


def test_no_face(tracker: MediapipeFaceTracker) -> None:
    grey = np.full((480, 640, 3), 128, dtype=np.uint8)
    assert _code(tracker, grey) is FaceError.NO_FACE


def test_two_faces(tracker: MediapipeFaceTracker, astronaut: NDArray[np.uint8]) -> None:
    face = astronaut[20:260, 120:330]
    two = np.ascontiguousarray(np.hstack([face, face]))
    with pytest.raises(FaceTrackingError) as caught:
        tracker.track(two)
    assert caught.value.code is FaceError.SEVERAL_FACES and caught.value.faces == 2


def test_a_face_too_small(face_model: bytes, astronaut: NDArray[np.uint8]) -> None:
    picky = MediapipeFaceTracker(model=face_model, limits=QualityLimits(min_face_pixels=200))
    try:
        assert _code(picky, astronaut) is FaceError.FACE_TOO_SMALL
    finally:
        picky.close()


@pytest.mark.parametrize(
    "picture",
    [
        np.zeros((480, 640), dtype=np.uint8),
        np.zeros((480, 640, 4), dtype=np.uint8),
        np.zeros((480, 640, 3), dtype=np.float32),
        np.zeros((8, 8, 3), dtype=np.uint8),
    ],
)
def test_unsupported_pictures(tracker: MediapipeFaceTracker, picture: np.ndarray) -> None:
    assert _code(tracker, picture) is FaceError.UNSUPPORTED_IMAGE


def test_video_mode_follows_the_face(
    tracker: MediapipeFaceTracker, astronaut: NDArray[np.uint8]
) -> None:
    first = tracker.track(astronaut, timestamp=0.0)
    again = tracker.track(astronaut, timestamp=0.0)  # equal times are nudged forward
    assert np.abs(first.landmarks[:, :2] - again.landmarks[:, :2]).max() < 0.02
