"""Loading a base avatar for animation: ARF and GLB, the ids units address, landmark sets."""

from __future__ import annotations

import pytest

from avatar_mf.avatar import AvatarFormatError, build_glb, read_arf
from avatar_mf.stages.animation.avatar_rig import _bindings, load_avatar
from tests.stages.animation.rigs import two_bone_model


def test_arf_container_gives_its_set_and_skeleton_ids(head_arf: bytes) -> None:
    avatar = load_avatar(head_arf)
    document = read_arf(head_arf).document
    assert avatar.blendshape_sets == tuple(s.id for s in document.components.blendshapeSets)
    assert avatar.skeletons == tuple(s.id for s in document.components.skeletons)
    assert avatar.mesh.vertex_count == avatar.model.vertex_count
    assert avatar.landmark_sets == {}  # the product's heads declare none


def test_bare_glb_uses_set_and_skeleton_zero() -> None:
    avatar = load_avatar(build_glb(two_bone_model()))
    assert avatar.blendshape_sets == (0,) and avatar.skeletons == (0,)
    assert avatar.rig.target_count == 2


def test_other_bytes_are_refused() -> None:
    with pytest.raises(AvatarFormatError):
        load_avatar(b"not an avatar")


def test_landmark_sets_that_bind_vertices() -> None:
    entries = [
        {"id": 3, "vertices": [0, 2], "radius": 0.02},
        {"id": 4, "vertices": [0, 99]},  # a vertex the mesh does not have: not bound
        {"id": 5, "points": [[0, 0, 0]]},  # another shape of landmark set: not bound
    ]
    bound = _bindings(entries, vertex_count=3)
    assert [(b.set_id, b.vertices, b.radius) for b in bound] == [(3, (0, 2), 0.02)]
