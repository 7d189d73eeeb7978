"""The user agent's timers on a fake clock: 2xx retransmission (RFC 3261 13.3.1.4), the ACK
wait, session timers (RFC 4028) and the answer delay. Time moves only through
``UaHarness.advance``; nothing sleeps.

Leak invariant as in ``test_user_agent.py``: the ``make_mf`` fixture checks every harness with
:meth:`UaHarness.assert_idle` at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from avatar_mf.sip.message import Request
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.timers import NODE_TRYING, TimerConfig
from avatar_mf.testing.sip import (
    DEFAULT_UA_CONFIG,
    UE_TCP,
    UE_UDP,
    FakeSessionFactory,
    Sent,
    UacDialogState,
    UaHarness,
    cseq_of,
    to_tag_of,
)
from avatar_mf.ua.user_agent import UserAgentConfig

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()
EPS = 0.001

MakeMf = Callable[..., UaHarness]


@pytest.fixture
async def make_mf() -> AsyncIterator[MakeMf]:
    made: list[UaHarness] = []

    def make(
        config: UserAgentConfig = DEFAULT_UA_CONFIG, sessions: FakeSessionFactory | None = None
    ) -> UaHarness:
        harness = UaHarness(config, sessions=sessions)
        made.append(harness)
        return harness

    try:
        yield make
        for harness in made:
            await harness.assert_idle()
    finally:
        for harness in reversed(made):
            harness.close()


@pytest.fixture
async def mf(make_mf: MakeMf) -> UaHarness:
    return make_mf()


def timer_headers(value: str, *, supported: bool = True) -> tuple[tuple[str, str], ...]:
    headers: tuple[tuple[str, str], ...] = (("Session-Expires", value),)
    return ((("Supported", "timer"),) if supported else ()) + headers


def request_of(record: Sent) -> Request:
    assert isinstance(record.message, Request)
    return record.message


async def hang_up(mf: UaHarness, ue: UacDialogState) -> None:
    await mf.deliver(ue.bye(), ue.peer)
    assert mf.wire.final("BYE", call_id=ue.call_id).status == 200


# --------------------------------------------------------------------------- 2xx and ACK


@pytest.mark.parametrize("peer", [UE_UDP, UE_TCP], ids=["udp", "tcp"])
async def test_2xx_retransmitted_t1_doubling_capped_at_t2_until_ack(
    mf: UaHarness, peer: Peer
) -> None:
    """RFC 3261 13.3.1.4: the 2xx is re-sent at T1, 2T1, 4T1 ... capped at T2 until the ACK,
    to the INVITE's source -- over a reliable transport too ("the response is retransmitted
    periodically even if the transport at the UAS is reliable": hops further on may be UDP)."""
    ue = UacDialogState(peer=peer)
    ok = await mf.call(ue, OFFER, ack=False)
    t0 = mf.clock.now()
    await mf.advance(20)
    sent = mf.wire.select("INVITE", status=200)
    assert [r.at - t0 for r in sent] == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]
    assert all(r.message == ok and r.peer == peer for r in sent)
    assert [r.stateless for r in sent] == [False] + [True] * 7

    await mf.deliver(ue.ack(ok), peer)
    await mf.advance(60)
    assert len(mf.wire.select("INVITE", status=200)) == 8
    assert mf.wire.requests("BYE") == []
    assert mf.ua.active_calls == 1
    await hang_up(mf, ue)


@pytest.mark.parametrize("peer", [UE_UDP, UE_TCP], ids=["udp", "tcp"])
async def test_no_ack_within_64_t1_ends_the_call_with_bye(mf: UaHarness, peer: Peer) -> None:
    """RFC 3261 13.3.1.4: no ACK for 64*T1 after the 2xx: the session is ended with a BYE --
    at 64*T1, not at the next retransmission slot, and on any transport."""
    ue = UacDialogState(peer=peer)
    await mf.call(ue, OFFER, ack=False)
    t0 = mf.clock.now()
    await mf.advance(64 * mf.timers.t1 - EPS)
    assert mf.wire.requests("BYE") == []
    assert mf.ua.active_calls == 1
    await mf.advance(EPS)
    [bye] = mf.wire.select("BYE", requests=True)
    assert bye.at - t0 == pytest.approx(64 * mf.timers.t1)
    assert bye.peer.transport == peer.transport
    assert mf.ua.active_calls == 0
    assert mf.sessions.sessions[0].close_count == 1
    retransmissions = len(mf.wire.select("INVITE", status=200))
    await mf.advance(30)
    assert len(mf.wire.select("INVITE", status=200)) == retransmissions
    await mf.deliver(ue.reply(request_of(bye), 200), peer)


