"""Uploads cannot exhaust the MF (issue 9): concurrent uploads are capped per session and per
node (``busy``), stalled ones time out on the injected clock, a duplicate transfer id is
``busy`` (the same offer again resumes), and what the store refuses is answered."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from avatar_mf.avatar_session.hub import AvatarHub, ConfiguredStage
from avatar_mf.avatar_session.session import AvatarSettings
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.protocol.transfer import TransferSender
from avatar_mf.stages.base_avatar.validation import UploadValidation
from avatar_mf.stages.scene.stage import RoomScenes
from avatar_mf.storage import Authorizer, AvatarCache, MemoryStore
from avatar_mf.testing.clock import FakeClock
from tests.avatar_session.test_avatar_hub import ListScene, Ue, settle

PAYLOAD = b"glTF" + bytes(range(256)) * 16  # 4100 bytes


def make_hub(clock: FakeClock, store: MemoryStore | None = None, **settings: Any) -> AvatarHub:
    store = store if store is not None else MemoryStore()
    return AvatarHub(
        clock=clock,
        executor=StageExecutor(workers=1),
        stages=[
            ConfiguredStage("avatar_validation", "builtin", UploadValidation(lambda d, t: None)),
            ConfiguredStage("scene", "list", RoomScenes(ListScene)),
        ],
        settings=AvatarSettings(**settings),
        store=store,
        authorizer=Authorizer(store, clock),
        cache=AvatarCache(store, clock),
    )


def sender(transfer_id: str, payload: bytes = PAYLOAD, **options: Any) -> TransferSender:
    return TransferSender(
        payload,
        transfer_id=transfer_id,
        max_message_size=1024,
        avatar_id="mine",
        stream_id=1000,
        **options,
    )


def answers(ue: Ue, transfer_id: str) -> list[tuple[str, Any]]:
    """(kind, detail) of the MF's answers about ``transfer_id``: accepts and failures."""
    out: list[tuple[str, Any]] = []
    for m in ue.json():
        if m.get("transferId") != transfer_id:
            continue
        if m["type"].endswith(":transfer:accept"):
            out.append(("accept", m["resumeFrom"]))
        elif m["type"].endswith(":transfer:failed"):
            out.append(("failed", m["code"]))
        elif m["type"].endswith(":transfer:complete"):
            out.append(("complete", None))
    return out


async def test_uploads_are_capped_per_session_and_per_node() -> None:
    hub = make_hub(FakeClock(), max_uploads_per_session=2, max_uploads_per_node=3)
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    b = Ue(hub, "c2", "sip:b@127.0.0.1")
    for name in ("a1", "a2", "a3"):
        a.send(sender(name).offer())
    assert [answers(a, n) for n in ("a1", "a2", "a3")] == [
        [("accept", 0)],
        [("accept", 0)],
        [("failed", "busy")],  # the session's third
    ]
    b.send(sender("b1").offer())
    b.send(sender("b2").offer())
    assert answers(b, "b1") == [("accept", 0)]
    assert answers(b, "b2") == [("failed", "busy")]  # the node's fourth

    upload = sender("a1")
    for chunk in upload.chunks():
        a.meta_service.on_message(chunk)
    await settle(lambda: ("complete", None) in answers(a, "a1"))
    b.send(sender("b3").offer())  # a slot of the node is free again
    assert answers(b, "b3") == [("accept", 0)]
    a.hang_up()
    b.hang_up()
    assert hub.uploads_in_progress == 0  # ending calls give their slots back
    await hub.aclose()


async def test_a_stalled_upload_times_out_and_frees_its_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    hub = make_hub(clock, upload_stall_timeout=30.0, upload_timeout=100.0)
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    upload = sender("slow")
    a.send(upload.offer())
    chunks = list(upload.chunks())
    a.meta_service.on_message(chunks[0])
    caplog.set_level(logging.INFO)
    clock.advance(29.0)
    assert answers(a, "slow") == [("accept", 0)]
    clock.advance(1.0)  # 30 s without a new byte
    assert answers(a, "slow") == [("accept", 0), ("failed", "timeout")]
    assert hub.uploads_in_progress == 0
    assert "no data for 30 s" in caplog.text
    a.meta_service.on_message(chunks[1])  # the transfer is gone
    assert [e["code"] for e in a.of_type(":error")] == ["unknown-transfer"]

    trickle = sender("trickle", PAYLOAD * 5)
    a.send(trickle.offer())
    for chunk in list(trickle.chunks())[:8]:  # a chunk every 20 s never stalls...
        a.meta_service.on_message(chunk)
        clock.advance(20.0)
    # ...but 100 s after the offer the transfer is over.
    assert answers(a, "trickle") == [("accept", 0), ("failed", "timeout")]
    assert "not complete 100 s after the offer" in caplog.text
    assert hub.uploads_in_progress == 0


