"""Fixtures for the animation stage tests: an in-process EGL renderer (skipped, with the
reason, where EGL cannot be had) and the default head as an ARF container."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from avatar_mf.avatar import write_arf
from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.render.gl import GlRenderer


@pytest.fixture(scope="session")
def gl() -> Iterator[GlRenderer]:
    try:
        renderer = GlRenderer()
    except RenderUnavailable as exc:
        pytest.skip(str(exc))
    yield renderer
    renderer.release()


@pytest.fixture(scope="session")
def head_arf() -> bytes:
    return write_arf(generate_default_head(resolution="low"), avatar_id="head", name="head")
