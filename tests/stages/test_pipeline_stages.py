"""Every stage kind through the harness (avatar_mf.testing.pipeline): frames in, frames out.

Also a stage from outside the product, found by entry point and configured with options, the
way a lab plugs in its own (docs/operations.md "Writing a stage").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatar_mf.arf.units import ConfigUnit, decode_unit
from avatar_mf.avatar.validate import validate_container
from avatar_mf.node.stages import StageLoadError, build_stages
from avatar_mf.pipeline.frames import (
    AnimationUnitFrame,
    AudioOut,
    AvatarUpload,
    BaseAvatarFrame,
    GenerateAvatar,
    ParticipantJoined,
    ParticipantLeft,
    SceneFrame,
    ScenePatchFrame,
    SceneQuery,
    SceneSnapshot,
    TextInput,
)
from avatar_mf.pipeline.runner import NamedStage, SessionPipeline
from avatar_mf.stages.animation import ReceiverAnimates
from avatar_mf.stages.animation_data.text_animation import TextToAnimation
from avatar_mf.stages.base_avatar import AvatarRequest
from avatar_mf.stages.base_avatar.procedural import ProceduralGenerator
from avatar_mf.stages.base_avatar.validation import UploadValidation
from avatar_mf.stages.scene.stage import GltfScenes
from avatar_mf.testing.clock import FakeClock
from avatar_mf.testing.pipeline import InlineExecutor, run_stage, stage_context
from tests.stages.lab_packages import installed_package

# -- base avatar ------------------------------------------------------------------------------


async def test_base_avatar_generation_builds_a_valid_avatar_in_the_worker_pool() -> None:
    executor = InlineExecutor()
    context = stage_context(executor=executor)
    run = await run_stage(
        ProceduralGenerator(resolution="low"),
        [GenerateAvatar("p1", identity="sip:ue1@127.0.0.1", name="me", seed=3, message_id="g1")],
        context=context,
    )
    (avatar,) = run.frames
    assert isinstance(avatar, BaseAvatarFrame)
    assert (avatar.source, avatar.origin_id, avatar.name) == ("generated", "g1", "me")
    validate_container(avatar.data, avatar.content_type)  # raises if not a usable avatar
    assert executor.calls == 1  # the mesh work went to the pool, not the event loop


async def test_upload_validation_passes_good_containers_and_refuses_bad_ones() -> None:
    good = ProceduralGenerator(resolution="low").generate(
        AvatarRequest(participant="p1", identity="sip:ue1@127.0.0.1")
    )
    run = await run_stage(
        UploadValidation(validate_container),
        [
            AvatarUpload("p1", "t1", "mine", good.content_type, good.container),
            AvatarUpload("p1", "t2", "junk", "application/vnd.arf+zip", b"PK\x03\x04 not a zip"),
        ],
    )
    ok = run.of(BaseAvatarFrame)
    assert len(ok) == 1 and ok[0].origin_id == "t1"  # type: ignore[attr-defined]
    (error,) = run.errors
    assert error.message_id == "t2" and error.cause == "AvatarUpload"
    assert error.code == "zip-corrupt"  # the reader's own code reaches the UE
    assert run.stats.errors == {("stage", "rejected"): 1}


# -- animation data ---------------------------------------------------------------------------


async def test_text_becomes_units_paced_at_their_media_time(animator: TextToAnimation) -> None:
    run = await run_stage(
        animator,
        [TextInput("p1", "hello there", message_id="t1"), TextInput("p1", "again")],
    )
    units = run.of(AnimationUnitFrame)
    decoded = [decode_unit(u.unit) for u in units]  # type: ignore[attr-defined]
    assert isinstance(decoded[0], ConfigUnit)
    assert sum(isinstance(u, ConfigUnit) for u in decoded) == 1  # one stream, one CONFIG
    stamps = [u.timestamp for u in decoded if type(u).__name__ == "BlendshapeUnit"]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # Paced: each unit left when its media time came, not in a burst. The second utterance
    # starts when the first has finished (its media times start again from zero).
    first = [
        (t, f.media_time)
        for t, f in zip(run.times, run.frames, strict=True)
        if isinstance(f, AnimationUnitFrame)
    ]
    second_start = next(i for i in range(1, len(first)) if first[i][1] < first[i - 1][1])
    for t, media in first[:second_start]:
        assert t == pytest.approx(media, abs=1e-6)
    offset = first[second_start][0]
    for t, media in first[second_start:]:
        assert t == pytest.approx(offset + media, abs=1e-6)
    assert offset >= first[second_start - 1][0]
    assert all(u.timescale == animator.timescale for u in units)  # type: ignore[attr-defined]


async def test_text_speech_audio_comes_out_before_its_units(animator: TextToAnimation) -> None:
    run = await run_stage(animator, [TextInput("p1", "hello there")])
    (audio,) = run.of(AudioOut)
    assert isinstance(audio, AudioOut)
    first_unit = next(i for i, f in enumerate(run.frames) if isinstance(f, AnimationUnitFrame))
    assert run.frames.index(audio) < first_unit  # yielded at the utterance's start
    assert audio.media_time == pytest.approx(animator.lead_in)
    samples = np.frombuffer(audio.pcm, dtype="<i2")
    # 16 kHz speech as long as the plan says (plan = lead-in + speech + tail).
    plan = animator.plan_text("hello there", language="en", rate=30.0, start_tick=0)
    speech_seconds = len(samples) / 16000
    assert speech_seconds == pytest.approx(
        plan.duration - animator.lead_in - animator.tail, abs=0.05
    )
    assert np.abs(samples).max() > 1000


async def test_unusable_text_is_an_error_for_that_request_only(animator: TextToAnimation) -> None:
    run = await run_stage(
        animator, [TextInput("p1", "x" * 5000, message_id="long"), TextInput("p1", "ok")]
    )
    (error,) = run.errors
    assert (error.code, error.message_id, error.kind) == ("stage-failed", "long", "stage")
    assert run.of(AnimationUnitFrame)  # the next utterance was still spoken


# -- animation --------------------------------------------------------------------------------


async def test_receiver_animates_lets_units_past_unchanged_and_at_once() -> None:
    unit = AnimationUnitFrame("p1", b"\x02\x00\x00\x00\x04\x00\x00\x00\x01")
    run = await run_stage(ReceiverAnimates(), [unit])
    assert run.frames == [unit] and run.times == [0.0]
    assert not ReceiverAnimates.animates_in_network


# -- scene ------------------------------------------------------------------------------------


async def test_scene_stage_joins_patches_answers_and_leaves() -> None:
    scenes = GltfScenes(max_participants=8)
    clock = FakeClock()
    bob = stage_context(clock=clock, participant="p2")
    # Alice's session stays open (run_stage closes the session it runs).
    alice_out: list[Any] = []
    alice = SessionPipeline(
        [NamedStage("scene", "gltf", scenes.open(stage_context(clock=clock)))], alice_out.append
    )
    alice.push(ParticipantJoined("p1", "alice"))
    for _ in range(20):
        await asyncio.sleep(0)
    (change,) = alice_out
    assert isinstance(change, SceneFrame) and change.reason == "joined"
    # Bob's session shares the room's scene: a patch against its version, then a query.
    version = scenes.scene("room").version
    patch = ({"op": "replace", "path": "/participants/p2/translation", "value": [1.0, 0.0, 0.0]},)
    run = await run_stage(
        scenes,
        [
            ParticipantJoined("p2", "bob"),
            ScenePatchFrame("p2", version + 1, patch, message_id="u1"),
            ScenePatchFrame("p2", 1, patch, message_id="stale"),
            SceneQuery("p2", message_id="q1"),
            ParticipantLeft("p2"),
        ],
        context=bob,
    )
    kinds = [type(f).__name__ for f in run.frames]
    assert kinds == ["SceneFrame", "SceneFrame", "StageError", "SceneSnapshot", "SceneFrame"]
    update = run.frames[1]
    assert isinstance(update, SceneFrame) and update.message_id == "u1"
    assert all("/participants/" not in op["path"] for op in update.operations)  # resolved
    assert run.errors[0].code == "version-conflict" and run.errors[0].message_id == "stale"
    snapshot = run.frames[3]
    assert isinstance(snapshot, SceneSnapshot)
    assert set(snapshot.document["extras"]["participants"]) == {"p1", "p2"}
    left = run.frames[4]
    assert isinstance(left, SceneFrame) and left.reason == "left"
    assert scenes.rooms == 1  # alice's session still holds the room's scene
    await alice.aclose(final=ParticipantLeft("p1"))
    assert scenes.rooms == 0


async def test_a_rooms_scene_lives_while_a_session_of_the_room_is_open() -> None:
    scenes = GltfScenes()
    clock = FakeClock()
    stages = [scenes.open(stage_context(clock=clock, participant=p)) for p in ("p1", "p2")]
    assert scenes.rooms == 0  # made on first use
    out: list[Any] = []
    pipes = [SessionPipeline([NamedStage("scene", "gltf", s)], out.append) for s in stages]
    pipes[0].push(ParticipantJoined("p1", "a"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert scenes.rooms == 1
    await pipes[0].aclose(final=ParticipantLeft("p1"))
    assert scenes.rooms == 1  # p2's session still open
    await pipes[1].aclose()
    assert scenes.rooms == 0


# -- a lab's own stage, by entry point, with options ------------------------------------------


@dataclass
class _Setting:
    name: str
    options: dict[str, Any]


#: The lab's stage module: a converter that tags units, and an entry that is not a stage.
LAB_STAGE = """
from avatar_mf.pipeline.frames import AnimationUnitFrame
from avatar_mf.pipeline.stage import StageBase


