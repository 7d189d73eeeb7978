"""Fixtures for the camera stage tests: the face model and the ground-truth renderer
(skipped without EGL)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def face_model() -> bytes:
    from avatar_mf.face.model import load_model

    return load_model()


@pytest.fixture(scope="session")
def ground_truth() -> object:
    from avatar_mf.render.errors import RenderUnavailable

    try:
        from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer

        return GroundTruthRenderer()
    except RenderUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def astronaut_jpeg() -> bytes:
    import io

    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def astronaut_jpeg_small() -> bytes:
    """The astronaut at 256x256, small enough for one metadata message in base64."""
    import io

    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((256, 256)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def astronaut() -> object:
    import numpy as np
    from skimage import data

    return np.ascontiguousarray(data.astronaut())
