"""Depth images of the renders of the product's head (what an RGB-D camera beside the
renderer's would give): the posed mesh z-buffered with the renderer's own camera, millimetres
along its axis as 16-bit PNG samples, 0 where no surface is; a sensor's noise and holes on
request."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


def depth_map(renderer: object, shot: object) -> NDArray[np.uint16]:
    """(H, W) millimetres of ``shot`` as :class:`GroundTruthRenderer` ``renderer`` draws it
    (pixel centres, nearest surface; 0: background)."""
    from avatar_mf.render.camera import portrait
    from avatar_mf.render.scene import Framing
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    assert isinstance(renderer, GroundTruthRenderer) and isinstance(shot, Shot)
    avatar = renderer.avatar
    positions, _ = renderer.pose(shot)
    width, height = renderer.width, renderer.height
    view, projection = portrait(avatar.mesh.bounds, Framing(), width / height)
    eye = np.hstack([positions.astype(np.float64), np.ones((len(positions), 1))]) @ view.T
    clip = eye @ projection.T
    ndc = clip[:, :2] / clip[:, 3:4]
    screen = np.stack([(ndc[:, 0] + 1) / 2 * width, (ndc[:, 1] + 1) / 2 * height], axis=1)
    distance = -eye[:, 2]  # along the camera's axis
    zbuffer = np.full((height, width), np.inf)
    for triangle in avatar.mesh.triangles.astype(np.int64).reshape(-1, 3):
        corners = screen[triangle]
        low = np.maximum(np.floor(corners.min(axis=0) - 0.5).astype(int), 0)
        high = np.minimum(np.ceil(corners.max(axis=0) - 0.5).astype(int), [width - 1, height - 1])
        if np.any(high < low):
            continue
        xs, ys = np.meshgrid(np.arange(low[0], high[0] + 1) + 0.5,
                             np.arange(low[1], high[1] + 1) + 0.5)
        a, b, c = corners
        det = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(det) < 1e-12:
            continue
        u = ((xs - a[0]) * (c[1] - a[1]) - (ys - a[1]) * (c[0] - a[0])) / det
        v = ((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0])) / det
        inside = (u >= 0) & (v >= 0) & (u + v <= 1)
        if not inside.any():
            continue
        z = (1 - u - v) * distance[triangle[0]] + u * distance[triangle[1]] + v * distance[
            triangle[2]]
        rows = (ys[inside] - 0.5).astype(int)
        cols = (xs[inside] - 0.5).astype(int)
        np.minimum.at(zbuffer, (rows, cols), z[inside])
    millimetres = np.where(np.isfinite(zbuffer), np.round(zbuffer * 1000.0), 0.0)
    return np.clip(millimetres, 0, 65535).astype(np.uint16)


def sensor(depth: NDArray[np.uint16], *, noise: float, holes: float, seed: int = 0
           ) -> NDArray[np.uint16]:
    """``depth`` with Gaussian noise of ``noise`` millimetres and a fraction ``holes`` of the
    pixels unknown (0), in 4x4 blocks as a structured-light sensor drops them."""
    rng = np.random.default_rng(seed)
    out = depth.astype(np.float64) + rng.normal(0.0, noise, depth.shape)
    blocks = rng.uniform(size=(depth.shape[0] // 4 + 1, depth.shape[1] // 4 + 1)) < holes
    mask = np.kron(blocks, np.ones((4, 4), dtype=bool))[: depth.shape[0], : depth.shape[1]]
    out[mask | (depth == 0)] = 0.0
    return np.clip(np.round(out), 0, 65535).astype(np.uint16)


def encode_depth(depth: NDArray[np.uint16]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(depth).save(out, format="PNG")
    return out.getvalue()
