"""The avatar services of a room, sans-IO: recording channels, memory store, fake clock."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, decode_unit, encode_unit
from avatar_mf.avatar_session.hub import ANIMATION, METADATA, AvatarHub, ConfiguredStage
from avatar_mf.channels.base import ChannelService
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.pipeline.stage import StageContext
from avatar_mf.protocol.metadata import (
    AvatarSelect,
    Hello,
    SceneGet,
    TransferAccept,
    dump_message,
    new_message_id,
    parse_message,
)
from avatar_mf.protocol.transfer import TransferDone, TransferReceiver
from avatar_mf.stages.animation_data import AnimationPlan, TimedUnit
from avatar_mf.stages.animation_data.speech_stage import TextSpeechStage
from avatar_mf.stages.scene.stage import RoomScenes
from avatar_mf.storage import Authorizer, AvatarCache, MemoryStore
from avatar_mf.testing.channels import RecordingChannel, channel_info
from avatar_mf.testing.clock import FakeClock


class ListScene:
    """A minimal SceneManager: participants as a list of names."""

    def __init__(self, room: str) -> None:
        self.version = 1
        self.last: tuple[int, list[dict[str, Any]]] = (1, [])
        self.doc: dict[str, Any] = {"room": room, "participants": {}}

    def document(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.doc))  # type: ignore[no-any-return]

    def add_participant(
        self, participant: str, *, name: str, avatar_id: str | None
    ) -> list[dict[str, Any]]:
        self.doc["participants"][participant] = name
        self.version += 1
        return [{"op": "add", "path": f"/participants/{participant}", "value": name}]

    def remove_participant(self, participant: str) -> list[dict[str, Any]]:
        self.doc["participants"].pop(participant, None)
        self.version += 1
        return [{"op": "remove", "path": f"/participants/{participant}"}]

    def set_avatar(self, participant: str, avatar_id: str | None) -> list[dict[str, Any]]:
        self.version += 1
        return [{"op": "replace", "path": f"/{participant}/extras/avatarId", "value": avatar_id}]

    def apply(self, operations: list[dict[str, Any]], *, base_version: int, by: str) -> int:
        from avatar_mf.stages.scene import SceneError

        if base_version != self.version:
            raise SceneError("version-conflict", "stale")
        self.version += 1
        self.last = (self.version, operations)
        return self.version

    def history(self, since_version: int) -> list[tuple[int, list[dict[str, Any]]]] | None:
        return [self.last] if since_version == self.last[0] - 1 else None


class FakeSource:
    """An AnimationDataSource: one CONFIG and then one unit per frame for one second."""

    animation_inputs = ("text",)

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def plan_text(self, text: str, *, language: str, rate: float, start_tick: int) -> AnimationPlan:
        self.calls.append((text, start_tick))
        units = [TimedUnit(0.0, encode_unit(ConfigUnit(start_tick, "arf-face-v1", 1000.0)), True)]
        n = int(rate)
        for i in range(n):
            ts = start_tick + round(i * 1000 / rate)
            units.append(TimedUnit(i / rate, encode_unit(BlendshapeUnit.dense(ts, (i / n,)))))
        return AnimationPlan(tuple(units), duration=1.0)

    def open(self, context: StageContext) -> TextSpeechStage:
        return TextSpeechStage(self, context)


class Ue:
    """One call: its channels and services as the hub sees them."""

    def __init__(self, hub: AvatarHub, call: str, identity: str, room: str = "r") -> None:
        uri = f"sip:{room}@127.0.0.1"
        self.meta = RecordingChannel(
            channel_info(
                stream_id=1000,
                subprotocol=METADATA,
                call_id=call,
                identity=identity,
                request_uri=uri,
                max_message_size=65536,
            )
        )
        self.anim = RecordingChannel(
            channel_info(
                stream_id=1002,
                subprotocol=ANIMATION,
                call_id=call,
                identity=identity,
                request_uri=uri,
            )
        )
        services = hub.services()
        self.meta_service: ChannelService = services[METADATA](self.meta)
        self.anim_service: ChannelService = services[ANIMATION](self.anim)

    def send(self, message: Any) -> None:
        self.meta_service.on_message(dump_message(message))

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.meta.sent if isinstance(m, str)]

    def of_type(self, suffix: str) -> list[dict[str, Any]]:
        return [m for m in self.json() if m["type"].endswith(suffix)]

    def hang_up(self) -> None:
        self.anim_service.on_close()
        self.meta_service.on_close()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def make_hub(store: MemoryStore, clock: FakeClock, source: FakeSource | None = None) -> AvatarHub:
    stages = [ConfiguredStage("scene", "list", RoomScenes(ListScene))]
    if source is not None:
        stages.insert(0, ConfiguredStage("animation_data", "fake", source))
    return AvatarHub(
        clock=clock,
        executor=StageExecutor(workers=1),
        stages=stages,
        store=store,
        authorizer=Authorizer(store, FakeClock(start=time.time())),
        cache=AvatarCache(store, clock),
    )


async def settle(until: Any = None) -> None:
    """Let spawned tasks and executor jobs run (bounded: 2 s at most)."""
    if until is None:
        for _ in range(50):
            await asyncio.sleep(0)
        return
    for _ in range(200):
        await asyncio.sleep(0.01)
        if until():
            return
    raise AssertionError("condition not reached")


async def test_hello_gets_capabilities_and_bad_json_gets_an_error(store: MemoryStore) -> None:
    hub = make_hub(store, FakeClock())
    ue = Ue(hub, "c1", "sip:alice@127.0.0.1")
    ue.send(Hello(id="h1", role="both", animation="ue"))
    caps = ue.of_type(":capabilities")
    assert caps and caps[0]["inReplyTo"] == "h1"
    ue.meta_service.on_message('{"type": "urn:3gpp:avatar:v1:session:hello", "id": "x"')
    ue.meta_service.on_message('{"type": "urn:nope", "id": "x2"}')
    errors = ue.of_type(":error")
    assert [e["code"] for e in errors] == ["bad-json", "unknown-type"]
    assert errors[1]["inReplyTo"] == "x2"
    ue.send(Hello(id="h2", role="both", animation="ue"))  # still serving
    assert len(ue.of_type(":capabilities")) == 2


async def test_animation_units_reach_the_other_two_in_order(store: MemoryStore) -> None:
    hub = make_hub(store, FakeClock())
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    b = Ue(hub, "c2", "sip:b@127.0.0.1")
    c = Ue(hub, "c3", "sip:c@127.0.0.1")
    units = [encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0))]
    units += [encode_unit(BlendshapeUnit.dense(i * 33, (i / 10,))) for i in range(10)]
    for u in units:
        a.anim_service.on_message(u)
    assert b.anim.sent == units
    assert c.anim.sent == units
    assert a.anim.sent == []


async def test_bad_unit_is_answered_on_metadata_and_not_relayed(store: MemoryStore) -> None:
    hub = make_hub(store, FakeClock())
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    b = Ue(hub, "c2", "sip:b@127.0.0.1")
    a.anim_service.on_message(b"\x02\x00\x00\x00\x10\x00")  # lying length
    a.anim_service.on_message("text on a binary channel")
    assert b.anim.sent == []
    assert [e["code"] for e in a.of_type(":error")] == ["bad-unit", "bad-unit"]


async def test_join_and_leave_are_announced_and_scene_follows(store: MemoryStore) -> None:
    hub = make_hub(store, FakeClock())
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    b = Ue(hub, "c2", "sip:b@127.0.0.1")
    assert [m["participantId"] for m in a.of_type(":participant:joined")] == ["p2"]
    assert [m["participantId"] for m in b.of_type(":participant:joined")] == ["p1"]
    b.send(SceneGet(id="s1"))
    await settle()
    scene = b.of_type(":scene:description")[0]
    assert set(scene["document"]["participants"]) == {"p1", "p2"}
    b.hang_up()
    assert [m["participantId"] for m in a.of_type(":participant:left")] == ["p2"]
    assert hub.session_count == 1
    await hub.aclose()  # b's leaving ran through the scene stage: a got the change
    updates = a.of_type(":scene:updated")
    assert updates[-1]["operations"] == [{"op": "remove", "path": "/participants/p2"}]
    a.hang_up()
    assert hub.session_count == 0 and len(hub.rooms) == 0
    await hub.aclose()


async def test_selecting_someone_elses_avatar_is_refused(store: MemoryStore) -> None:
    hub = make_hub(store, FakeClock())
    record = await store.put(b"avatar-bytes" * 100, owner="sip:bob@127.0.0.1")
    a = Ue(hub, "c1", "sip:alice@127.0.0.1")
    a.send(AvatarSelect(id="sel", avatar_id=record.avatar_id))
    await settle()
    refused = a.of_type(":avatar:refused")
    assert refused and refused[0]["code"] == "not-owner" and refused[0]["inReplyTo"] == "sel"
    a.send(AvatarSelect(id="sel2", avatar_id="00000000-0000-4000-8000-000000000000"))
    await settle()
    assert a.of_type(":avatar:refused")[1]["code"] == "unknown-avatar"


async def test_owner_selects_and_every_other_ue_gets_it_once_loaded(store: MemoryStore) -> None:
    clock = FakeClock()
    hub = make_hub(store, clock)
    payload = bytes(range(256)) * 4000  # ~1 MB
    record = await store.put(payload, owner="sip:alice@127.0.0.1")
    alice = Ue(hub, "c1", "sip:alice@127.0.0.1")
    others = [Ue(hub, f"c{i}", f"sip:u{i}@127.0.0.1") for i in range(2, 5)]
    alice.send(AvatarSelect(id="sel", avatar_id=record.avatar_id))
    await settle()
    assert alice.of_type(":avatar:selected")[0]["avatarId"] == record.avatar_id
    assert store.blob_reads == 1  # one load for the whole room
    for ue in others:
        offer_json = ue.of_type(":transfer:offer")[0]
        offer = parse_message(json.dumps(offer_json))
        receiver = TransferReceiver(offer)  # type: ignore[arg-type]
        ue.send(TransferAccept(id=new_message_id(), transfer_id=offer_json["transferId"]))
        await settle()
        chunks = [m for m in ue.meta.sent if isinstance(m, bytes)]
        events = [receiver.receive(c) for c in chunks]
        assert isinstance(events[-1], TransferDone)
        assert events[-1].payload == payload


async def test_text_becomes_paced_units_for_the_others(store: MemoryStore) -> None:
    clock = FakeClock()
    source = FakeSource()
    hub = make_hub(store, clock, source)
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    b = Ue(hub, "c2", "sip:b@127.0.0.1")
    from avatar_mf.protocol.metadata import AnimationText

    a.send(AnimationText(id="t1", text="hello", language="en"))
    await settle(lambda: len(b.anim.sent) >= 2)
    assert len(b.anim.sent) == 2  # CONFIG and the unit due at t=0
    clock.advance(0.5)
    await settle()
    assert 15 <= len(b.anim.sent) <= 17  # paced in real time, not sent in a burst
    clock.advance(1.0)
    await settle()
    units = [decode_unit(u) for u in b.anim.sent]
    assert isinstance(units[0], ConfigUnit)
    assert len(units) == 31
    a.send(AnimationText(id="t2", text="again", language="en"))
    await settle(lambda: len(source.calls) == 2 and len(b.anim.sent) > 31)
    clock.advance(2.0)
    await settle()
    units = [decode_unit(u) for u in b.anim.sent]
    assert sum(isinstance(u, ConfigUnit) for u in units) == 1  # one stream, one CONFIG
    stamps = [u.timestamp for u in units[1:]]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert source.calls[1][1] > source.calls[0][1]


async def test_avatar_generate_in_a_call_stores_selects_and_delivers(store: MemoryStore) -> None:
    from avatar_mf.avatar.validate import validate_container
    from avatar_mf.protocol.metadata import AvatarGenerate
    from avatar_mf.stages.base_avatar.procedural import ProceduralGenerator

    clock = FakeClock()
    hub = AvatarHub(
        clock=clock,
        executor=StageExecutor(workers=1),
        stages=[
            ConfiguredStage("base_avatar", "procedural", ProceduralGenerator(resolution="low")),
            ConfiguredStage("scene", "list", RoomScenes(ListScene)),
        ],
        store=store,
        authorizer=Authorizer(store, FakeClock(start=time.time())),
        cache=AvatarCache(store, clock),
    )
    alice = Ue(hub, "c1", "sip:alice@127.0.0.1")
    bob = Ue(hub, "c2", "sip:bob@127.0.0.1")
    alice.send(AvatarGenerate(id="g1", name="me"))
    await settle(lambda: bool(bob.of_type(":transfer:offer")))
    selected = alice.of_type(":avatar:selected")[0]
    assert selected["inReplyTo"] == "g1"
    record = await store.get_record(selected["avatarId"])
    assert record.owner == "sip:alice@127.0.0.1"
    validate_container(await store.get_blob(record.avatar_id), record.content_type)
    assert bob.of_type(":transfer:offer")[0]["avatarId"] == record.avatar_id


async def test_requests_for_functions_the_node_lacks_are_refused(store: MemoryStore) -> None:
    from avatar_mf.protocol.metadata import AnimationImage, AnimationText, AvatarGenerate

    hub = AvatarHub(clock=FakeClock(), executor=StageExecutor(workers=1), stages=[], store=store)
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    a.send(AnimationText(id="t1", text="hi", language="en"))
    a.send(AvatarGenerate(id="g1"))
    a.send(SceneGet(id="s1"))
    a.send(AnimationImage(id="i1", content_type="image/png", data=b"iVBORw0KGgo="))
    await settle()
    errors = a.of_type(":error")
    assert [(e["code"], e["inReplyTo"]) for e in errors] == [
        ("unsupported", "t1"),
        ("unsupported", "g1"),
        ("unsupported", "s1"),
        ("unsupported", "i1"),
    ]


async def test_hello_is_negotiated_from_contact_tags_hello_and_configured_stages(
    store: MemoryStore,
) -> None:
    """Session wiring of A.1: an assisted UE on a node without network rendering is refused,
    so is a vendor-only format; asked text animation goes to the network; a new hello
    renegotiates."""
    from avatar_mf.sip.feature_tags import avatar_feature_tags

    hub = make_hub(store, FakeClock(), FakeSource())
    tags = avatar_feature_tags('<sip:ue@127.0.0.1>;+sip.3gpp-avatar-support="avatar-assisted"')
    meta = RecordingChannel(
        channel_info(
            stream_id=1000,
            subprotocol=METADATA,
            call_id="c1",
            avatar_tags=tags,
            identity="sip:a@127.0.0.1",
            request_uri="sip:r@127.0.0.1",
        )
    )
    service = hub.services()[METADATA](meta)
    service.on_message(
        dump_message(
            Hello(
                id="h1",
                role="both",
                avatar_formats=("model/x-vendor-avatar",),
                animation_data="network",
                animation_inputs=("text",),
            )
        )
    )
    service.on_message(dump_message(Hello(id="h2", role="both", animation="ue")))
    caps = [json.loads(m) for m in meta.sent if isinstance(m, str) and "capabilities" in m]
    first, second = caps
    assert first["inReplyTo"] == "h1"
    assert first["animation"] == "ue" and first["animationData"] == "network"
    refused = {r["function"]: r["code"] for r in first["refused"]}
    assert refused == {"animation": "unsupported", "avatarFormats": "no-common-format"}
    assert "avatar-assisted" in first["refused"][0]["reason"]
    assert second["inReplyTo"] == "h2" and second["animationData"] == "ue"
    assert any(r["code"] == "conflict" for r in second["refused"])  # assisted UE asks "ue"


async def test_selecting_an_avatar_names_it_in_the_owners_scene_node(store: MemoryStore) -> None:
    """Every UE learns whose node shows which avatar: the MF replaces the node's
    extras.avatarId in a scene updated message when the owner selects it."""
    hub = make_hub(store, FakeClock())
    record = await store.put(bytes(range(256)) * 8, owner="sip:alice@127.0.0.1")
    alice = Ue(hub, "c1", "sip:alice@127.0.0.1")
    bob = Ue(hub, "c2", "sip:bob@127.0.0.1")
    await settle()
    alice.send(AvatarSelect(id="sel", avatar_id=record.avatar_id))
    await settle(
        lambda: bool(bob.of_type(":scene:updated")) and len(alice.of_type(":scene:updated")) >= 2
    )
    for ue in (alice, bob):
        ops = [op for m in ue.of_type(":scene:updated") for op in m["operations"]]
        named = [op for op in ops if op["path"].endswith("/extras/avatarId")]
        assert named and named[-1]["value"] == record.avatar_id, ops
