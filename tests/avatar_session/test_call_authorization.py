"""TS 22.156 R-7.2.3-002/004: the right to use an avatar holds for the whole call.

A grantee's avatar is checked at every delivery (a participant joining later, each transfer
accept that starts or resumes one) against the receiving party, and withdrawn when its grant
expires (a timer on the injected clock) or is revoked (a store change, seen at the next
re-check). Sans-IO: recording channels, the memory store, one fake clock that is both the
loop clock and the authorizer's wall clock.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from avatar_mf.avatar_session.hub import AvatarHub, ConfiguredStage
from avatar_mf.avatar_session.session import AvatarSettings
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.protocol.metadata import AvatarSelect, TransferAccept, new_message_id
from avatar_mf.stages.scene.stage import RoomScenes
from avatar_mf.storage import Authorizer, AvatarCache, MemoryStore
from avatar_mf.testing.clock import FakeClock
from tests.avatar_session.test_avatar_hub import ListScene, Ue, settle

START = 1_800_000_000.0  # a UNIX time: the authorizer judges grants on the same clock
ALICE = "sip:alice@127.0.0.1"
BOB = "sip:bob@127.0.0.1"
CAROL = "sip:carol@127.0.0.1"
DAVE = "sip:dave@127.0.0.1"
RECHECK = 10.0


class Room:
    """A hub whose loop clock and authorizer clock are one fake clock."""

    def __init__(self) -> None:
        self.clock = FakeClock(start=START)
        self.store = MemoryStore(clock=self.clock)
        self.authorizer = Authorizer(self.store, self.clock)
        self.hub = AvatarHub(
            clock=self.clock,
            executor=StageExecutor(workers=1),
            stages=[ConfiguredStage("scene", "list", RoomScenes(ListScene))],
            settings=AvatarSettings(grant_recheck_interval=RECHECK),
            store=self.store,
            authorizer=self.authorizer,
            cache=AvatarCache(self.store, self.clock),
        )

    def ue(self, call: str, identity: str) -> Ue:
        return Ue(self.hub, call, identity)

    async def alices_avatar(self) -> str:
        record = await self.store.put(b"glTF" + bytes(range(256)) * 40, owner=ALICE)
        return record.avatar_id


def offers(ue: Ue, avatar_id: str) -> list[dict[str, Any]]:
    return [m for m in ue.of_type(":transfer:offer") if m["avatarId"] == avatar_id]


def refusals(ue: Ue, avatar_id: str) -> list[str]:
    return [m["code"] for m in ue.of_type(":avatar:refused") if m["avatarId"] == avatar_id]


def chunks(ue: Ue) -> list[bytes]:
    return [m for m in ue.meta.sent if isinstance(m, bytes)]


async def bob_selects(room: Room, bob: Ue, avatar_id: str) -> None:
    bob.send(AvatarSelect(id="sel", avatar_id=avatar_id))
    await settle()
    assert bob.of_type(":avatar:selected"), bob.json()


async def test_a_late_joiner_outside_the_allow_list_does_not_get_the_avatar(
    caplog: pytest.LogCaptureFixture,
) -> None:
    room = Room()
    avatar_id = await room.alices_avatar()
    await room.authorizer.grant(
        avatar_id, grantee=BOB, granted_by=ALICE, expires=START + 3600, allow_parties=[CAROL]
    )
    bob = room.ue("c1", BOB)
    carol = room.ue("c2", CAROL)
    await bob_selects(room, bob, avatar_id)
    assert len(offers(carol, avatar_id)) == 1  # allowed: delivered

    caplog.set_level(logging.INFO)
    dave = room.ue("c3", DAVE)  # joins afterwards; not on the allow-list
    await settle()
    assert offers(dave, avatar_id) == []
    assert refusals(dave, avatar_id) == ["party-not-allowed"]
    assert [e["code"] for e in bob.of_type(":error")] == ["party-not-allowed"]
    assert "not delivered to sip:dave@127.0.0.1" in caplog.text
    # An accept naming a transfer dave was never offered gets nothing of the avatar.
    dave.send(
        TransferAccept(id=new_message_id(), transfer_id=offers(carol, avatar_id)[0]["transferId"])
    )
    await settle()
    assert chunks(dave) == []


async def test_the_owner_delivers_to_late_joiners_without_a_grant() -> None:
    room = Room()
    avatar_id = await room.alices_avatar()
    alice = room.ue("c1", ALICE)
    alice.send(AvatarSelect(id="sel", avatar_id=avatar_id))
    await settle()
    dave = room.ue("c2", DAVE)
    await settle()
    assert len(offers(dave, avatar_id)) == 1
    room.clock.advance(10 * RECHECK)  # nothing to re-check for an owner
    await settle()
    assert refusals(dave, avatar_id) == [] and refusals(alice, avatar_id) == []


async def test_an_expiring_grant_withdraws_the_avatar_at_its_expiry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    room = Room()
    avatar_id = await room.alices_avatar()
    await room.authorizer.grant(avatar_id, grantee=BOB, granted_by=ALICE, expires=START + 25)
    bob = room.ue("c1", BOB)
    carol = room.ue("c2", CAROL)
    await bob_selects(room, bob, avatar_id)
    (offer,) = offers(carol, avatar_id)

    caplog.set_level(logging.INFO)
    room.clock.advance(24.9)  # two re-checks pass, the grant still holds
    await settle()
    assert refusals(bob, avatar_id) == [] and refusals(carol, avatar_id) == []
    room.clock.advance(0.2)  # at the expiry (+1 ms), not at the next re-check (30 s)
    await settle()
    assert refusals(bob, avatar_id) == ["grant-expired"]
    assert refusals(carol, avatar_id) == ["grant-expired"]
    failed = carol.of_type(":transfer:failed")
    assert [(f["transferId"], f["code"]) for f in failed] == [
        (offer["transferId"], "grant-expired")
    ]
    assert "withdrawn" in caplog.text and "grant-expired" in caplog.text

    # The offer is gone: accepting it now gets no chunk.
    carol.send(TransferAccept(id=new_message_id(), transfer_id=offer["transferId"]))
    await settle()
    assert chunks(carol) == []
    assert [e["code"] for e in carol.of_type(":error")] == ["unknown-transfer"]
    # A participant joining after the expiry is told of bob without the avatar.
    dave = room.ue("c3", DAVE)
    await settle()
    joined = [m for m in dave.of_type(":participant:joined") if m["participantId"] == "p1"]
    assert joined and "avatarId" not in joined[0]
    assert offers(dave, avatar_id) == []


async def test_a_revocation_stops_a_transfer_in_progress_at_the_next_recheck() -> None:
    room = Room()
    avatar_id = await room.alices_avatar()
    grant = await room.authorizer.grant(
        avatar_id, grantee=BOB, granted_by=ALICE, expires=START + 3600
    )
    bob = room.ue("c1", BOB)
    carol = room.ue("c2", CAROL)
    await bob_selects(room, bob, avatar_id)
    (offer,) = offers(carol, avatar_id)
    carol.meta.buffered = 10**9  # carol's channel is full: the transfer waits for it
    carol.send(TransferAccept(id=new_message_id(), transfer_id=offer["transferId"]))
    await settle()
    assert chunks(carol) == []

    await room.authorizer.revoke(grant.grant_id)  # a change in the store, no signal
    room.clock.advance(RECHECK)
    await settle()
    assert refusals(bob, avatar_id) == ["grant-revoked"]
    carol.meta.buffered = 0  # the channel drains: the refusal comes, no chunk of the avatar
    room.clock.advance(1.0)
    await settle()
    assert refusals(carol, avatar_id) == ["grant-revoked"]
    assert [f["code"] for f in carol.of_type(":transfer:failed")] == ["grant-revoked"]
    assert chunks(carol) == []


async def test_a_transfer_started_or_resumed_after_a_revocation_is_refused() -> None:
    """Each accept is a delivery: checked even before the session's next re-check."""
    room = Room()
    avatar_id = await room.alices_avatar()
    grant = await room.authorizer.grant(
        avatar_id, grantee=BOB, granted_by=ALICE, expires=START + 3600
    )
    bob = room.ue("c1", BOB)
    carol = room.ue("c2", CAROL)
    await bob_selects(room, bob, avatar_id)
    (offer,) = offers(carol, avatar_id)
    await room.authorizer.revoke(grant.grant_id)
    carol.send(TransferAccept(id=new_message_id(), transfer_id=offer["transferId"], resume_from=4))
    await settle()
    assert chunks(carol) == []
    assert [f["code"] for f in carol.of_type(":transfer:failed")] == ["grant-revoked"]
    assert refusals(carol, avatar_id) == ["grant-revoked"]
