"""Fixtures for the renderer tests: one EGL renderer per test session (skipped, with the
reason, where EGL cannot be had) and the default head."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.avatar.model import AvatarModel
from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.render.gl import GlRenderer


@pytest.fixture(scope="session")
def renderer() -> Iterator[GlRenderer]:
    try:
        gl = GlRenderer()
    except RenderUnavailable as exc:  # the Makefile installs the packages; say which
        pytest.skip(str(exc))
    yield gl
    gl.release()


@pytest.fixture(scope="session")
def head() -> AvatarModel:
    return generate_default_head()
