"""FaceMotion: rate limit, smoothing and relaxing to neutral, on hand-made observations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.face.result import FaceResult, HeadPose
from avatar_mf.stages.camera.motion import FaceMotion


def _face(jaw: float, yaw: float = 0.0) -> FaceResult:
    return FaceResult(
        np.zeros((478, 3), dtype=np.float32), {"jawOpen": jaw}, HeadPose(yaw, 0.0, 0.0), 640, 480
    )


JAW = ARKIT_INDEX["jawOpen"]


def test_at_most_max_rate_pictures_are_used() -> None:
    motion = FaceMotion(max_rate=30.0)
    used = [motion.update(i / 60.0, _face(0.5)) is not None for i in range(60)]  # a 60 fps camera
    assert sum(used) == 30 and used[0] and not used[1]


def test_smoothing_is_a_first_order_lag() -> None:
    motion = FaceMotion(smoothing=0.05)
    first = motion.update(0.0, _face(0.0))
    assert first is not None and first.weights[JAW] == 0.0  # the first picture is taken as is
    step = motion.update(1 / 30, _face(1.0))
    assert step is not None
    assert step.weights[JAW] == pytest.approx(1.0 - math.exp(-(1 / 30) / 0.05))
    unsmoothed = FaceMotion(smoothing=0.0)
    unsmoothed.update(0.0, _face(0.0))
    jump = unsmoothed.update(1 / 30, _face(1.0))
    assert jump is not None and jump.weights[JAW] == 1.0


def test_a_lost_face_relaxes_to_neutral_over_300_ms() -> None:
    motion = FaceMotion(smoothing=0.0, relax_time=0.3)
    motion.update(0.0, _face(0.8, yaw=0.4))
    seen = {}
    for t in (0.1, 0.2, 0.25, 0.3, 0.4, 0.5):  # lost from 0.1
        sample = motion.update(t, None)
        assert sample is not None and sample.lost
        seen[t] = (sample.weights[JAW], sample.head[0])
    # The first lost picture starts the relaxation from the last values...
    assert seen[0.1] == pytest.approx((0.8, 0.4))
    # ...half way (150 ms later) it is half (smoothstep), and from 300 ms on neutral.
    assert seen[0.25] == pytest.approx((0.4, 0.2))
    assert seen[0.4] == (0.0, 0.0) and seen[0.5] == (0.0, 0.0)
    jaws = [seen[t][0] for t in (0.1, 0.2, 0.25, 0.3, 0.4)]
    assert all(a > b for a, b in zip(jaws, jaws[1:], strict=False))  # no jump on the way


def test_a_face_coming_back_starts_from_the_relaxing_face() -> None:
    motion = FaceMotion(smoothing=0.05, relax_time=0.3)
    for i in range(10):
        motion.update(i / 30.0, _face(1.0))
    motion.update(10 / 30.0, None)  # lost: relaxing starts
    relaxing = motion.update(10 / 30.0 + 0.15, None)  # half way
    back = motion.update(10 / 30.0 + 0.15 + 1 / 30.0, _face(1.0))
    assert relaxing is not None and back is not None
    assert relaxing.weights[JAW] < back.weights[JAW] < 1.0


@pytest.mark.parametrize(
    "options", [{"max_rate": 0.0}, {"max_rate": math.inf}, {"smoothing": -1.0}, {"relax_time": 9}]
)
def test_bad_options(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaceMotion(**options)
