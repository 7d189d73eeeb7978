"""Several animation-data stages on one node, chosen per session by the negotiation (issue 13).

Sans-IO: the selection rule itself, the node's stage list built from the list form, and a hub
with text, voice and camera stages (recording fakes that declare the inputs the real ones do)
whose sessions each get the stage(s) their hello agreed; the real voice stage falls silent
when a new hello takes voice away (fake clock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, decode_unit, encode_unit
from avatar_mf.avatar.validate import validate_container
from avatar_mf.avatar_session.hub import AvatarHub, ConfiguredStage
from avatar_mf.avatar_session.selection import Offer, select
from avatar_mf.codecs.video import Picture
from avatar_mf.config import AppConfig
from avatar_mf.node.stages import StageLoadError, build_stages, stage_settings
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.pipeline.frames import AnimationUnitFrame, AudioIn, Frame, ImageInput, VideoIn
from avatar_mf.pipeline.stage import StageBase, StageContext
from avatar_mf.protocol.metadata import AnimationImage, AnimationText, Hello
from avatar_mf.stages.scene.stage import RoomScenes
from avatar_mf.storage import Authorizer, AvatarCache, MemoryStore
from avatar_mf.testing.clock import FakeClock
from tests.stages.lab_packages import installed_package

from ..avatar_session.test_avatar_hub import FakeSource, ListScene, Ue, settle

OFFERS = (
    Offer("text", ("text",)),
    Offer("voice", ("voice",)),
    Offer("camera", ("video", "images")),
)

# --------------------------------------------------------------------------- the rule


def test_a_session_gets_the_stages_of_the_inputs_its_hello_agreed() -> None:
    voice = select(OFFERS, ("voice",))
    assert (voice.stages, voice.inputs) == (("voice",), frozenset({"voice"}))
    assert voice.allows("voice") and not voice.allows("text") and not voice.allows("video")
    assert select(OFFERS, ("text",)).stages == ("text",)
    assert select(OFFERS, ("video",)).stages == ("camera",)
    assert select(OFFERS, ("images", "text")).stages == ("text", "camera")  # configured order
    nothing = select(OFFERS, ())
    assert nothing.stages == () and not any(
        nothing.allows(i) for i in ("text", "voice", "video", "images")
    )


def test_before_a_hello_only_explicit_requests_are_served() -> None:
    before = select(OFFERS, None)
    assert before.stages == ("text", "camera") and not before.negotiated
    assert before.allows("text") and before.allows("images")
    assert not before.allows("voice") and not before.allows("video")
    assert before.takes(AudioIn) is False and before.takes(ImageInput) is True


def test_an_input_no_stage_declares_is_not_gated() -> None:
    only_text = select((Offer("text", ("text",)),), ())
    assert not only_text.allows("text")
    assert only_text.allows("voice") and only_text.takes(AudioIn)  # a lab's own stage's
    assert select((), ()).takes(VideoIn)


# --------------------------------------------------------------------------- building


def _pipeline(**animation_data: Any) -> Any:
    config = AppConfig.model_validate({"pipeline": {"animation_data": animation_data}})
    return stage_settings(config.pipeline)


def test_the_list_form_builds_every_stage_in_order() -> None:
    stages = build_stages(
        _pipeline(names=["text", "voice", "camera"], options={"camera": {"max_rate": 15.0}}),
        validator=validate_container,
    )
    data = [s for s in stages if s.kind == "animation_data"]
    assert [s.name for s in data] == ["text", "voice", "camera"]
    assert [tuple(s.provider.animation_inputs) for s in data] == [  # type: ignore[attr-defined]
        ("text",),
        ("voice",),
        ("video", "images"),
    ]
    assert data[2].provider.max_rate == 15.0  # type: ignore[attr-defined]
    single = build_stages(_pipeline(name="voice"), validator=validate_container)
    assert [s.name for s in single if s.kind == "animation_data"] == ["voice"]


def test_a_listed_stage_that_cannot_be_built_is_left_out_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="avatar_mf.node.stages"):
        stages = build_stages(
            _pipeline(names=["text", "voice"], options={"voice": {"timescale": -1.0}}),
            validator=validate_container,
        )
    assert [s.name for s in stages if s.kind == "animation_data"] == ["text"]
    (record,) = caplog.records
    assert "pipeline.animation_data.names" in record.getMessage()
    assert "'voice'" in record.getMessage() and "timescale" in record.getMessage()


#: A lab's own animation-data stage module that also takes text.
LAB_TEXT = """
from avatar_mf.pipeline.stage import StageBase

