"""The MF as the gateway in a room (in process: the hub, recording channels, a fake clock):
per-receiver animation conversion, base avatars in the format a receiver accepts, lossy
conversions noted in capabilities, and per-audience expression filters."""

from __future__ import annotations

import json
import time
from typing import Any

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX, VISEMES
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, decode_unit, encode_unit
from avatar_mf.avatar import build_glb, read_arf
from avatar_mf.avatar.check import check_common
from avatar_mf.avatar.validate import validate_container
from avatar_mf.avatar_session.hub import AvatarHub, ConfiguredStage
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.protocol.metadata import (
    ExpressionFilter,
    Hello,
    TransferAccept,
    new_message_id,
    parse_message,
)
from avatar_mf.protocol.transfer import TransferDone, TransferReceiver, TransferSender
from avatar_mf.stages.base_avatar.validation import UploadValidation
from avatar_mf.stages.conversion import StandardConverters
from avatar_mf.stages.scene.stage import RoomScenes
from avatar_mf.storage import Authorizer, AvatarCache, MemoryStore
from avatar_mf.testing.clock import FakeClock
from tests.avatar.samples import low_head
from tests.avatar_session.test_avatar_hub import ListScene, Ue, settle

ARF = "application/vnd.arf+zip"
GLB = "model/gltf-binary"
VIS = "ovr-visemes-15"
FACE = "arf-face-v1"


def make_hub(converters: StandardConverters | None = None) -> AvatarHub:
    store = MemoryStore()
    clock = FakeClock()
    stages = [ConfiguredStage("avatar_validation", "builtin", UploadValidation(validate_container))]
    if converters is not None:
        stages.append(ConfiguredStage("converter", "standard", converters))
    stages.append(ConfiguredStage("scene", "list", RoomScenes(ListScene)))
    return AvatarHub(
        clock=clock,
        executor=StageExecutor(workers=1),
        stages=stages,
        store=store,
        authorizer=Authorizer(store, FakeClock(start=time.time())),
        cache=AvatarCache(store, clock),
    )


def hello(ue: Ue, profiles: tuple[str, ...] = (), formats: tuple[str, ...] = ()) -> dict[str, Any]:
    ue.send(
        Hello(id=new_message_id(), role="both", animation_profiles=profiles, avatar_formats=formats)
    )
    return ue.of_type(":capabilities")[-1]


def units(ue: Ue) -> list[Any]:
    return [decode_unit(u) for u in ue.anim.sent]


def viseme_unit(ts: int, viseme: str, weight: float) -> bytes:
    return encode_unit(BlendshapeUnit(ts, 0, (VISEMES.index(viseme),), (weight,)))


async def test_viseme_sender_arkit_receiver_gets_arkit_units_following_the_visemes() -> None:
    hub = make_hub(StandardConverters())
    ue1 = Ue(hub, "c1", "sip:ue1@127.0.0.1")
    ue2 = Ue(hub, "c2", "sip:ue2@127.0.0.1")
    ue3 = Ue(hub, "c3", "sip:ue3@127.0.0.1")
    hello(ue1, profiles=(VIS,))
    caps2 = hello(ue2, profiles=(FACE,))
    hello(ue3)  # lists none: takes whatever comes
    assert caps2["animationProfiles"] == [FACE] and "refused" not in caps2 or not caps2["refused"]
    await settle()
    sent = [encode_unit(ConfigUnit(0, VIS, 1000.0))]
    aa_weights = [0.0, 0.3, 0.6, 1.0, 0.5, 0.0]
    sent += [viseme_unit(33 * (k + 1), "aa", w) for k, w in enumerate(aa_weights)]
    for unit in sent:
        ue1.anim_service.on_message(unit)
        await settle()
    got = units(ue2)
    assert got[0] == ConfigUnit(0, FACE, 1000.0)
    arkit = got[1:]
    assert len(arkit) == len(aa_weights)
    jaw = [u.weights[ARKIT_INDEX["jawOpen"]] for u in arkit]
    assert all(len(u.indices) == len(ARKIT_BLENDSHAPES) for u in arkit)
    # jawOpen follows the aa weight: zero when closed, rising and falling with it.
    assert jaw[0] == 0.0 and jaw[-1] == 0.0
    assert jaw[1] < jaw[2] < jaw[3] and jaw[3] > jaw[4]
    assert 0.5 <= jaw[3] <= 0.8
    assert [u.timestamp for u in arkit] == [33 * (k + 1) for k in range(len(aa_weights))]
    assert ue3.anim.sent == sent  # no conversion where none is needed
    assert ue1.anim.sent == []


