"""The glTF scene manager: joins and leaves as patches, versions, conflicts, authorization,
validation (nothing applied on error), history catch-up, placement, the registry."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avatar_mf.pipeline import registry
from avatar_mf.stages.scene import SceneError
from avatar_mf.stages.scene.gltf_scene import (
    MAX_COORDINATE,
    GltfSceneManager,
    seat_pose,
    validate_scene,
)
from avatar_mf.stages.scene.patch import apply_patch

VALIDATOR = Path(__file__).parents[1] / "avatar" / "validator"


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class Replica:
    """A UE's copy of the scene, kept up to date with the patches the MF fans out."""

    def __init__(self, scene: GltfSceneManager) -> None:
        self.document = scene.document()
        self.version = scene.version

    def patch(self, patch: list[dict[str, Any]]) -> None:
        self.document = apply_patch(self.document, patch)
        self.version += 1


def room(*participants: str, **options: Any) -> GltfSceneManager:
    scene = GltfSceneManager(room="lobby", **options)
    for participant in participants:
        scene.add_participant(participant, name=participant.title(), avatar_id=None)
    return scene


def scene_error(call: Any, *args: Any, **kwargs: Any) -> SceneError:
    with pytest.raises(SceneError) as info:
        call(*args, **kwargs)
    return info.value


# --- the document ---------------------------------------------------------------------------


def test_an_empty_room() -> None:
    scene = GltfSceneManager(room="lobby")
    assert scene.version == 1
    assert scene.document() == {
        "asset": {"version": "2.0", "generator": "avatar-mf"},
        "scene": 0,
        "scenes": [{"name": "lobby"}],
        "extras": {"participants": {}},
    }
    assert scene.participants == {}


def test_document_is_a_copy() -> None:
    scene = room("alice")
    document = scene.document()
    document["nodes"][0]["translation"][0] = 99.0
    document["extras"]["participants"]["mallory"] = 0
    assert scene.document()["nodes"][0]["translation"][0] != 99.0
    assert scene.participants == {"alice": 0}


def test_join_patches() -> None:
    scene = GltfSceneManager(room="lobby")
    first = scene.add_participant("alice", name="Alice", avatar_id="urn:avatar:1")
    translation, rotation = seat_pose(0)
    node = {
        "name": "Alice",
        "translation": translation,
        "rotation": rotation,
        "extras": {"participant": "alice", "avatarId": "urn:avatar:1"},
    }
    assert first == [  # no empty arrays in glTF: the first join creates them
        {"op": "add", "path": "/nodes", "value": [node]},
        {"op": "add", "path": "/scenes/0/nodes", "value": [0]},
        {"op": "add", "path": "/extras/participants/alice", "value": 0},
    ]
    assert scene.version == 2
    second = scene.add_participant("sip:bob/1~x", name="Bob", avatar_id=None)
    assert [(op["op"], op["path"]) for op in second] == [
        ("add", "/nodes/-"),
        ("add", "/scenes/0/nodes/-"),
        ("add", "/extras/participants/sip:bob~11~0x"),  # RFC 6901 escapes
    ]
    assert second[0]["value"]["extras"] == {"participant": "sip:bob/1~x", "avatarId": None}
    assert scene.version == 3
    assert scene.participants == {"alice": 0, "sip:bob/1~x": 1}
    assert scene.node_pointer("sip:bob/1~x") == "/nodes/1"


def test_replaying_the_patches_rebuilds_the_scene() -> None:
    scene = GltfSceneManager(room="lobby")
    replica = Replica(scene)
    replica.patch(scene.add_participant("a", name="A", avatar_id=None))
    replica.patch(scene.add_participant("b", name="B", avatar_id=None))
    replica.patch(scene.add_participant("c", name="C", avatar_id="x"))
    replica.patch(scene.remove_participant("b"))
    replica.patch(scene.add_participant("d", name="D", avatar_id=None))  # reuses b's slot
    replica.patch(scene.remove_participant("c"))
    replica.patch(scene.remove_participant("a"))
    assert dumps(replica.document) == dumps(scene.document())
    assert replica.version == scene.version == 8


