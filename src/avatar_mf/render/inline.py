"""A renderer in the calling process, with the pool's interface (tests, one-off stills).

:class:`InlineRenderer` draws on the caller's thread: never use it on an event loop that
serves calls (use :class:`~avatar_mf.render.pool.RenderPool`); it exists so a stage can be
tested, and a still made, without worker processes.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

from avatar_mf.render.gl import GlRenderer
from avatar_mf.render.scene import Framing, MeshData, RenderSettings


class InlineFrame:
    """A rendered picture owned by the caller (``release`` does nothing)."""

    __slots__ = ("rgba", "cpu")

    def __init__(self, rgba: NDArray[np.uint8]) -> None:
        self.rgba = rgba
        self.cpu = 0.0

    def release(self) -> None:
        return None


class InlineRenderer:
    def __init__(self, renderer: GlRenderer | None = None) -> None:
        self._gl = renderer or GlRenderer()
        self._keys = itertools.count(1)
        #: Frames rendered.
        self.rendered = 0

    def add_mesh(self, mesh: MeshData) -> str:
        key = f"inline-{next(self._keys)}"
        self._gl.add_mesh(key, mesh)
        return key

    def remove_mesh(self, key: str) -> None:
        self._gl.remove_mesh(key)

    async def render(
        self,
        key: str,
        positions: NDArray[np.float32],
        normals: NDArray[np.float32],
        settings: RenderSettings,
        *,
        framing: Framing | None = None,
    ) -> InlineFrame:
        self.rendered += 1
        return InlineFrame(self._gl.render(key, positions, normals, settings, framing=framing))
