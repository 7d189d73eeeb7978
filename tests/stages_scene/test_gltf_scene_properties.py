"""Property test: under any mix of joins, leaves and (valid or invalid) updates, the scene
stays valid, failed updates change nothing, versions count the changes, and a UE replaying
the fanned-out patches (the history) holds exactly the MF's document."""

from __future__ import annotations

import collections
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from avatar_mf.stages.scene import SceneError
from avatar_mf.stages.scene.gltf_scene import GltfSceneManager, validate_scene
from avatar_mf.stages.scene.patch import apply_patch, escape_token

PEOPLE = ["a", "b", "c", "d/e", "f~g", "mf"]
numbers = st.floats(-5, 5, allow_nan=False) | st.integers(-5, 5)
unit_quaternions = (
    st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4)
    .map(lambda q: q if sum(c * c for c in q) > 0.01 else [0.0, 0.0, 0.0, 1.0])
    .map(lambda q: [c / sum(d * d for d in q) ** 0.5 for c in q])
)
values = (
    st.lists(numbers, min_size=3, max_size=3)
    | unit_quaternions
    | st.lists(numbers | st.just("x"), max_size=5)
    | st.text(max_size=3)
)
MEMBERS = ["translation", "rotation", "translation/1", "extras/note", "name", "extras/avatarId"]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def one_step(data: st.DataObject, scene: GltfSceneManager) -> str:
    """Do one thing to the scene; what kind of thing."""
    roster = sorted(scene.participants)
    kind = data.draw(st.sampled_from(["join", "leave", "update", "update", "update"]))
    if kind == "join" or not roster:
        name = data.draw(st.text(max_size=3))
        scene.add_participant(data.draw(st.sampled_from(PEOPLE)), name=name, avatar_id=None)
        return "join"
    elif kind == "leave":
        scene.remove_participant(data.draw(st.sampled_from(roster + ["zz"])))
        return "leave"
    else:
        by = data.draw(st.sampled_from(roster) | st.sampled_from(["mf", "zz"]))
        whose = data.draw(st.sampled_from(roster))
        member = data.draw(st.sampled_from(MEMBERS))
        op = "add" if member == "extras/note" else "replace"
        path = data.draw(
            st.sampled_from(
                [
                    f"/participants/{escape_token(whose)}/{member}",
                    f"/nodes/{scene.participants[whose]}/{member}",
                ]
            )
        )
        patch = [{"op": op, "path": path, "value": data.draw(values)}]
        offset = data.draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
        scene.apply(patch, base_version=scene.version + offset, by=by)
        return "update"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_replicas_follow_the_scene(data: st.DataObject) -> None:
    scene = GltfSceneManager(room="r", max_participants=4, history_limit=1000)
    replica, replica_version = scene.document(), scene.version
    changes = 0
    outcomes: collections.Counter[str] = collections.Counter()
    for _ in range(data.draw(st.integers(0, 25))):
        before = dumps(scene.document())
        try:
            kind = one_step(data, scene)
        except SceneError as exc:
            assert dumps(scene.document()) == before  # nothing applied
            outcomes[exc.code] += 1
        else:
            changes += dumps(scene.document()) != before
            outcomes[f"{kind} ok"] += 1
        validate_scene(scene.document())
    for outcome in outcomes:
        event(outcome)
    assert scene.version == 1 + changes
    for version, patch in scene.history(replica_version) or []:
        assert version == replica_version + 1
        replica, replica_version = apply_patch(replica, patch), version
    assert dumps(replica) == dumps(scene.document())