def test_leaving_keeps_other_indices() -> None:
    scene = room("a", "b", "c")
    patch = scene.remove_participant("b")
    assert patch == [
        {"op": "remove", "path": "/scenes/0/nodes/1"},
        {"op": "remove", "path": "/extras/participants/b"},
        {"op": "replace", "path": "/nodes/1", "value": {"extras": {"vacant": True}}},
    ]
    assert scene.participants == {"a": 0, "c": 2}
    assert scene.document()["scenes"][0]["nodes"] == [0, 2]


def test_slots_are_reused_lowest_first_and_trailing_ones_dropped() -> None:
    scene = room("a", "b", "c", "d")
    scene.remove_participant("c")
    scene.remove_participant("b")
    scene.add_participant("e", name="E", avatar_id=None)
    assert scene.participants["e"] == 1
    assert scene.document()["nodes"][1]["translation"] == seat_pose(1)[0]
    scene.remove_participant("d")  # the last node, and the vacant slot 2 before it
    assert len(scene.document()["nodes"]) == 2
    scene.remove_participant("e")
    scene.remove_participant("a")
    assert scene.document() == GltfSceneManager(room="lobby").document()


def test_trailing_trim_patch() -> None:
    scene = room("a", "b", "c")
    scene.remove_participant("b")
    assert scene.remove_participant("c") == [
        {"op": "remove", "path": "/scenes/0/nodes/1"},
        {"op": "remove", "path": "/extras/participants/c"},
        {"op": "remove", "path": "/nodes/2"},
        {"op": "remove", "path": "/nodes/1"},
    ]
    assert scene.remove_participant("a") == [
        {"op": "remove", "path": "/scenes/0/nodes"},
        {"op": "remove", "path": "/extras/participants/a"},
        {"op": "remove", "path": "/nodes"},
    ]


@pytest.mark.parametrize(
    ("participant", "code"),
    [("", "invalid-participant"), ("mf", "invalid-participant"), ("a", "participant-exists")],
)
def test_bad_joins(participant: str, code: str) -> None:
    scene = room("a")
    assert scene_error(scene.add_participant, participant, name="X", avatar_id=None).code == code
    assert scene.version == 2


def test_room_full_and_unknown_participant() -> None:
    scene = room("a", "b", max_participants=2)
    assert scene_error(scene.add_participant, "c", name="C", avatar_id=None).code == "room-full"
    assert scene_error(scene.remove_participant, "c").code == "unknown-participant"
    assert scene_error(scene.node_pointer, "c").code == "unknown-participant"
    scene.remove_participant("a")
    scene.add_participant("c", name="C", avatar_id=None)
    assert scene.version == 5
    with pytest.raises(ValueError):
        GltfSceneManager(max_participants=0)


# --- updates --------------------------------------------------------------------------------


def move(path: str, value: Any) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": path, "value": value}]


def test_a_ue_moves_itself_by_participant_path() -> None:
    scene = room("alice", "bob")
    replica = Replica(scene)
    base = scene.version
    new = scene.apply(
        move("/participants/bob/translation", [0.5, 0, -1.25]), base_version=base, by="bob"
    )
    assert new == base + 1 == scene.version
    fanned_out = scene.history(base)
    assert fanned_out == [
        (new, [{"op": "replace", "path": "/nodes/1/translation", "value": [0.5, 0, -1.25]}])
    ]
    assert fanned_out is not None
    replica.patch(fanned_out[0][1])
    assert dumps(replica.document) == dumps(scene.document())


def test_escaped_participant_paths() -> None:
    scene = room("sip:a/b~c")
    rotation = [0.0, 0.0, math.sin(0.25), math.cos(0.25)]
    scene.apply(
        move("/participants/sip:a~1b~0c/rotation", rotation), base_version=2, by="sip:a/b~c"
    )
    assert scene.document()["nodes"][0]["rotation"] == rotation