async def test_a_stale_ack_does_not_confirm_a_reinvite(mf: UaHarness) -> None:
    """An ACK carries the CSeq number of the INVITE it acknowledges (RFC 3261 13.2.2.4,
    17.1.1.3): a late retransmission of the initial ACK must not stop the re-INVITE's 2xx."""
    ue = UacDialogState()
    ok = await mf.call(ue, OFFER, ack=False)
    first_ack = ue.ack(ok)
    await mf.deliver(first_ack)
    await mf.deliver(ue.invite(OFFER))
    reok = mf.wire.final("INVITE")
    assert reok.status == 200 and cseq_of(reok)[0] == 2
    await mf.deliver(first_ack)  # retransmitted by the network, late
    before = len(mf.wire.select("INVITE", status=200))
    await mf.advance(mf.timers.t1)
    assert len(mf.wire.select("INVITE", status=200)) == before + 1
    await mf.deliver(ue.ack(reok))
    await mf.advance(10)
    assert len(mf.wire.select("INVITE", status=200)) == before + 1
    await hang_up(mf, ue)


# --------------------------------------------------------------------------- session timers


async def test_uac_refresher_without_refresh_gets_bye_before_expiry(mf: UaHarness) -> None:
    """RFC 4028 9: the 2xx carries Session-Expires with refresher=uac and Require: timer.
    RFC 4028 10: without a refresh the MF sends BYE at SE - min(32, SE/3) = 88 s."""
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER, headers=timer_headers("120;refresher=uac")))
    ok = mf.wire.final("INVITE")
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.get_list("Require") == ["timer"]
    await mf.deliver(ue.ack(ok))
    t0 = mf.clock.now()
    await mf.advance(88 - EPS)
    assert mf.wire.requests("BYE") == []
    await mf.advance(EPS)
    [bye] = mf.wire.select("BYE", requests=True)
    assert bye.at - t0 == pytest.approx(88)
    assert mf.ua.active_calls == 0
    assert mf.sessions.sessions[0].close_count == 1
    await mf.deliver(ue.reply(request_of(bye), 200))


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
async def test_a_refresh_rearms_the_session_timer(mf: UaHarness, method: str) -> None:
    """RFC 4028 10: a session refresh (re-INVITE, or UPDATE without a body) restarts the
    timer; its 200 carries the negotiated Session-Expires again."""
    ue = UacDialogState()
    headers = timer_headers("120;refresher=uac")
    await mf.deliver(ue.invite(OFFER, headers=headers))
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
    await mf.advance(60)
    if method == "INVITE":
        await mf.deliver(ue.invite(OFFER, headers=headers))
        await mf.deliver(ue.ack(mf.wire.final("INVITE")))
    else:
        await mf.deliver(ue.update(headers=headers))
    refreshed = mf.wire.final(method)
    assert refreshed.status == 200
    assert refreshed.headers.get("Session-Expires") == "120;refresher=uac"
    t1 = mf.clock.now()
    await mf.advance(88 - EPS)  # past the first deadline (60 + 28 s from the start)
    assert mf.wire.requests("BYE") == []
    assert mf.ua.active_calls == 1
    await mf.advance(EPS)
    [bye] = mf.wire.select("BYE", requests=True)
    assert bye.at - t1 == pytest.approx(88)
    await mf.deliver(ue.reply(request_of(bye), 200))


async def test_session_expires_below_min_se_is_422(mf: UaHarness) -> None:
    """RFC 4028 6, 8: 422 with the MF's Min-SE; no call."""
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER, headers=timer_headers("60")))
    refused = mf.wire.final("INVITE")
    assert refused.status == 422
    assert refused.headers.get("Min-SE") == str(DEFAULT_UA_CONFIG.min_se)
    assert mf.sessions.create_count == 0
    await mf.deliver(ue.ack(refused))


