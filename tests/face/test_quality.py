"""Face size, darkness and blur checks on pictures with a known face box."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.face.quality import QualityLimits, check_face, sharpness
from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError, HeadPose


def _face(
    box: tuple[float, float, float, float], width: int = 400, height: int = 400
) -> FaceResult:
    x0, y0, x1, y1 = box
    landmarks = np.zeros((478, 3), dtype=np.float32)
    landmarks[:, 0] = np.linspace(x0, x1, 478)
    landmarks[:, 1] = np.linspace(y0, y1, 478)
    return FaceResult(landmarks, {}, HeadPose(0.0, 0.0, 0.0), width, height)


def _checker(size: int = 400, value: int = 180) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(value - 60, value + 60, (size, size, 3)).astype(np.uint8)


def test_a_small_face_is_refused_with_its_size() -> None:
    face = _face((0.4, 0.4, 0.5, 0.5))  # 40 pixels across
    with pytest.raises(FaceTrackingError) as caught:
        check_face(_checker(), face, QualityLimits(min_face_pixels=48))
    assert caught.value.code is FaceError.FACE_TOO_SMALL and "40 pixels" in caught.value.message
    check_face(_checker(), face, QualityLimits(min_face_pixels=32))


def test_darkness_is_measured_on_the_face_not_the_background() -> None:
    picture = np.zeros((400, 400, 3), dtype=np.uint8)  # black all round
    picture[100:300, 100:300] = _checker(200)
    check_face(picture, _face((0.3, 0.3, 0.7, 0.7)), QualityLimits())
    dim = (picture // 8).astype(np.uint8)
    with pytest.raises(FaceTrackingError) as caught:
        check_face(dim, _face((0.3, 0.3, 0.7, 0.7)), QualityLimits())
    assert caught.value.code is FaceError.TOO_DARK
    assert caught.value.rejected and not caught.value.retryable


def test_a_blurred_face_is_refused_when_asked() -> None:
    sharp = _checker()
    # A box blur 9 pixels wide, done by hand (cumulative sums), over each axis.
    blurred = sharp.astype(np.float64)
    for axis in (0, 1):
        c = np.cumsum(np.pad(blurred, [(4, 5) if a == axis else (0, 0) for a in range(3)],
                             mode="edge"), axis=axis)
        blurred = (np.take(c, range(9, c.shape[axis]), axis=axis)
                   - np.take(c, range(0, c.shape[axis] - 9), axis=axis)) / 9
    blurred_u8 = blurred.astype(np.uint8)
    face = _face((0.2, 0.2, 0.8, 0.8))
    limits = QualityLimits(min_sharpness=50.0)
    check_face(sharp, face, limits)
    with pytest.raises(FaceTrackingError) as caught:
        check_face(blurred_u8, face, limits)
    assert caught.value.code is FaceError.TOO_BLURRED
    check_face(blurred_u8, face, QualityLimits())  # off by default (video frames)


def test_sharpness_of_a_flat_picture_is_zero() -> None:
    assert sharpness(np.full((50, 50), 128.0, dtype=np.float32)) == 0.0
    assert sharpness(np.zeros((2, 2), dtype=np.float32)) == 0.0