def test_a_ue_may_write_its_own_transform_and_extras() -> None:
    scene = room("alice", "bob")
    version = scene.apply(
        [
            {"op": "test", "path": "/nodes/0/name", "value": "Alice"},  # tests read anything
            {"op": "replace", "path": "/nodes/1/translation/1", "value": 0.25},
            {"op": "add", "path": "/participants/bob/extras/gaze", "value": {"at": "alice"}},
            {"op": "copy", "from": "/nodes/0/rotation", "path": "/nodes/1/rotation"},
        ],
        base_version=3,
        by="bob",
    )
    node = scene.document()["nodes"][1]
    assert node["translation"][1] == 0.25
    assert node["extras"]["gaze"] == {"at": "alice"}
    assert node["rotation"] == seat_pose(0)[1]
    version = scene.apply(
        [{"op": "move", "from": "/nodes/1/extras/gaze", "path": "/nodes/1/extras/look"}],
        base_version=version,
        by="bob",
    )
    version = scene.apply(
        [{"op": "remove", "path": "/participants/bob/extras/look"}], base_version=version, by="bob"
    )
    assert scene.document()["nodes"][1]["extras"] == {"participant": "bob", "avatarId": None}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "/nodes/0/translation", "value": [0, 0, 0]},  # alice's
        {"op": "replace", "path": "/participants/alice/rotation", "value": [0, 0, 0, 1]},
        {"op": "remove", "path": "/nodes/0"},
        {"op": "replace", "path": "/nodes/1", "value": {"name": "x"}},  # its whole node
        {"op": "replace", "path": "/nodes/1/name", "value": "Robert"},
        {"op": "add", "path": "/nodes/1/scale", "value": [9, 9, 9]},
        {"op": "add", "path": "/nodes/1/matrix", "value": [1] * 16},
        {"op": "replace", "path": "/nodes/1/extras", "value": {}},
        {"op": "replace", "path": "/nodes/1/extras/participant", "value": "alice"},
        {"op": "replace", "path": "/nodes/1/extras/avatarId", "value": "stolen"},
        {"op": "add", "path": "/nodes/1/extras/vacant", "value": True},
        {"op": "add", "path": "/nodes/-", "value": {}},
        {"op": "replace", "path": "/asset/version", "value": "3.0"},
        {"op": "remove", "path": "/extras/participants/alice"},
        {"op": "add", "path": "/scenes/0/nodes/-", "value": 0},
        {"op": "move", "from": "/nodes/0/extras/participant", "path": "/nodes/1/extras/x"},
        {"op": "move", "from": "/nodes/1/translation", "path": "/nodes/0/translation"},
        {"op": "replace", "path": "", "value": {}},
    ],
)
def test_forbidden_edits_by_a_ue(operation: dict[str, Any]) -> None:
    scene = room("alice", "bob")
    before = dumps(scene.document())
    patch = [{"op": "replace", "path": "/nodes/1/translation", "value": [0, 0, 0]}, operation]
    error = scene_error(scene.apply, patch, base_version=3, by="bob")
    assert error.code == "forbidden"
    assert "operation 1" in str(error)
    assert dumps(scene.document()) == before
    assert scene.version == 3


def test_strangers_may_not_patch() -> None:
    scene = room("alice")
    error = scene_error(
        scene.apply, move("/nodes/0/translation", [0, 0, 0]), base_version=2, by="eve"
    )
    assert error.code == "forbidden"


def test_the_mf_may_edit_anything_but_membership() -> None:
    scene = room("alice", "bob")
    scene.apply(
        [
            {"op": "replace", "path": "/nodes/1/name", "value": "Robert"},
            {"op": "replace", "path": "/participants/bob/extras/avatarId", "value": "av-2"},
            {"op": "add", "path": "/extensions", "value": {"MPEG_scene_dynamic": {}}},
        ],
        base_version=3,
        by="mf",
    )
    node = scene.document()["nodes"][1]
    assert (node["name"], node["extras"]["avatarId"]) == ("Robert", "av-2")
    for patch in (
        [{"op": "remove", "path": "/extras/participants/bob"}],
        [
            {
                "op": "add",
                "path": "/nodes/-",
                "value": {
                    "name": "C",
                    "translation": [0, 0, 0],
                    "rotation": [0, 0, 0, 1],
                    "extras": {"participant": "c"},
                },
            },
            {"op": "add", "path": "/scenes/0/nodes/-", "value": 2},
            {"op": "add", "path": "/extras/participants/c", "value": 2},
        ],
    ):
        assert scene_error(scene.apply, patch, base_version=4, by="mf").code in (
            "forbidden",
            "invalid-scene",
        )
    assert scene.version == 4
    assert scene.participants == {"alice": 0, "bob": 1}


