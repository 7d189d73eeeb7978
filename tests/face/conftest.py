"""Fixtures for the face tests: one MediaPipe tracker per test session (skipped, with the
command to install it, when the ``face`` extra is missing) and scikit-image's photograph."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.face.model import FaceModelUnavailable


@pytest.fixture(scope="session")
def face_model() -> bytes:
    from avatar_mf.face.model import load_model

    try:
        import mediapipe  # noqa: F401

        return load_model()
    except (ImportError, FaceModelUnavailable) as exc:
        pytest.skip(f"face tracking not installed: pip install 'avatar-mf[face]' ({exc})")


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
