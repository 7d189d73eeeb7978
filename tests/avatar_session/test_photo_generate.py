"""``avatar:generate`` with photos in a call (issue 14), sans-IO: the UE uploads a photo with
the transfer protocol, asks for generation, gets progress reports and the new avatar, which
the other participant is offered; refusals carry the face codes and the session goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from avatar_mf.avatar_session.hub import AvatarHub, ConfiguredStage
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.protocol.metadata import AvatarGenerate
from avatar_mf.protocol.transfer import TransferSender
from avatar_mf.stages.base_avatar.photo.generator import PhotoGenerator
from avatar_mf.stages.base_avatar.photo.images import encode_png
from avatar_mf.stages.scene.stage import RoomScenes
from avatar_mf.storage import Authorizer, AvatarCache, MemoryStore
from avatar_mf.testing.clock import FakeClock
from tests.avatar_session.test_avatar_hub import ListScene, Ue

ALICE = "sip:alice@127.0.0.1"


async def until(condition: Any, seconds: float = 20.0) -> None:
    """Let the executor's generation run (a few seconds of CPU on a loaded machine)."""
    for _ in range(int(seconds / 0.02)):
        await asyncio.sleep(0.02)
        if condition():
            return
    raise AssertionError("condition not reached")


def upload_photo(ue: Ue, transfer_id: str, picture: np.ndarray[Any, Any]) -> None:
    sender = TransferSender(
        encode_png(picture),
        transfer_id=transfer_id,
        max_message_size=65536,
        avatar_id="photo",
        stream_id=1000,
        content_type="image/png",
    )
    ue.send(sender.offer(message_id=f"{transfer_id}-offer"))
    for chunk in sender.chunks():
        ue.meta_service.on_message(chunk)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def generator() -> Iterator[PhotoGenerator]:
    generator = PhotoGenerator()
    yield generator
    generator.close()


@pytest.fixture
def hub(store: MemoryStore, generator: PhotoGenerator) -> AvatarHub:
    clock = FakeClock()
    return AvatarHub(
        clock=clock,
        executor=StageExecutor(workers=1),
        stages=[
            ConfiguredStage("base_avatar", "photo", generator),
            ConfiguredStage("scene", "list", RoomScenes(ListScene)),
        ],
        store=store,
        authorizer=Authorizer(store, FakeClock(start=time.time())),
        cache=AvatarCache(store, clock),
    )


async def test_generate_from_an_uploaded_photo(hub: AvatarHub, store: MemoryStore) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    alice = Ue(hub, "c1", ALICE)
    bob = Ue(hub, "c2", "sip:bob@127.0.0.1")
    # A photo without a face first: refused with its code, the session goes on.
    upload_photo(alice, "grey", np.full((480, 640, 3), 128, dtype=np.uint8))
    upload_photo(alice, "astro", np.ascontiguousarray(skimage_data.astronaut()))
    await until(lambda: len(alice.of_type(":transfer:complete")) == 2)
    assert not alice.of_type(":avatar:selected")  # a photo is not an avatar
    alice.send(AvatarGenerate(id="g0", photos=("grey",)))
    await until(lambda: bool(alice.of_type(":error")))
    (error,) = alice.of_type(":error")
    assert (error["code"], error["inReplyTo"]) == ("no-face", "g0")
    alice.send(AvatarGenerate(id="g9", photos=("never-sent",)))
    await until(lambda: len(alice.of_type(":error")) == 2)
    assert alice.of_type(":error")[1]["code"] == "unknown-transfer"

    alice.send(AvatarGenerate(id="g1", name="alice", photos=("astro",)))
    await until(lambda: bool(bob.of_type(":transfer:offer")))
    progress = [m for m in alice.of_type(":avatar:generate:progress") if m["inReplyTo"] == "g1"]
    percents = [m["percent"] for m in progress]
    assert percents == sorted(percents) and percents[-1] == 100 and len(percents) >= 4
    assert {"landmarks", "shape", "texture"} <= {m["stage"] for m in progress}
    (selected,) = [m for m in alice.of_type(":avatar:selected") if m.get("inReplyTo") == "g1"]
    record = await store.get_record(selected["avatarId"])
    assert record.owner == ALICE
    assert bob.of_type(":transfer:offer")[0]["avatarId"] == record.avatar_id