@pytest.mark.parametrize(
    "value",
    [
        [1, 2],
        [1, 2, 3, 4],
        [1, "2", 3],
        [1, True, 3],
        [1, None, 3],
        "1,2,3",
        {"x": 1},
        [MAX_COORDINATE + 1, 0, 0],
        [0, -1e300, 0],
    ],
)
def test_invalid_translations_are_rejected(value: Any) -> None:
    scene = room("alice")
    before = dumps(scene.document())
    patch = [
        {"op": "replace", "path": "/participants/alice/rotation", "value": [0, 1, 0, 0]},
        {"op": "replace", "path": "/participants/alice/translation", "value": value},
    ]
    assert scene_error(scene.apply, patch, base_version=2, by="alice").code == "invalid-scene"
    assert dumps(scene.document()) == before
    assert scene.version == 2
    assert scene.history(1) is not None and len(scene.history(1) or []) == 1


@pytest.mark.parametrize(
    "value",
    [[0, 0, 0, 0], [0, 0, 0, 2], [0.5, 0.5, 0.5, 0.6], [0, 0, 1], [0, 0, 0, "1"], [0, 0, 0, False]],
)
def test_invalid_rotations_are_rejected_not_normalised(value: Any) -> None:
    scene = room("alice")
    patch = move("/participants/alice/rotation", value)
    assert scene_error(scene.apply, patch, base_version=2, by="alice").code == "invalid-scene"
    assert scene.version == 2


def test_rotations_within_tolerance_are_kept_as_sent() -> None:
    scene = room("alice")
    rotation = [0.0, 0.0, 0.0, 1.0005]
    scene.apply(move("/participants/alice/rotation", rotation), base_version=2, by="alice")
    assert scene.document()["nodes"][0]["rotation"] == rotation


def test_removing_ones_own_transform_is_invalid() -> None:
    scene = room("alice")
    patch = [{"op": "remove", "path": "/participants/alice/translation"}]
    assert scene_error(scene.apply, patch, base_version=2, by="alice").code == "invalid-scene"


def test_the_mf_cannot_break_the_scene_either() -> None:
    scene = room("alice")
    for patch in (
        move("/asset/version", "1.0"),
        move("/nodes/0/name", 5),
        move("/scene", 1),
        [{"op": "add", "path": "/participants", "value": {}}],  # stays unambiguous
        [{"op": "remove", "path": "/scenes/0/nodes"}],
        [{"op": "add", "path": "/nodes/0/children", "value": [0, 0]}],
    ):
        assert scene_error(scene.apply, patch, base_version=2, by="mf").code in (
            "invalid-scene",
            "forbidden",
        )
    assert scene.version == 2


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        ([{"op": "test", "path": "/participants/alice/name", "value": "Bob"}], "test-failed"),
        (
            [{"op": "replace", "path": "/participants/zed/translation", "value": [0, 0, 0]}],
            "invalid-patch",
        ),
        ([{"op": "replace", "path": "/nodes/0/translation/3", "value": 1}], "invalid-patch"),
        ([{"op": "replace", "path": "nodes/0/translation", "value": [0, 0, 0]}], "invalid-patch"),
        ([{"op": "jump", "path": "/nodes/0/translation"}], "invalid-patch"),
        ([{"op": "add", "path": "/nodes/0/extras/x", "value": float("nan")}], "invalid-patch"),
        ({"op": "add"}, "invalid-patch"),
        ([{"op": "test", "path": "", "value": None}] * 300, "too-large"),
        ([{"op": "add", "path": "/nodes/0/extras/blob", "value": "x" * 5000}], "invalid-scene"),
    ],
)
def test_patch_errors(patch: Any, code: str) -> None:
    scene = room("alice")
    assert scene_error(scene.apply, patch, base_version=2, by="alice").code == code
    assert scene.version == 2