async def test_a_receiver_taking_only_arf_gets_an_uploaded_glb_as_arf() -> None:
    converters = StandardConverters()
    hub = make_hub(converters)
    ue1 = Ue(hub, "c1", "sip:ue1@127.0.0.1")
    ue2 = Ue(hub, "c2", "sip:ue2@127.0.0.1")
    ue3 = Ue(hub, "c3", "sip:ue3@127.0.0.1")
    hello(ue1)
    caps = hello(ue2, formats=(ARF,))
    hello(ue3, formats=(GLB,))
    assert caps["avatarFormats"] == [ARF]
    glb = build_glb(low_head())
    upload = TransferSender(
        glb,
        transfer_id="up-1",
        max_message_size=65536,
        avatar_id="mine",
        stream_id=1000,
        content_type=GLB,
    )
    ue1.send(upload.offer())
    for chunk in upload.chunks():
        ue1.meta_service.on_message(chunk)
    await settle(
        lambda: bool(ue2.of_type(":transfer:offer")) and bool(ue3.of_type(":transfer:offer"))
    )

    def receive(ue: Ue) -> tuple[str, bytes]:
        offer_json = ue.of_type(":transfer:offer")[0]
        receiver = TransferReceiver(parse_message(json.dumps(offer_json)))  # type: ignore[arg-type]
        ue.send(TransferAccept(id=new_message_id(), transfer_id=offer_json["transferId"]))
        return offer_json["contentType"], receiver  # type: ignore[return-value]

    type2, rx2 = receive(ue2)
    type3, rx3 = receive(ue3)
    await settle(lambda: len([m for m in ue2.meta.sent if isinstance(m, bytes)]) > 0)
    await settle()
    done2 = [rx2.receive(c) for c in ue2.meta.sent if isinstance(c, bytes)][-1]  # type: ignore[attr-defined]
    done3 = [rx3.receive(c) for c in ue3.meta.sent if isinstance(c, bytes)][-1]  # type: ignore[attr-defined]
    assert isinstance(done2, TransferDone) and isinstance(done3, TransferDone)
    assert type2 == ARF and check_common(done2.payload).conforming
    assert read_arf(done2.payload).model.target_names == ARKIT_BLENDSHAPES
    assert type3 == GLB and done3.payload == glb  # a GLB receiver gets the upload as it is
    assert converters.avatars.stats.conversions == 1


async def test_capabilities_note_the_lossy_conversions_and_the_fallback_is_offered() -> None:
    hub = make_hub(StandardConverters())
    ue = Ue(hub, "c1", "sip:ue1@127.0.0.1")
    caps = hello(ue, profiles=(VIS, FACE), formats=("model/vrm",))
    assert caps["animationProfiles"] == [VIS, FACE]
    notes = {(n["kind"], n["source"], n["target"]) for n in caps["conversions"]}
    assert notes == {("animation", FACE, VIS), ("avatar", ARF, "model/vrm")}
    assert all(n["loses"] for n in caps["conversions"])
    everything = hello(ue)
    assert everything["animationProfiles"][0] == FACE and VIS in everything["animationProfiles"]
    assert everything["avatarFormats"][0] == ARF and "conversions" not in everything
    # Without a converter the MF still offers the common fallback, and notes nothing.
    plain = Ue(make_hub(None), "c9", "sip:x@127.0.0.1")
    caps = hello(plain, profiles=(VIS, FACE))
    assert caps["animationProfiles"] == [FACE] and "conversions" not in caps


async def test_the_owner_calms_its_expressions_for_one_receiver_of_three() -> None:
    hub = make_hub(StandardConverters())
    owner = Ue(hub, "c1", "sip:teacher@127.0.0.1")
    colleague = Ue(hub, "c2", "sip:colleague@127.0.0.1")
    pupil = Ue(hub, "c3", "sip:pupil@127.0.0.1")
    for ue in (owner, colleague, pupil):
        hello(ue, profiles=(FACE,))
    await settle()
    owner.send(ExpressionFilter(id="f1", audience=("p3",), filter={"clamp": 0.3}))
    await settle(lambda: bool(owner.of_type(":expression:filter:applied")))
    assert owner.of_type(":expression:filter:applied")[0]["inReplyTo"] == "f1"
    frames = [encode_unit(ConfigUnit(0, FACE, 1000.0))]
    source = []
    for k in range(10):
        weights = [((k + 1) * 0.1 * ((i % 5) + 1) / 5) for i in range(len(ARKIT_BLENDSHAPES))]
        source.append(weights)
        frames.append(encode_unit(BlendshapeUnit.dense(33 * k, weights)))
    for unit in frames:
        owner.anim_service.on_message(unit)
        await settle()
    assert colleague.anim.sent == frames  # the source, untouched
    calmed = units(pupil)
    assert calmed[0] == ConfigUnit(0, FACE, 1000.0)
    assert len(calmed) == len(frames)
    assert max(max(u.weights) for u in calmed[1:]) <= 0.3 + 1e-6
    assert max(max(w) for w in source) > 0.9  # the source did exceed the clamp
    # Changed during the call: freeze the pupil's view to neutral, then clear it.
    owner.send(ExpressionFilter(id="f2", audience=("p3",), filter={"neutral": True}))
    await settle(lambda: len(owner.of_type(":expression:filter:applied")) == 2)
    owner.anim_service.on_message(frames[-1])
    await settle()
    assert not any(units(pupil)[-1].weights)
    owner.send(ExpressionFilter(id="f3", audience=("p3",), filter=None))
    await settle(lambda: len(owner.of_type(":expression:filter:applied")) == 3)
    owner.anim_service.on_message(frames[-1])
    await settle()
    assert pupil.anim.sent[-1] == frames[-1]