class Tag(StageBase):
    accepts = (AnimationUnitFrame,)

    def __init__(self, suffix):
        self.suffix = suffix

    async def process(self, frame):
        yield AnimationUnitFrame(frame.participant, frame.unit + self.suffix)


class Provider:
    def __init__(self, suffix="!"):
        self.suffix = suffix.encode()

    def open(self, context):
        return Tag(self.suffix)


def not_a_stage(**options):
    return object()
"""


@pytest.fixture
def lab_package(tmp_path: Path) -> Iterator[Path]:
    """An installed out-of-tree stage package (a dist-info with entry points on sys.path)."""
    groups = {
        "avatar_mf.stages.converter": {
            "tag": "labstage:Provider",
            "broken": "labstage:not_a_stage",
        }
    }
    with installed_package(tmp_path, "labstage", groups, module=LAB_STAGE) as root:
        yield root


async def test_a_lab_stage_is_found_by_entry_point_and_runs_in_pipeline_order(
    lab_package: Path,
) -> None:
    settings = {
        "converter": _Setting("tag", {"suffix": "+lab"}),
        "animation": _Setting("receiver", {}),
        "scene": _Setting("gltf", {}),
        "base_avatar": _Setting("", {}),  # off
    }
    stages = build_stages(settings, validator=validate_container)
    assert [s.kind for s in stages] == ["avatar_validation", "converter", "animation", "scene"]
    context = stage_context()
    out: list[Any] = []
    pipeline = SessionPipeline(
        [NamedStage(s.kind, s.name, s.provider.open(context)) for s in stages], out.append
    )
    pipeline.push(AnimationUnitFrame("p1", b"unit"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert [f.unit for f in out] == [b"unit+lab"]
    await pipeline.aclose()


async def test_a_bad_stage_name_or_factory_stops_the_node_with_the_setting_named(
    lab_package: Path,
) -> None:
    with pytest.raises(
        StageLoadError, match=r"pipeline.converter: 'nope'.*available: broken, standard, tag"
    ):
        build_stages({"converter": _Setting("nope", {})}, validator=validate_container)
    with pytest.raises(StageLoadError, match=r"pipeline.converter: 'broken'.*no open\(context\)"):
        build_stages({"converter": _Setting("broken", {})}, validator=validate_container)
    with pytest.raises(StageLoadError, match=r"pipeline.converter: 'tag'.*unexpected keyword"):
        build_stages({"converter": _Setting("tag", {"colour": 1})}, validator=validate_container)