class Provider:
    animation_inputs = ("text",)

    def open(self, context):
        return StageBase()
"""


@pytest.fixture
def lab_package(tmp_path: Path) -> Iterator[Path]:
    """A lab's own animation-data stage that also takes text, installed by entry point."""
    groups = {"avatar_mf.stages.animation_data": {"labtext": "labtext:Provider"}}
    with installed_package(tmp_path, "labtext", groups, module=LAB_TEXT) as root:
        yield root


def test_two_stages_taking_one_input_stop_the_node(lab_package: Path) -> None:
    with pytest.raises(
        StageLoadError,
        match=r"pipeline.animation_data.names: 'text' and 'labtext' both take the text input",
    ):
        build_stages(_pipeline(names=["text", "labtext"]), validator=validate_container)
    stages = build_stages(_pipeline(names=["labtext", "voice"]), validator=validate_container)
    assert [s.name for s in stages if s.kind == "animation_data"] == ["labtext", "voice"]


# --------------------------------------------------------------------------- per session


class Recorder(StageBase):
    """Records what it takes and answers each frame with one unit from its participant."""

    def __init__(self, accepts: tuple[type[Frame], ...], seen: list[Frame]) -> None:
        self.accepts = accepts
        self.seen = seen

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        self.seen.append(frame)
        unit = encode_unit(BlendshapeUnit.dense(len(self.seen), (0.5,)))
        yield AnimationUnitFrame(frame.participant, unit)


class VoiceLike:
    animation_inputs = ("voice",)

    def __init__(self) -> None:
        self.seen: list[Frame] = []

    def open(self, context: StageContext) -> Recorder:
        return Recorder((AudioIn,), self.seen)


class CameraLike:
    animation_inputs = ("video", "images")

    def __init__(self) -> None:
        self.seen: list[Frame] = []

    def open(self, context: StageContext) -> Recorder:
        return Recorder((VideoIn, ImageInput), self.seen)


def _hub(store: MemoryStore, clock: FakeClock, *data: ConfiguredStage) -> AvatarHub:
    return AvatarHub(
        clock=clock,
        executor=StageExecutor(workers=1),
        stages=[*data, ConfiguredStage("scene", "list", RoomScenes(ListScene))],
        store=store,
        authorizer=Authorizer(store, FakeClock(start=time.time())),
        cache=AvatarCache(store, clock),
    )


@pytest.fixture
def three() -> tuple[FakeSource, VoiceLike, CameraLike]:
    return FakeSource(), VoiceLike(), CameraLike()


def hello(ue: Ue, *inputs: str, n: int = 1) -> dict[str, Any]:
    ue.send(Hello(id=f"h{n}", role="both", animation_inputs=inputs))
    caps = ue.of_type("capabilities")
    assert len(caps) == n
    return caps[-1]


def errors(ue: Ue) -> list[tuple[str, str]]:
    return [(e["code"], e.get("inReplyTo")) for e in ue.of_type(":error")]


