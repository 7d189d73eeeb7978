"""Two-leg calls in the avatar hub: both legs join the room made for the pair (``room``),
not the room their Request-URI would name."""

from __future__ import annotations

import dataclasses

from avatar_mf.avatar_session.hub import METADATA, AvatarHub
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.testing.channels import RecordingChannel, channel_info
from avatar_mf.testing.clock import FakeClock


def join(hub: AvatarHub, call_id: str, request_uri: str, room: str = "") -> RecordingChannel:
    info = channel_info(
        subprotocol=METADATA, call_id=call_id, identity=f"sip:{call_id}@x", request_uri=request_uri
    )
    channel = RecordingChannel(dataclasses.replace(info, room=room))
    hub.services()[METADATA](channel)
    return channel


async def test_pair_legs_share_their_own_room_apart_from_the_uri_room() -> None:
    executor = StageExecutor(workers=1)
    hub = AvatarHub(clock=FakeClock(), executor=executor, stages=[])
    # UE1 dialled bob; UE2's leg has another Call-ID; a room call to sip:bob also exists.
    join(hub, "leg1", "sip:bob@ims.example.net", room="#pair-1")
    join(hub, "leg2", "sip:bob@ims.example.net", room="#pair-1")
    join(hub, "room-call", "sip:bob@ims.example.net")
    rooms = {s.call_id: s.participant.room.name for s in hub.sessions()}
    assert rooms == {"leg1": "#pair-1", "leg2": "#pair-1", "room-call": "bob"}
    pair = next(s for s in hub.sessions() if s.call_id == "leg1")
    assert [o.call_id for o in hub.others(pair)] == ["leg2"]
    for session in list(hub.sessions()):
        hub.release(session)
    await hub.aclose()
    executor.shutdown()
    assert len(hub.rooms) == 0