async def test_operator_groups_policy_and_bad_filters() -> None:
    converters = StandardConverters(
        groups={"class": ["sip:pupil-*@127.0.0.1"]},
        policy=[{"audience": ["group:class"], "filter": {"suppress": ["jawOpen"]}}],
    )
    hub = make_hub(converters)
    owner = Ue(hub, "c1", "sip:teacher@127.0.0.1")
    pupil = Ue(hub, "c2", "sip:pupil-1@127.0.0.1")
    other = Ue(hub, "c3", "sip:parent@127.0.0.1")
    for ue in (owner, pupil, other):
        hello(ue)
    await settle()
    open_mouth = [0.0] * len(ARKIT_BLENDSHAPES)
    open_mouth[ARKIT_INDEX["jawOpen"]] = 0.9
    unit = encode_unit(BlendshapeUnit.dense(1, open_mouth))
    owner.anim_service.on_message(unit)
    await settle()
    assert units(pupil)[-1].weights[ARKIT_INDEX["jawOpen"]] == 0.0  # operator policy
    assert other.anim.sent == [unit]
    # The owner's own rule for the group wins over the operator's.
    owner.send(ExpressionFilter(id="f1", audience=("group:class",), filter={"clamp": 0.5}))
    await settle(lambda: bool(owner.of_type(":expression:filter:applied")))
    owner.anim_service.on_message(unit)
    await settle()
    assert units(pupil)[-1].weights[ARKIT_INDEX["jawOpen"]] == 0.5
    owner.send(ExpressionFilter(id="bad1", audience=("p2",), filter={"clamp": 7}))
    owner.send(ExpressionFilter(id="bad2", audience=("group:nobody",), filter={"neutral": True}))
    await settle(lambda: len(owner.of_type(":error")) == 2)
    assert [(e["code"], e["inReplyTo"]) for e in owner.of_type(":error")] == [
        ("bad-message", "bad1"),
        ("bad-message", "bad2"),
    ]


async def test_without_a_converter_a_filter_is_unsupported() -> None:
    hub = make_hub(None)
    owner = Ue(hub, "c1", "sip:teacher@127.0.0.1")
    owner.send(ExpressionFilter(id="f1", audience=("*",), filter={"neutral": True}))
    await settle(lambda: bool(owner.of_type(":error")))
    assert owner.of_type(":error")[0]["code"] == "unsupported"


async def test_a_late_joiner_gets_the_avatar_again_converted_after_its_hello() -> None:
    hub = make_hub(StandardConverters())
    ue1 = Ue(hub, "c1", "sip:ue1@127.0.0.1")
    hello(ue1)
    glb = build_glb(low_head())
    upload = TransferSender(
        glb,
        transfer_id="up-1",
        max_message_size=65536,
        avatar_id="mine",
        stream_id=1000,
        content_type=GLB,
    )
    ue1.send(upload.offer())
    for chunk in upload.chunks():
        ue1.meta_service.on_message(chunk)
    await settle(lambda: bool(ue1.of_type(":avatar:selected")))
    late = Ue(hub, "c2", "sip:late@127.0.0.1")  # offered at once, before its hello: as stored
    await settle(lambda: bool(late.of_type(":transfer:offer")))
    assert late.of_type(":transfer:offer")[0]["contentType"] == GLB
    hello(late, formats=(ARF,))
    await settle(lambda: len(late.of_type(":transfer:offer")) == 2)
    assert late.of_type(":transfer:offer")[1]["contentType"] == ARF
    hello(late, formats=(ARF,))  # the same again: nothing new to offer
    await settle()
    assert len(late.of_type(":transfer:offer")) == 2