async def test_refresh_below_min_se_is_422_and_leaves_the_media_alone(mf: UaHarness) -> None:
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    await mf.deliver(ue.update(OFFER, headers=timer_headers("30")))
    assert mf.wire.final("UPDATE").status == 422
    assert mf.sessions.sessions[0].offers == []
    await hang_up(mf, ue)


async def test_session_expires_is_reduced_but_not_below_the_requests_min_se(
    mf: UaHarness,
) -> None:
    """RFC 4028 9: the UAS may lower Session-Expires, never below the request's Min-SE."""
    short, floor = UacDialogState(), UacDialogState()
    await mf.deliver(short.invite(OFFER, headers=timer_headers("3600;refresher=uac")))
    assert mf.wire.final("INVITE").headers.get("Session-Expires") == "1800;refresher=uac"
    await mf.deliver(
        floor.invite(OFFER, headers=timer_headers("3600;refresher=uac") + (("Min-SE", "2400"),))
    )
    ok = mf.wire.final("INVITE", call_id=floor.call_id)
    assert ok.headers.get("Session-Expires") == "2400;refresher=uac"
    await mf.deliver(short.ack(mf.wire.final("INVITE", call_id=short.call_id)))
    await mf.deliver(floor.ack(ok))
    await hang_up(mf, short)
    await hang_up(mf, floor)


async def test_uac_without_timer_support_mf_refreshes_with_update(mf: UaHarness) -> None:
    """RFC 4028 9: a UAC without 'timer' cannot refresh: refresher=uas, no Require. RFC 4028
    10: the MF refreshes at SE/2 with an UPDATE whose Session-Expires says the sender (the MF,
    UAC of that UPDATE) stays the refresher: refresher=uac."""
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER, headers=timer_headers("120", supported=False)))
    ok = mf.wire.final("INVITE")
    assert ok.headers.get("Session-Expires") == "120;refresher=uas"
    assert ok.headers.get("Require") is None
    await mf.deliver(ue.ack(ok))
    t0 = mf.clock.now()
    await mf.advance(60 - EPS)
    assert mf.wire.requests("UPDATE") == []
    await mf.advance(EPS)
    [update] = mf.wire.select("UPDATE", requests=True)
    assert update.at - t0 == pytest.approx(60)
    request = request_of(update)
    assert request.headers.get("Session-Expires") == "120;refresher=uac"
    assert "timer" in request.headers.get_list("Supported")
    assert to_tag_of(request) == ue.local_tag
    assert cseq_of(request)[1] == "UPDATE"
    await mf.deliver(ue.reply(request, 200))
    await mf.advance(60)
    assert len({cseq_of(r)[0] for r in mf.wire.requests("UPDATE")}) == 2
    assert mf.ua.active_calls == 1
    await mf.deliver(ue.reply(mf.wire.requests("UPDATE")[-1], 200))
    await hang_up(mf, ue)


async def test_uac_supporting_timer_may_leave_the_refresh_to_the_mf(mf: UaHarness) -> None:
    """RFC 4028 9: refresher=uas asked by a UAC that supports timer: the 2xx SHOULD still
    carry Require: timer; the MF refreshes."""
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER, headers=timer_headers("120;refresher=uas")))
    ok = mf.wire.final("INVITE")
    assert ok.headers.get("Session-Expires") == "120;refresher=uas"
    assert ok.headers.get_list("Require") == ["timer"]
    await mf.deliver(ue.ack(ok))
    await mf.advance(60)
    [update] = mf.wire.requests("UPDATE")
    await mf.deliver(ue.reply(update, 200))
    await hang_up(mf, ue)


