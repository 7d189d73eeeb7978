"""Fixtures for the camera stage tests: the face model (skipped without the ``face`` extra)
and the ground-truth renderer (skipped without EGL)."""

from __future__ import annotations

import pytest

from avatar_mf.face.model import FaceModelUnavailable


@pytest.fixture(scope="session")
def face_model() -> bytes:
    from avatar_mf.face.model import load_model

    try:
        import mediapipe  # noqa: F401

        return load_model()
    except (ImportError, FaceModelUnavailable) as exc:
        pytest.skip(f"face tracking not installed: pip install 'avatar-mf[face]' ({exc})")


@pytest.fixture(scope="session")
def ground_truth() -> object:
    from avatar_mf.render.errors import RenderUnavailable

    try:
        from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer

        return GroundTruthRenderer()
    except RenderUnavailable as exc:
        pytest.skip(str(exc))
