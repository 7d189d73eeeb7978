"""The 2D fields against the product head's own 3D blendshape deltas, projected.

The product's default head is rendered neutral by the product's renderer, the face tracker
finds its 478 landmarks, each landmark is matched to the head's nearest front-facing vertex
(projected through the renderer's camera) and that vertex's morph delta for a blendshape is
projected to a 2D displacement, in IOD units along the face's axes. Where the tracker's
landmark lands inside the head's moving region (mouth corners, inner brows) the 2D model's
fields, computed on the same landmarks, must agree with those projections; docs/rendering.md
says why the rules, not these projections, make the fields (lids, lower lip and brow middle
land outside the mannequin's regions)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.face import FaceTracker
from avatar_mf.render.camera import portrait
from avatar_mf.render.gl import GlRenderer
from avatar_mf.render.scene import RenderSettings
from avatar_mf.stages.animation.avatar_rig import from_model
from avatar_mf.stages.animation.portrait.shapes import FaceFrame, displacement_fields

F64 = NDArray[np.float64]
SIZE = 640


@pytest.fixture(scope="module")
def head_fields(gl: GlRenderer, tracker: FaceTracker) -> tuple[F64, F64]:
    """(projected 3D deltas, the 2D model's fields), both (52, 478, 2) in IOD units (u, v)."""
    avatar = from_model(generate_default_head())
    gl.add_mesh("vs-head", avatar.mesh)
    settings = RenderSettings(SIZE, SIZE, samples=4)
    positions, normals = avatar.rig.pose(avatar.rig.neutral())
    picture = np.ascontiguousarray(gl.render("vs-head", positions, normals, settings)[..., :3])
    gl.remove_mesh("vs-head")
    landmarks = tracker.track(picture).landmarks.astype(np.float64) * SIZE
    view, projection = portrait(avatar.mesh.bounds, settings.framing, 1.0)
    clip_from_model = projection @ view

    def project(points: F64) -> F64:
        h = np.c_[points, np.ones(len(points))] @ clip_from_model.T
        out: F64 = (h[:, :2] / h[:, 3:] + 1.0) / 2.0 * SIZE
        return out

    rest = positions.astype(np.float64)
    on_picture = project(rest)
    front = np.flatnonzero(normals[:, 2] > 0.05)
    distance = ((on_picture[front, None, :] - landmarks[None, :, :2]) ** 2).sum(-1)
    vertex = front[np.argmin(distance, axis=0)]
    assert np.median(np.sqrt(distance.min(axis=0))) < 4.0  # pixels: the match is close
    frame = FaceFrame.of(landmarks)
    targets = avatar.model.target_positions.astype(np.float64)
    projected = np.zeros((len(targets), len(landmarks), 2))
    for k in range(len(targets)):
        moved = project(rest[vertex] + targets[k][vertex]) - on_picture[vertex]
        projected[k] = np.stack([moved @ frame.u, moved @ frame.v], 1) / frame.iod
    _, pixels = displacement_fields(landmarks)
    fields = np.stack([pixels @ frame.u, pixels @ frame.v], -1) / frame.iod
    return projected, fields


@pytest.mark.parametrize(
    ("shape", "landmark"),
    [
        ("mouthSmileLeft", 291),
        ("mouthSmileRight", 61),
        ("browInnerUp", 336),
        ("browInnerUp", 107),
        ("mouthPucker", 291),
        ("mouthPucker", 61),
    ],
)
def test_the_fields_agree_with_the_heads_projected_deltas(
    head_fields: tuple[F64, F64], shape: str, landmark: int
) -> None:
    projected, fields = head_fields
    truth = projected[ARKIT_INDEX[shape], landmark]
    ours = fields[ARKIT_INDEX[shape], landmark]
    assert np.linalg.norm(truth) > 0.08  # IOD: the head moves this point
    # Same direction, and the size within a third: the tracker's landmark sits a little off
    # the centre of the head's region, where its bump has fallen by up to a quarter.
    assert ours @ truth > 0.95 * np.linalg.norm(ours) * np.linalg.norm(truth)
    assert np.linalg.norm(ours - truth) < 0.35 * np.linalg.norm(truth), (ours, truth)


@pytest.mark.parametrize("landmark", [336, 107])
def test_the_inner_brow_raise_is_the_heads(head_fields: tuple[F64, F64], landmark: int) -> None:
    """The portrait's browInnerUp lifts the brows' heads as far as the 3D head's does (within
    10 %: its bump is centred on the brow's head, where the head's raise is full)."""
    projected, fields = head_fields
    truth = projected[ARKIT_INDEX["browInnerUp"], landmark]
    ours = fields[ARKIT_INDEX["browInnerUp"], landmark]
    assert abs(np.linalg.norm(ours) / np.linalg.norm(truth) - 1.0) < 0.1, (ours, truth)