def test_a_patch_that_changes_nothing_makes_no_version() -> None:
    scene = room("alice")
    translation = scene.document()["nodes"][0]["translation"]
    assert scene.apply(move("/nodes/0/translation", translation), base_version=2, by="alice") == 2
    assert scene.apply([], base_version=2, by="alice") == 2
    assert scene.history(2) == []


# --- versions and history -------------------------------------------------------------------


def test_stale_and_future_base_versions_conflict() -> None:
    scene = room("alice", "bob")
    scene.apply(move("/nodes/0/translation", [1, 0, 0]), base_version=3, by="alice")
    before = dumps(scene.document())
    for base in (3, 1, 5):
        error = scene_error(
            scene.apply, move("/nodes/1/translation", [2, 0, 0]), base_version=base, by="bob"
        )
        assert error.code == "version-conflict"
    assert dumps(scene.document()) == before
    assert scene.version == 4


def test_catch_up_then_resend() -> None:
    scene = room("alice", "bob")
    bob = Replica(scene)
    scene.apply(move("/nodes/0/translation", [1, 0, 0]), base_version=3, by="alice")
    scene.add_participant("carol", name="Carol", avatar_id=None)
    patch = move("/participants/bob/translation", [2, 0, 0])
    assert scene_error(scene.apply, patch, base_version=bob.version, by="bob").code == (
        "version-conflict"
    )
    missed = scene.history(bob.version)
    assert missed is not None
    assert [version for version, _ in missed] == [4, 5]
    for version, ops in missed:
        bob.patch(ops)
        assert bob.version == version
    assert dumps(bob.document) == dumps(scene.document())
    assert scene.apply(patch, base_version=bob.version, by="bob") == 6


def test_history_is_bounded() -> None:
    scene = room("a", history_limit=3)
    for x in range(5):
        scene.apply(move("/nodes/0/translation", [x, 0, 1]), base_version=scene.version, by="a")
    assert scene.version == 7
    assert scene.history(7) == []
    assert [v for v, _ in scene.history(4) or []] == [5, 6, 7]
    assert scene.history(3) is None  # too far back: send the document
    assert scene.history(0) is None
    assert scene_error(scene.history, 8).code == "version-conflict"
    assert room(history_limit=0).history(0) is None


def test_history_entries_are_copies() -> None:
    scene = room("a")
    entries = scene.history(1)
    assert entries is not None
    entries[0][1][0]["value"][0]["name"] = "changed"
    assert (scene.history(1) or [])[0][1][0]["value"][0]["name"] == "A"


def test_a_new_ue_gets_the_document_at_a_version() -> None:
    scene = room("a", "b")
    late = Replica(scene)
    assert late.version == scene.version
    assert validate_scene(late.document) == {"a": 0, "b": 1}


# --- determinism and placement --------------------------------------------------------------


def script(scene: GltfSceneManager) -> list[Any]:
    out: list[Any] = []
    for name in "abcdefghij":
        out.append(scene.add_participant(name, name=name.upper(), avatar_id=None))
    out.append(scene.remove_participant("c"))
    out.append(scene.remove_participant("j"))
    out.append(scene.add_participant("k", name="K", avatar_id="z"))
    out.append(
        scene.apply(
            move("/participants/k/translation", [1, 2, 3]), base_version=scene.version, by="k"
        )
    )
    out.append(scene.document())
    return out


def test_determinism() -> None:
    assert dumps(script(GltfSceneManager(room="r"))) == dumps(script(GltfSceneManager(room="r")))


def rotate(q: list[float], v: tuple[float, float, float]) -> tuple[float, float, float]:
    x, y, z, w = q
    vx, vy, vz = v
    # v' = v + 2w (u x v) + 2 u x (u x v), u = (x, y, z)
    cx, cy, cz = y * vz - z * vy, z * vx - x * vz, x * vy - y * vx
    ccx, ccy, ccz = y * cz - z * cy, z * cx - x * cz, x * cy - y * cx
    return (vx + 2 * (w * cx + ccx), vy + 2 * (w * cy + ccy), vz + 2 * (w * cz + ccz))


