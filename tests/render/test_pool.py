"""The render pool: worker processes draw what the in-process renderer draws, frames come
back through shared memory slots that are reused, and the event loop only waits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from avatar_mf.avatar.model import AvatarModel
from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.render.gl import GlRenderer
from avatar_mf.render.pool import RenderPool
from avatar_mf.render.scene import MeshData, RenderSettings
from avatar_mf.stages.animation.posing import Rig

SETTINGS = RenderSettings(width=128, height=128, samples=0)


@pytest.fixture(scope="module")
def pool() -> Iterator[RenderPool]:
    render_pool = RenderPool(workers=2)
    try:
        render_pool.start()
    except RenderUnavailable as exc:
        pytest.skip(str(exc))
    yield render_pool
    render_pool.close()


def test_pool_renders_what_the_renderer_renders(
    pool: RenderPool, renderer: GlRenderer, head: AvatarModel
) -> None:
    mesh = MeshData.from_arrays(head.positions, head.triangles, head.colors)
    rig = Rig(head)
    positions, normals = rig.pose(rig.neutral())
    renderer.add_mesh("pool-check", mesh)
    expected = renderer.render("pool-check", positions, normals, SETTINGS).copy()
    key = pool.add_mesh(mesh)
    with pool.render_sync(key, positions, normals, SETTINGS) as frame:
        assert frame.rgba.shape == (128, 128, 4)
        assert np.array_equal(frame.rgba, expected)
        first_slot = frame._slot
    with pool.render_sync(key, positions, normals, SETTINGS) as frame:
        assert frame._slot is first_slot  # the released slot is reused
    pool.remove_mesh(key)
    renderer.remove_mesh("pool-check")


async def test_frames_render_in_parallel_off_the_loop(
    pool: RenderPool, head: AvatarModel
) -> None:
    key = pool.add_mesh(MeshData.from_arrays(head.positions, head.triangles, head.colors))
    rig = Rig(head)
    positions, normals = rig.pose(rig.neutral())
    frames = await asyncio.gather(*(pool.render(key, positions, normals, SETTINGS)
                                    for _ in range(6)))
    assert len({id(f._slot) for f in frames}) == 6  # six frames in flight, six slots
    assert all(np.array_equal(f.rgba, frames[0].rgba) for f in frames)
    for frame in frames:
        frame.release()
    assert frames[0].rgba.size == 0  # a released frame no longer shows the slot


def test_wrong_vertex_count_is_refused(pool: RenderPool, head: AvatarModel) -> None:
    key = pool.add_mesh(MeshData.from_arrays(head.positions, head.triangles, head.colors))
    with pytest.raises(ValueError, match="vertices"):
        pool.render_sync(key, np.zeros((3, 3), np.float32), np.zeros((3, 3), np.float32),
                         SETTINGS)


def test_a_pool_that_is_not_started_says_so() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        RenderPool(workers=1).render_sync("m", np.zeros((1, 3), np.float32),
                                          np.zeros((1, 3), np.float32), SETTINGS)
