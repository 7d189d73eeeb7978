"""The stored anchors and template maps still match the product's head."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.stages.base_avatar.photo.alignment import IRISES
from avatar_mf.stages.base_avatar.photo.anchors import anchor_points, load_anchors, locate_anchors
from avatar_mf.stages.base_avatar.photo.template import EYE_LEFT, EYE_RIGHT, SKIN, analyse


def test_the_stored_maps_are_the_heads() -> None:
    model = generate_default_head()
    stored = load_anchors().parts
    fresh = analyse(model)
    assert np.array_equal(stored.part, fresh.part)
    assert np.array_equal(stored.weld, fresh.weld)
    assert np.array_equal(stored.mirror, fresh.mirror)
    # One skin surface, two eyeballs of equal size, the mouth interior.
    assert (fresh.part == EYE_LEFT).sum() == (fresh.part == EYE_RIGHT).sum() > 0
    # Mirroring twice comes back (the head is symmetric).
    assert np.mean(fresh.mirror[fresh.mirror] == np.arange(model.vertex_count)) > 0.95


def test_anchors_lie_on_the_face() -> None:
    model = generate_default_head()
    anchors = load_anchors()
    triangles = model.triangles.astype(np.int64)
    points = anchor_points(model.positions.astype(np.float64), triangles, anchors)
    assert np.all(points[:, 2] > 0.0)  # the front half
    part = anchors.parts.part[triangles[anchors.triangles, 0]]
    # The iris centres and most of their rims are on the eyeballs (some rims under a lid).
    on_eyes = np.isin(part[list(IRISES)], [EYE_LEFT, EYE_RIGHT])
    assert on_eyes[0] and on_eyes[5] and on_eyes.sum() >= 6
    others = np.setdiff1d(np.arange(len(points)), IRISES)
    assert np.mean(part[others] == SKIN) > 0.97
    assert np.allclose(anchors.barycentric.sum(axis=1), 1.0, atol=1e-5)


def test_locating_again_gives_the_stored_anchors() -> None:
    try:
        fresh, model = locate_anchors(size=768)
    except RenderUnavailable as exc:
        pytest.skip(f"no OpenGL: {exc}")
    stored = load_anchors()
    positions = model.positions.astype(np.float64)
    triangles = model.triangles.astype(np.int64)
    distance = np.linalg.norm(
        anchor_points(positions, triangles, fresh) - anchor_points(positions, triangles, stored),
        axis=1,
    )
    assert np.median(distance) < 0.001  # a millimetre (another render size, same face)


def test_measuring_two_views_again_gives_the_stored_ones() -> None:
    """The tracker's error per view angle in anchors.npz, in 3D and in the picture, is still
    the head's (two of the 21 views, at another render size)."""
    from avatar_mf.stages.base_avatar.photo.anchors import VIEW_PITCHES, VIEW_YAWS, measure_views

    stored = load_anchors()
    assert stored.views is not None and stored.image_views is not None
    try:
        fresh, image = measure_views(stored, size=768, yaws=(-30.0, 30.0), pitches=(0.0,))
    except RenderUnavailable as exc:
        pytest.skip(f"no OpenGL: {exc}")
    row = VIEW_PITCHES.index(0.0)
    for k, yaw in enumerate((-30.0, 30.0)):
        column = VIEW_YAWS.index(yaw)
        assert np.abs(fresh.fitted[0, k] - stored.views.fitted[row, column]).max() < 1.0
        distance = np.linalg.norm(fresh.bias[0, k] - stored.views.bias[row, column], axis=1)
        assert np.median(distance) < 0.001  # a millimetre
        assert np.abs(image.fitted[0, k] - stored.image_views.fitted[row, column]).max() < 1.0
        moved = np.linalg.norm(image.bias[0, k] - stored.image_views.bias[row, column], axis=1)
        # In inter-ocular distances: the error itself is about 0.06 at yaw 30.
        assert np.median(moved) < 0.01
