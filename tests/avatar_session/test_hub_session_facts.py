"""What a call's record (CDR) says of its avatar session, whichever ends first: the session
(its data channels closed before the BYE) or the call."""

from __future__ import annotations

from avatar_mf.avatar_session.hub import AvatarHub, SessionFacts
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.testing.clock import FakeClock

from .test_hub_pair_rooms import join


async def test_a_session_released_before_its_call_ended_is_still_in_the_record() -> None:
    executor = StageExecutor(workers=1)
    hub = AvatarHub(clock=FakeClock(), executor=executor, stages=[])
    join(hub, "call-1", "sip:room7@mf.example.net")
    (session,) = hub.sessions()
    live = hub.facts_of("call-1")
    assert live == SessionFacts("room7", session.id, ())
    hub.release(session)  # the channels closed first
    assert hub.session_of("call-1") is None
    assert hub.facts_of("call-1") == live  # kept for the record
    assert hub.facts_of("call-1", forget=True) == live  # the call ended: the record takes it
    assert hub.facts_of("call-1") is None
    await hub.aclose()
    executor.shutdown()


async def test_a_session_released_after_its_record_leaves_nothing_behind() -> None:
    executor = StageExecutor(workers=1)
    hub = AvatarHub(clock=FakeClock(), executor=executor, stages=[])
    join(hub, "call-2", "sip:room8@mf.example.net")
    (session,) = hub.sessions()
    assert hub.facts_of("call-2", forget=True) == SessionFacts("room8", session.id, ())
    hub.release(session)  # the BYE came first: the record is already written
    assert hub.facts_of("call-2") is None
    assert hub.facts_of("unknown", forget=True) is None
    await hub.aclose()
    executor.shutdown()
