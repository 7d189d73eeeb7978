"""Fixtures for the face tests: one MediaPipe tracker per test session and scikit-image's
photograph."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray


@pytest.fixture(scope="session")
def face_model() -> bytes:
    from avatar_mf.face.model import load_model

    return load_model()


@pytest.fixture()
def tracker(face_model: bytes) -> Iterator[object]:
    from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker

    t = MediapipeFaceTracker(model=face_model)
    yield t
    t.close()


@pytest.fixture(scope="session")
def astronaut() -> NDArray[np.uint8]:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())
