"""An ended call leaves no reference cycle: reference counting frees it, not the collector.

Each flow runs against a fresh :class:`UaHarness` with the cyclic garbage collector off; once
the harness and what only the test doubles keep are dropped, every :class:`Call` must already be
gone. Cyclic garbage per call made full collections pause the MF's event loop for hundreds of
milliseconds under load (docs/performance.md, "SIP call rate").
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from avatar_mf.testing.sip import FakeSessionFactory, UacDialogState, UaHarness
from avatar_mf.ua.user_agent import Call

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()

Flow = Callable[[UaHarness], Awaitable[None]]


async def _bye(mf: UaHarness) -> None:
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    await mf.deliver(ue.bye())


async def _cancel(mf: UaHarness) -> None:
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    await mf.deliver(ue.cancel())  # the answer task is cancelled while the media is set up
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))


async def _media_failure(mf: UaHarness) -> None:
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    mf.sessions.sessions[0].fail("DTLS setup timeout")  # the MF ends the call with BYE
    await mf.settle()
    [bye] = mf.wire.requests("BYE")
    await mf.deliver(ue.reply(bye, 200))


async def _no_ack(mf: UaHarness) -> None:
    ue = UacDialogState()
    await mf.call(ue, OFFER, ack=False)
    await mf.advance(64 * mf.timers.t1, step=mf.timers.t2)


@pytest.mark.parametrize("flow", [_bye, _cancel, _media_failure, _no_ack])
async def test_ended_call_is_freed_by_reference_counting(flow: Flow) -> None:
    ended: list[weakref.ref[Call]] = []
    gc.collect()
    gc.disable()
    try:
        gate = asyncio.Event() if flow is _cancel else None
        mf = UaHarness(sessions=FakeSessionFactory(gate=gate))
        mf.ua.on_call_ended = lambda call: ended.append(weakref.ref(call))
        try:
            await flow(mf)
            await mf.assert_idle()
        finally:
            mf.close()
        # The test doubles keep what they were given (the fake factory its callbacks and
        # sessions, the harness the tasks it recorded, the fake clock its cancelled timers
        # until their deadline) and the harness is a cycle of its own (wire and transaction
        # layer): let go of all that. (Cancelling a loop timer drops its callback at once.)
        assert mf.clock.pending == 0
        mf.clock.advance(10**7)
        mf.sessions.failure_callbacks.clear()
        mf.sessions.sessions.clear()
        mf.tasks.clear()
        mf.ua.on_call_ended = None
        del mf
        await asyncio.sleep(0)
        alive = [ref() for ref in ended]
    finally:
        gc.enable()
    assert len(alive) == 1
    call = alive[0]
    referrers = [] if call is None else [type(r).__name__ for r in gc.get_referrers(call)]
    assert call is None, f"the ended call is still referenced by {referrers}"
