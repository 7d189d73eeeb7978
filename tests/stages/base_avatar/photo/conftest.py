"""Photos for the photo-avatar tests: scikit-image's astronaut and renders of the product's
head at known poses (the renderer needs EGL: those tests skip without it)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.stages.base_avatar.photo.generator import PhotoAvatar, PhotoGenerator


@pytest.fixture(scope="session")
def generator() -> Iterator[PhotoGenerator]:
    generator = PhotoGenerator()  # generate() in a worker process, as in the MF
    yield generator
    generator.close()


@pytest.fixture(scope="session")
def astronaut() -> NDArray[np.uint8]:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.fixture(scope="session")
def astronaut_avatar(generator: PhotoGenerator, astronaut: NDArray[np.uint8]) -> PhotoAvatar:
    return generator.build([astronaut])


@pytest.fixture(scope="session")
def head_renderer() -> Iterator[object]:
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer

    try:
        renderer = GroundTruthRenderer(width=768, height=768)
    except RenderUnavailable as exc:
        pytest.skip(f"no OpenGL: {exc}")
    yield renderer
