"""Membership changes in place (issue 16, set-up cost): a join, a leave or an avatar change
gives the same patch, version and document as the general path (copy, apply, validate the
whole document), keeps its checks on the changed node, and the MF's own patches, which may add
references the in-place path does not look at, send membership back to the general path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from avatar_mf.stages.scene import SceneError
from avatar_mf.stages.scene.gltf_scene import (
    MAX_NODE_SIZE,
    SCENE_LIMITS,
    GltfSceneManager,
    validate_scene,
)
from avatar_mf.stages.scene.patch import apply_patch, json_size

PEOPLE = ["a", "b/c", "d~e", "f", "g"]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def general(scene: GltfSceneManager) -> GltfSceneManager:
    """``scene`` with membership on the general path: the MF's own (empty) patch."""
    version = scene.version
    scene.apply([], base_version=version, by="mf")
    assert scene.version == version
    return scene


def steps() -> list[tuple[str, str, str | None]]:
    """Joins, leaves and avatar changes that fill, empty and refill slots, middle and end."""
    out: list[tuple[str, str, str | None]] = [("join", p, None) for p in PEOPLE]
    out += [("avatar", "b/c", "av-1"), ("avatar", "b/c", "av-1"), ("avatar", "f", None)]
    out += [("leave", "b/c", None), ("leave", "f", None), ("leave", "g", None)]
    out += [("join", "g", "av-2"), ("leave", "a", None), ("leave", "d~e", None)]
    out += [("join", "a", None), ("leave", "g", None), ("leave", "a", None)]
    out += [("join", "f", None), ("avatar", "f", "av-3"), ("leave", "f", None)]
    return out


def step(scene: GltfSceneManager, kind: str, who: str, avatar: str | None) -> Any:
    if kind == "join":
        return scene.add_participant(who, name=who.upper(), avatar_id=avatar)
    if kind == "avatar":
        return scene.set_avatar(who, avatar)
    return scene.remove_participant(who)


def test_in_place_membership_is_the_general_path() -> None:
    fast, slow = GltfSceneManager(room="r"), general(GltfSceneManager(room="r"))
    for kind, who, avatar in steps():
        before = fast.document()
        patch = step(fast, kind, who, avatar)
        assert patch == step(slow, kind, who, avatar), (kind, who)
        assert fast.version == slow.version
        assert dumps(fast.document()) == dumps(slow.document())
        assert fast.participants == slow.participants
        assert validate_scene(fast.document()) == fast.participants
        # A UE applying the fanned-out patch to what it held gets the MF's document.
        assert dumps(apply_patch(before, patch)) == dumps(fast.document())
    assert fast.history(1) == slow.history(1)
    assert "nodes" not in fast.document()  # the room emptied: no empty arrays


def test_the_document_handed_out_shares_nothing_with_the_scene() -> None:
    scene = GltfSceneManager(room="r")
    patch = scene.add_participant("a", name="A", avatar_id=None)
    patch[0]["value"][0]["name"] = "changed"
    scene.document()["nodes"][0]["extras"]["avatarId"] = "changed"
    node = scene.document()["nodes"][0]
    assert (node["name"], node["extras"]["avatarId"]) == ("A", None)


@pytest.mark.parametrize("in_place", [True, False])
def test_an_oversized_node_is_refused_with_nothing_changed(in_place: bool) -> None:
    scene = GltfSceneManager(room="r")
    if not in_place:
        general(scene)
    scene.add_participant("a", name="A", avatar_id=None)
    document, version = scene.document(), scene.version
    big = "x" * MAX_NODE_SIZE
    errors = []
    for call in (
        lambda: scene.add_participant("b", name=big, avatar_id=None),
        lambda: scene.set_avatar("a", big),
    ):
        with pytest.raises(SceneError) as info:
            call()
        errors.append((info.value.code, str(info.value)))
    assert errors[0] == ("invalid-scene", f"/nodes/1 is larger than {MAX_NODE_SIZE} size units")
    assert errors[1] == ("invalid-scene", f"/nodes/0 is larger than {MAX_NODE_SIZE} size units")
    assert (scene.document(), scene.version) == (document, version)
    assert scene.participants == {"a": 0}


def test_after_the_mfs_own_patch_a_leave_is_checked_against_the_whole_document() -> None:
    scene = GltfSceneManager(room="r")
    for who in ("a", "b", "c"):
        scene.add_participant(who, name=who, avatar_id=None)
    # The MF groups b under a: b's node is referenced, so b cannot become a vacant slot.
    scene.apply([{"op": "add", "path": "/nodes/0/children", "value": [1]}], base_version=4, by="mf")
    with pytest.raises(SceneError) as info:
        scene.remove_participant("b")
    assert info.value.code == "invalid-scene"
    assert scene.version == 5
    assert scene.participants == {"a": 0, "b": 1, "c": 2}


def test_a_room_that_could_outgrow_the_size_limit_is_held_to_it() -> None:
    scene = GltfSceneManager(room="r", max_participants=400)
    name = "n" * (MAX_NODE_SIZE - 200)
    with pytest.raises(SceneError) as info:
        for number in range(400):
            scene.add_participant(f"p{number}", name=name, avatar_id=None)
    assert info.value.code == "too-large"
    joined = len(scene.participants)
    assert 200 < joined < 400
    assert json_size(scene.document(), SCENE_LIMITS) <= SCENE_LIMITS.max_size
    assert validate_scene(scene.document()) == scene.participants