def test_seats_face_the_centre_on_rings() -> None:
    seats = [seat_pose(i) for i in range(120)]
    for index, (translation, rotation) in enumerate(seats):
        x, y, z = translation
        radius = math.hypot(x, z)
        assert y == 0.0
        assert radius == pytest.approx(
            1.5 if index < 8 else 3.0 if index < 24 else 6.0 if index < 56 else 12.0, abs=1e-5
        )
        assert math.sqrt(sum(c * c for c in rotation)) == pytest.approx(1.0, abs=1e-5)
        assert rotation[3] >= 0.0
        front = rotate(rotation, (0.0, 0.0, 1.0))  # a glTF asset's front is +Z
        assert front[0] == pytest.approx(-x / radius, abs=1e-5)
        assert front[2] == pytest.approx(-z / radius, abs=1e-5)
    # Two participants sit opposite each other, four at right angles.
    assert seats[0][0] == [0.0, 0.0, 1.5]
    assert seats[1][0] == [0.0, 0.0, -1.5]
    assert sorted(map(tuple, (s[0] for s in seats[2:4]))) == [(-1.5, 0.0, 0.0), (1.5, 0.0, 0.0)]
    # Nobody shares a seat or sits closer than a metre to anyone.
    for i in range(len(seats)):
        for j in range(i):
            assert math.dist(seats[i][0], seats[j][0]) > 1.0
    with pytest.raises(ValueError):
        seat_pose(-1)


def test_negative_zero_never_appears() -> None:
    for index in range(64):
        for value in (*seat_pose(index)[0], *seat_pose(index)[1]):
            assert math.copysign(1.0, value) == 1.0 or value != 0.0


# --- wiring ---------------------------------------------------------------------------------


def test_registry_lookup() -> None:
    from avatar_mf.stages.scene.stage import GltfScenes

    assert registry.available("scene")["gltf"] == "avatar_mf.stages.scene.stage:GltfScenes"
    provider = registry.create("scene", "gltf", {"max_participants": 2})
    assert isinstance(provider, GltfScenes)
    scene = provider.scene("r")
    assert isinstance(scene, GltfSceneManager)
    assert scene.document()["scenes"][0]["name"] == "r"


def test_the_khronos_validator_accepts_the_scene(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (VALIDATOR / "node_modules" / "gltf-validator").is_dir():
        pytest.skip("node or the gltf-validator package (tests/avatar/validator) is missing")
    scene = room("a", "b", "c", "d")
    scene.remove_participant("b")  # leaves a vacant slot: reported as info, not an error
    scene.apply(move("/participants/d/rotation", [0, 0, 0, 1]), base_version=6, by="d")
    files = [tmp_path / "scene.gltf", tmp_path / "empty.gltf"]
    files[0].write_text(json.dumps(scene.document()))
    files[1].write_text(json.dumps(GltfSceneManager().document()))
    result = subprocess.run(
        [node, str(VALIDATOR / "validate.js"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for line in result.stdout.splitlines():
        report = json.loads(line)
        assert (report["numErrors"], report["numWarnings"]) == (0, 0), report


def test_the_avatar_in_use_is_recorded_in_the_participants_node() -> None:
    scene = room("a", "b")
    replica = Replica(scene)
    patch = scene.set_avatar("b", "bar:7d3c1e2a")
    assert patch == [{"op": "replace", "path": "/nodes/1/extras/avatarId", "value": "bar:7d3c1e2a"}]
    replica.patch(patch)
    assert replica.document == scene.document()
    assert scene.document()["nodes"][1]["extras"]["avatarId"] == "bar:7d3c1e2a"
    assert scene.document()["nodes"][0]["extras"]["avatarId"] is None
    assert scene.set_avatar("b", "bar:7d3c1e2a") == []  # no change, no patch, no version
    version = scene.version
    assert scene.set_avatar("b", None)[0]["value"] is None and scene.version == version + 1
    assert scene_error(scene.set_avatar, "c", "bar:1").code == "unknown-participant"