PICTURE = Picture(16, 16, bytes(16 * 16 * 3 // 2))


async def test_each_session_gets_the_stage_its_hello_agreed(
    three: tuple[FakeSource, VoiceLike, CameraLike],
) -> None:
    text, voice, camera = three
    store, clock = MemoryStore(), FakeClock()
    hub = _hub(
        store,
        clock,
        ConfiguredStage("animation_data", "text", text),
        ConfiguredStage("animation_data", "voice", voice),
        ConfiguredStage("animation_data", "camera", camera),
    )
    a = Ue(hub, "ca", "sip:a@127.0.0.1")
    b = Ue(hub, "cb", "sip:b@127.0.0.1")
    c = Ue(hub, "cc", "sip:c@127.0.0.1")
    listener = Ue(hub, "cl", "sip:l@127.0.0.1")
    assert hello(a, "voice")["animationInputs"] == ["voice"]
    assert hello(b, "text")["animationInputs"] == ["text"]
    assert hello(c, "video", "images")["animationInputs"] == ["video", "images"]
    assert hello(listener)["animationData"] == "ue"
    sessions = {ue: hub.session_of(call) for ue, call in ((a, "ca"), (b, "cb"), (c, "cc"))}
    assert [s.selection.stages for s in sessions.values() if s] == [
        ("voice",),
        ("text",),
        ("camera",),
    ]
    assert [hub.wants_audio(call) for call in ("ca", "cb", "cc", "cl")] == [
        True,
        False,
        False,
        False,
    ]
    for call in ("ca", "cb", "cc", "cl"):  # every call carries voice and video
        hub.push_audio(call, b"\x00" * 640, 160, 8000)
        hub.push_video(call, PICTURE, 3000, keyframe=True)
    b.send(AnimationText(id="t-b", text="hi", language="en"))
    a.send(AnimationText(id="t-a", text="hi", language="en"))
    c.send(AnimationImage(id="i-c", content_type="image/jpeg", data=b"AAAA"))
    a.send(AnimationImage(id="i-a", content_type="image/jpeg", data=b"AAAA"))
    await settle(lambda: len(text.calls) == 1 and voice.seen and len(camera.seen) == 2)
    await settle()
    assert {f.participant for f in voice.seen} == {sessions[a].id}  # type: ignore[union-attr]
    assert len(voice.seen) == 1
    assert [(type(f), f.participant) for f in camera.seen] == [
        (VideoIn, sessions[c].id),  # type: ignore[union-attr]
        (ImageInput, sessions[c].id),  # type: ignore[union-attr]
    ]
    assert [t for t, _ in text.calls] == ["hi"]  # b's, not a's
    assert errors(a) == [("unsupported", "t-a"), ("unsupported", "i-a")]
    assert errors(b) == errors(c) == errors(listener) == []
    reason = next(e["message"] for e in a.of_type(":error"))
    assert "did not agree the text animation input (agreed: voice)" in reason
    # The listener got units made from a's voice, b's text and c's camera.
    units = [decode_unit(u) for u in listener.anim.sent]
    assert any(isinstance(u, ConfigUnit) for u in units)  # the text stream's
    assert sum(isinstance(u, BlendshapeUnit) for u in units) >= 3
    for ue in (a, b, c, listener):
        ue.hang_up()
    await hub.aclose()


async def test_before_a_hello_text_and_images_are_served_voice_and_video_not(
    three: tuple[FakeSource, VoiceLike, CameraLike],
) -> None:
    text, voice, camera = three
    hub = _hub(
        MemoryStore(),
        FakeClock(),
        ConfiguredStage("animation_data", "text", text),
        ConfiguredStage("animation_data", "voice", voice),
        ConfiguredStage("animation_data", "camera", camera),
    )
    a = Ue(hub, "ca", "sip:a@127.0.0.1")
    assert not hub.wants_audio("ca")
    hub.push_audio("ca", b"\x00" * 640, 160, 8000)
    hub.push_video("ca", PICTURE, 3000, keyframe=True)
    a.send(AnimationText(id="t1", text="hi", language="en"))
    a.send(AnimationImage(id="i1", content_type="image/jpeg", data=b"AAAA"))
    await settle(lambda: text.calls and camera.seen)
    await settle()
    assert voice.seen == [] and [type(f) for f in camera.seen] == [ImageInput]
    assert errors(a) == []
    a.hang_up()
    await hub.aclose()


async def test_voice_and_video_both_asked_video_drives_the_face(
    three: tuple[FakeSource, VoiceLike, CameraLike],
) -> None:
    text, voice, camera = three
    hub = _hub(
        MemoryStore(),
        FakeClock(),
        ConfiguredStage("animation_data", "voice", voice),
        ConfiguredStage("animation_data", "camera", camera),
    )
    a = Ue(hub, "ca", "sip:a@127.0.0.1")
    caps = hello(a, "voice", "video")
    assert caps["animationInputs"] == ["video"]
    assert [(r["function"], r["requested"], r["code"]) for r in caps["refused"]] == [
        ("animationInputs", "voice", "conflict")
    ]
    session = hub.session_of("ca")
    assert session is not None and session.selection.stages == ("camera",)
    assert not hub.wants_audio("ca")
    # A new hello selects again from scratch: voice alone now.
    assert hello(a, "voice", n=2)["animationInputs"] == ["voice"]
    assert session.selection.stages == ("voice",) and hub.wants_audio("ca")
    a.hang_up()
    await hub.aclose()


async def test_a_session_that_agreed_no_input_gets_no_units(
    three: tuple[FakeSource, VoiceLike, CameraLike],
) -> None:
    text, voice, camera = three
    hub = _hub(
        MemoryStore(),
        FakeClock(),
        ConfiguredStage("animation_data", "text", text),
        ConfiguredStage("animation_data", "voice", voice),
        ConfiguredStage("animation_data", "camera", camera),
    )
    a = Ue(hub, "ca", "sip:a@127.0.0.1")
    b = Ue(hub, "cb", "sip:b@127.0.0.1")
    assert hello(a)["animationInputs"] == []
    hub.push_audio("ca", b"\x00" * 640, 160, 8000)
    hub.push_video("ca", PICTURE, 3000, keyframe=True)
    a.send(AnimationText(id="t1", text="hi", language="en"))
    a.send(AnimationImage(id="i1", content_type="image/jpeg", data=b"AAAA"))
    await settle(lambda: len(errors(a)) == 2)
    await settle()
    assert text.calls == [] and voice.seen == [] and camera.seen == []
    assert b.anim.sent == []
    assert hub.session_of("ca").selection.stages == ()  # type: ignore[union-attr]
    a.hang_up()
    b.hang_up()
    await hub.aclose()


async def test_the_voice_stage_falls_silent_when_a_new_hello_takes_voice_away() -> None:
    """The real voice stage: its no-audio timer keeps a session's face alive while packets
    stop, but makes nothing once the session's hello no longer agrees voice."""
    from avatar_mf.stages.voice.stage import VoiceToAnimation

    clock = FakeClock()
    hub = _hub(MemoryStore(), clock, ConfiguredStage("animation_data", "voice", VoiceToAnimation()))
    a = Ue(hub, "ca", "sip:a@127.0.0.1")
    b = Ue(hub, "cb", "sip:b@127.0.0.1")
    hello(a, "voice")
    tone = (np.sin(np.arange(320) * 2 * np.pi * 200 / 16000) * 8000).astype("<i2").tobytes()
    for n in range(25):  # 0.5 s of voice
        hub.push_audio("ca", tone, n * 320, 16000)
        clock.advance(0.02)
        await settle()
    await settle(lambda: len(b.anim.sent) > 10)
    spoken = len(b.anim.sent)
    for _ in range(20):  # 1 s without packets: the timer keeps the face moving
        clock.advance(0.05)
        await settle()
    relaxing = len(b.anim.sent)
    assert relaxing >= spoken + 2 * 20  # a BLENDSHAPE and a JOINT unit per frame
    assert hub.session_of("ca").selection.stages == ("voice",)  # type: ignore[union-attr]
    hello(a, n=2)  # voice no longer agreed
    for _ in range(20):
        clock.advance(0.05)
        await settle()
    assert hub.session_of("ca").selection.stages == ()  # type: ignore[union-attr]
    assert len(b.anim.sent) == relaxing
    a.hang_up()
    b.hang_up()
    await hub.aclose()


async def test_an_input_of_a_stage_left_out_is_not_agreed() -> None:
    """The voice stage failed to load (bad options): the node does not agree voice, and the
    text stage still serves its sessions."""
    stages = build_stages(
        _pipeline(names=["text", "voice"], options={"voice": {"timescale": -1.0}}),
        validator=validate_container,
    )
    hub = _hub(MemoryStore(), FakeClock(), *[s for s in stages if s.kind == "animation_data"])
    a = Ue(hub, "ca", "sip:a@127.0.0.1")
    caps = hello(a, "voice", "text")
    assert caps["animationInputs"] == ["text"]
    assert [(r["function"], r["requested"], r["code"]) for r in caps["refused"]] == [
        ("animationInputs", "voice", "unsupported")
    ]
    assert hub.session_of("ca").selection.stages == ("text",)  # type: ignore[union-attr]
    assert not hub.wants_audio("ca")
    a.hang_up()
    await hub.aclose()
