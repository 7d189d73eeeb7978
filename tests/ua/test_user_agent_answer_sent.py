"""``MediaSession.answer_sent``: the user agent tells the media once, right after the 2xx with
the answer is handed to the INVITE transaction, and never for a call CANCELled or refused
(the data channel association starts only then)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from avatar_mf.testing.sip import (
    FakeMediaSession,
    FakeSessionFactory,
    UacDialogState,
    UaHarness,
    sip_error_with_warning,
)

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()


@pytest.fixture
async def sessions() -> FakeSessionFactory:
    return FakeSessionFactory(gate=asyncio.Event())


@pytest.fixture
async def mf(sessions: FakeSessionFactory) -> AsyncIterator[UaHarness]:
    harness = UaHarness(sessions=sessions)
    try:
        yield harness
        await harness.assert_idle()
    finally:
        harness.close()


def record_wire_at_answer_sent(mf: UaHarness) -> list[list[str]]:
    """What the wire held each time a session was told its answer went out."""
    seen: list[list[str]] = []

    def record(_session: FakeMediaSession) -> None:
        seen.append(mf.wire.summary())

    mf.sessions.on_answer_sent = record
    return seen


async def test_answer_sent_once_right_after_the_200(
    mf: UaHarness, sessions: FakeSessionFactory
) -> None:
    seen = record_wire_at_answer_sent(mf)
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    assert seen == []  # the answer is still being made
    assert sessions.gate is not None
    sessions.gate.set()
    await mf.settle()
    assert seen == [["100 INVITE", "200 INVITE"]]
    [media] = sessions.sessions
    assert media.answer_sent_count == 1

    ok = mf.wire.final("INVITE")
    await mf.deliver(ue.ack(ok))
    await mf.advance(5)  # 2xx retransmissions, ACK, a re-INVITE: never a second call
    await mf.deliver(ue.invite(OFFER))
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
    assert media.answer_sent_count == 1
    await mf.deliver(ue.bye())
    assert media.answer_sent_count == 1 and media.closed


async def test_cancel_that_wins_never_tells_answer_sent(
    mf: UaHarness, sessions: FakeSessionFactory
) -> None:
    """The factory finishes its session although the CANCEL came first: the UA closes it
    without ever saying the answer went out."""
    sessions.ignore_cancel = True
    seen = record_wire_at_answer_sent(mf)
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    await mf.deliver(ue.cancel())
    assert sessions.gate is not None
    sessions.gate.set()
    await mf.settle()
    assert mf.wire.final("INVITE").status == 487
    [media] = sessions.sessions
    assert media.closed and media.answer_sent_count == 0
    assert seen == []
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))


async def test_refused_call_never_tells_answer_sent(
    mf: UaHarness, sessions: FakeSessionFactory
) -> None:
    sessions.error = sip_error_with_warning(488)
    assert sessions.gate is not None
    sessions.gate.set()
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    assert mf.wire.final("INVITE").status == 488
    assert sessions.sessions == []
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
