"""Fixtures for the 2D portrait tests: scikit-image's astronaut, the packaged MediaPipe face
tracker (skipped with the install command when it is missing), the astronaut fitted once, and
an in-process EGL renderer (skipped with the reason where EGL cannot be had)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.face import FaceModelUnavailable, FaceTracker
from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.render.gl import GlRenderer
from avatar_mf.stages.animation.portrait import PortraitAvatar


@pytest.fixture(scope="session")
def astronaut() -> NDArray[np.uint8]:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())


def png(rgb: NDArray[np.uint8]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="session")
def astronaut_png(astronaut: NDArray[np.uint8]) -> bytes:
    return png(astronaut)


@pytest.fixture(scope="session")
def tracker() -> Iterator[FaceTracker]:
    from avatar_mf.stages.animation.portrait.avatar import default_tracker

    try:
        t = default_tracker()
    except (ImportError, FaceModelUnavailable) as exc:
        pytest.skip(f"face tracking not installed: pip install 'avatar-mf[face]' ({exc})")
    yield t
    t.close()


@pytest.fixture(scope="session")
def portrait(astronaut: NDArray[np.uint8], tracker: FaceTracker) -> PortraitAvatar:
    from avatar_mf.stages.animation.portrait import fit_portrait

    return PortraitAvatar.of(fit_portrait(astronaut, tracker))


@pytest.fixture(scope="session")
def gl() -> Iterator[GlRenderer]:
    try:
        renderer = GlRenderer()
    except RenderUnavailable as exc:
        pytest.skip(str(exc))
    yield renderer
    renderer.release()