async def test_a_duplicate_transfer_id_is_busy_and_the_same_offer_resumes() -> None:
    hub = make_hub(FakeClock())
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    upload = sender("dup")
    a.send(upload.offer())
    chunks = list(upload.chunks())
    a.meta_service.on_message(chunks[0])
    other = sender("dup", PAYLOAD[::-1])  # same id, other content
    a.send(other.offer())
    assert answers(a, "dup") == [("accept", 0), ("failed", "busy")]
    a.send(upload.offer())  # the very transfer again (a reconnection): resumed where it was
    assert answers(a, "dup")[-1] == ("accept", len(chunks[0]) - 12)
    for chunk in chunks[1:]:
        a.meta_service.on_message(chunk)
    await settle(lambda: ("complete", None) in answers(a, "dup"))
    assert hub.uploads_in_progress == 0


async def test_a_content_type_the_store_cannot_keep_is_refused_at_the_offer() -> None:
    hub = make_hub(FakeClock())
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    offer = sender("ct").offer()
    long_type = "model/" + "x" * 200  # a valid message (255 at most), too long for the store
    a.send(offer.model_copy(update={"content_type": long_type}))
    assert answers(a, "ct") == [("failed", "unsupported")]
    failed = a.of_type(":transfer:failed")[0]
    assert "media type" in failed["reason"]


async def test_an_upload_the_store_refuses_is_answered_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore(max_avatar_size=1024)  # the store's own limit, below the transfer's
    hub = make_hub(FakeClock(), store)
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    upload = sender("big")
    a.send(upload.offer())
    caplog.set_level(logging.INFO)
    for chunk in upload.chunks():
        a.meta_service.on_message(chunk)
    await settle(lambda: ("failed", "too-large") in answers(a, "big"))
    assert answers(a, "big") == [("accept", 0), ("failed", "too-large")]
    assert a.of_type(":avatar:selected") == [] and store.records == {}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    await hub.aclose()


def upload(ue: Ue, transfer_id: str, payload: bytes, content_type: str) -> None:
    """Offer ``payload`` and send all of it."""
    s = sender(transfer_id, payload, content_type=content_type)
    ue.send(s.offer())
    for chunk in s.chunks():
        ue.meta_service.on_message(chunk)


async def test_a_photo_over_the_photo_size_is_refused_before_any_byte() -> None:
    """A photo for ``avatar:generate`` larger than the generator takes is ``too-large`` at its
    offer (the transfer limit, for avatars, is far larger), an avatar of that size is not."""
    hub = make_hub(FakeClock(), max_photo_size=2000)
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    a.send(sender("big", PAYLOAD, content_type="image/jpeg").offer())
    a.send(sender("avatar", PAYLOAD).offer())
    assert answers(a, "big") == [("failed", "too-large")]
    assert answers(a, "avatar") == [("accept", 0)]
    (failed,) = [m for m in a.of_type(":transfer:failed") if m["transferId"] == "big"]
    assert "4100 bytes is over 2000" in failed["reason"]


async def test_kept_photos_are_bounded_per_node_and_given_back_when_a_call_ends() -> None:
    """All calls together keep at most ``max_photo_bytes_per_node`` bytes of photos: past it
    a complete photo is ``busy`` and not kept; replacing a photo or ending the call gives its
    bytes back."""
    hub = make_hub(FakeClock(), max_photo_bytes_per_node=2 * len(PAYLOAD))
    a = Ue(hub, "c1", "sip:a@127.0.0.1")
    b = Ue(hub, "c2", "sip:b@127.0.0.1")
    upload(a, "a1", PAYLOAD, "image/png")
    upload(a, "a1", PAYLOAD, "image/png")  # the same transfer id again: replaces, no more bytes
    upload(b, "b1", PAYLOAD, "image/png")
    await settle()
    assert answers(a, "a1")[-1] == ("complete", None)
    assert answers(b, "b1")[-1] == ("complete", None)
    upload(b, "b2", PAYLOAD, "image/png")
    await settle()
    assert answers(b, "b2")[-1] == ("failed", "busy")
    a.hang_up()
    await settle()
    upload(b, "b3", PAYLOAD, "image/png")
    await settle()
    assert answers(b, "b3")[-1] == ("complete", None)
    b.hang_up()
    await settle()
    await hub.aclose()