async def test_generate_from_the_calls_video(hub: AvatarHub, store: MemoryStore) -> None:
    """``source: video``: no picture of the call's video yet -> ``no-video``, the session goes
    on; once the call's video has pictures, the avatar is built from them."""
    from avatar_mf.codecs.video import Picture

    skimage_data = pytest.importorskip("skimage.data")
    alice = Ue(hub, "c1", ALICE)
    bob = Ue(hub, "c2", "sip:bob@127.0.0.1")
    alice.send(AvatarGenerate(id="v0", source="video"))
    await until(lambda: bool(alice.of_type(":error")))
    (error,) = alice.of_type(":error")
    assert (error["code"], error["inReplyTo"]) == ("no-video", "v0")

    picture = Picture.from_rgb(np.ascontiguousarray(skimage_data.astronaut()))
    for n in range(50):  # two seconds of video at 25/s
        hub.push_video("c1", picture, n * 3600, keyframe=n == 0)
    alice.send(AvatarGenerate(id="v1", name="alice", source="video"))
    await until(lambda: bool(bob.of_type(":transfer:offer")))
    (selected,) = [m for m in alice.of_type(":avatar:selected") if m.get("inReplyTo") == "v1"]
    record = await store.get_record(selected["avatarId"])
    assert record.owner == ALICE
    assert bob.of_type(":transfer:offer")[0]["avatarId"] == record.avatar_id
    # Bob's call has no video: his ask is refused, Alice's avatar stays.
    bob.send(AvatarGenerate(id="v2", source="video"))
    await until(lambda: bool(bob.of_type(":error")))
    assert bob.of_type(":error")[0]["code"] == "no-video"


def upload_png(ue: Ue, transfer_id: str, data: bytes) -> None:
    sender = TransferSender(
        data,
        transfer_id=transfer_id,
        max_message_size=65536,
        avatar_id="depth",
        stream_id=1001,
        content_type="image/png",
    )
    ue.send(sender.offer(message_id=f"{transfer_id}-offer"))
    for chunk in sender.chunks():
        ue.meta_service.on_message(chunk)


async def test_generate_with_a_depth_image(hub: AvatarHub, store: MemoryStore) -> None:
    """``depths`` names each photo's depth image (16-bit PNG) or null: a depth transfer not
    uploaded -> ``unknown-transfer``, one of another size than its photo -> ``bad-depth``; the
    session goes on and a matching one builds the avatar."""
    import io

    from PIL import Image

    skimage_data = pytest.importorskip("skimage.data")

    def depth_png(width: int, height: int) -> bytes:
        out = io.BytesIO()
        Image.fromarray(np.full((height, width), 650, dtype=np.uint16)).save(out, format="PNG")
        return out.getvalue()

    alice = Ue(hub, "c1", ALICE)
    upload_photo(alice, "astro", np.ascontiguousarray(skimage_data.astronaut()))
    upload_png(alice, "small", depth_png(256, 256))
    upload_png(alice, "depth", depth_png(512, 512))
    await until(lambda: len(alice.of_type(":transfer:complete")) == 3)
    alice.send(AvatarGenerate(id="d0", photos=("astro",), depths=("never-sent",)))
    await until(lambda: bool(alice.of_type(":error")))
    assert alice.of_type(":error")[0]["code"] == "unknown-transfer"
    alice.send(AvatarGenerate(id="d1", photos=("astro",), depths=("small",)))
    await until(lambda: len(alice.of_type(":error")) == 2)
    error = alice.of_type(":error")[1]
    assert (error["code"], error["inReplyTo"]) == ("bad-depth", "d1")
    alice.send(AvatarGenerate(id="d2", name="alice", photos=("astro",), depths=("depth",)))
    await until(lambda: bool(alice.of_type(":avatar:selected")))
    (selected,) = [m for m in alice.of_type(":avatar:selected") if m.get("inReplyTo") == "d2"]
    assert (await store.get_record(selected["avatarId"])).owner == ALICE
    assert len(alice.of_type(":error")) == 2


def test_depths_has_one_entry_per_photo() -> None:
    import json

    from avatar_mf.protocol.metadata import parse_message

    wire = {"type": "urn:3gpp:avatar:v1:avatar:generate", "id": "x", "photos": ["a", "b"],
            "depths": [None, "d"]}
    parsed = parse_message(json.dumps(wire))
    assert isinstance(parsed, AvatarGenerate) and parsed.depths == (None, "d")
    with pytest.raises(ValueError, match="one entry per photo"):
        AvatarGenerate(id="x", photos=("a",), depths=("d", None))