async def test_refresh_answered_481_ends_the_call_without_bye(mf: UaHarness) -> None:
    """RFC 4028 10 / RFC 3261 12.2.1.2: a 481 to the refresh ends the session. The UE just said
    the dialog does not exist, so a BYE would only get another 481 (RFC 5057 5.1): none sent."""
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER, headers=timer_headers("120", supported=False)))
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
    await mf.advance(60)
    [update] = mf.wire.requests("UPDATE")
    await mf.deliver(ue.reply(update, 481))
    assert mf.ua.active_calls == 0
    assert mf.sessions.sessions[0].close_count == 1
    assert mf.wire.requests("BYE") == []


async def test_refresh_answered_408_ends_the_call_with_bye(mf: UaHarness) -> None:
    """RFC 4028 10: a 408 to the refresh: the MF sends BYE."""
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER, headers=timer_headers("120", supported=False)))
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
    await mf.advance(60)
    [update] = mf.wire.requests("UPDATE")
    await mf.deliver(ue.reply(update, 408))
    assert mf.ua.active_calls == 0
    assert mf.sessions.sessions[0].close_count == 1
    [bye] = mf.wire.requests("BYE")
    await mf.deliver(ue.reply(bye, 200))


async def test_refresh_timing_out_ends_the_call_with_bye(mf: UaHarness) -> None:
    """RFC 4028 10: the refresh transaction times out (Timer F, 64*T1): BYE."""
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER, headers=timer_headers("120", supported=False)))
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
    await mf.advance(60)
    assert len(mf.wire.requests("UPDATE")) == 1
    await mf.advance(64 * mf.timers.t1 - EPS)
    assert mf.ua.active_calls == 1
    assert len(mf.wire.requests("UPDATE")) > 1  # Timer E retransmissions over UDP
    await mf.advance(EPS)
    assert mf.ua.active_calls == 0
    [bye] = mf.wire.requests("BYE")
    await mf.deliver(ue.reply(bye, 200))


# --------------------------------------------------------------------------- answer delay


async def test_answer_delay_runs_on_the_clock(make_mf: MakeMf) -> None:
    """The configured ring time is a timer on the injected clock: 100 at once, the answer
    after ``answer_delay``."""
    mf = make_mf(replace(DEFAULT_UA_CONFIG, answer_delay=2.0))
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    await mf.advance(2.0 - EPS)
    assert mf.wire.statuses("INVITE") == [100]
    assert mf.sessions.create_count == 0
    await mf.advance(EPS)
    ok = mf.wire.final("INVITE")
    assert ok.status == 200
    await mf.deliver(ue.ack(ok))
    await hang_up(mf, ue)


@pytest.mark.parametrize(("answer_delay", "statuses"), [(0.0, [200]), (2.0, [100, 200])])
async def test_the_nodes_100_trying_only_for_a_slow_answer(
    answer_delay: float, statuses: list[int]
) -> None:
    """With the node's timers (RFC 3261 17.2.1): an INVITE answered at once gets its 200 and no
    100; one answered after 2 s gets 100 Trying at 100 ms, then the 200."""
    mf = UaHarness(
        replace(DEFAULT_UA_CONFIG, answer_delay=answer_delay),
        timers=TimerConfig(trying=NODE_TRYING),
    )
    try:
        ue = UacDialogState()
        await mf.deliver(ue.invite(OFFER))
        if answer_delay:
            await mf.advance(NODE_TRYING - EPS)
            assert mf.wire.statuses("INVITE") == []
            await mf.advance(EPS)
            assert mf.wire.statuses("INVITE") == [100]
            await mf.advance(answer_delay)
        ok = mf.wire.final("INVITE")
        assert mf.wire.statuses("INVITE") == statuses
        await mf.deliver(ue.ack(ok))
        await mf.advance(1.0)
        assert mf.wire.statuses("INVITE") == statuses
        await hang_up(mf, ue)
        await mf.assert_idle()
    finally:
        mf.close()


async def test_cancel_during_the_answer_delay(make_mf: MakeMf) -> None:
    mf = make_mf(replace(DEFAULT_UA_CONFIG, answer_delay=2.0))
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    await mf.advance(1.0)
    await mf.deliver(ue.cancel())
    assert mf.wire.final("INVITE").status == 487
    await mf.advance(5.0)
    assert mf.sessions.create_count == 0
    assert {s for s in mf.wire.statuses("INVITE") if s >= 200} == {487}
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
