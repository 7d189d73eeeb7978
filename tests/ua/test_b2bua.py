"""Two-leg calls (the MF as a media-terminating B2BUA, RFC 7092 3.2), sans-IO and instant.

UE1 (:class:`UacDialogState`) calls a user who is not a room; the MF (a real :class:`UserAgent`
and :class:`TransactionLayer` with a :class:`TwoLegCalls` bridge, ``avatar_mf.testing.b2bua``)
answers UE1 with its own media and places leg 2 to the outbound proxy :data:`PROXY` with its own
offer; the tests play UE2's responses and requests. Every test ends its flows, and the fixture
then checks the leak invariant: no dialog, no transaction, no timer, no pair, every media closed
once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from avatar_mf.sip.errors import SipError
from avatar_mf.sip.headers import parse_name_addr
from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.testing.b2bua import (
    DEFAULT_OFFER,
    PROXY,
    UE2_ANSWER,
    B2buaHarness,
    FakeOfferFactory,
)
from avatar_mf.testing.sip import (
    DEFAULT_ANSWER,
    DEFAULT_UA_CONFIG,
    UE_UDP,
    FakeSessionFactory,
    UacDialogState,
    cseq_of,
    to_tag_of,
)
from avatar_mf.ua.b2bua import PAIR_ROOM_PREFIX, RoomPolicy, TwoLegConfig, relayed_status
from avatar_mf.ua.end_reason import CallEnd, EndReason, is_failure

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()
CALLEE = "sip:+15551230002@ims.example.net"

MakeMf = Callable[..., B2buaHarness]


@pytest.fixture
async def make_mf() -> AsyncIterator[MakeMf]:
    made: list[B2buaHarness] = []

    def make(**kwargs: object) -> B2buaHarness:
        harness = B2buaHarness(**kwargs)  # type: ignore[arg-type]
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
async def mf(make_mf: MakeMf) -> B2buaHarness:
    return make_mf()


def ue1_state() -> UacDialogState:
    return UacDialogState(request_uri=CALLEE, remote_uri=CALLEE)


def reason_of(request: Request) -> str:
    return request.headers.get("Reason") or ""


async def ring(mf: B2buaHarness, ue1: UacDialogState) -> Request:
    """UE1's INVITE; the MF places leg 2; UE2 rings. Returns leg 2's INVITE."""
    await mf.deliver(ue1.invite(OFFER))
    invite = mf.leg2_invite()
    await mf.deliver(mf.ue2_response(180), PROXY)
    return invite


async def connect(mf: B2buaHarness, ue1: UacDialogState) -> tuple[Request, UacDialogState]:
    """A two-leg call up: UE1 got its 200 (and ACKed it). Returns leg 2's INVITE and UE2."""
    invite = await ring(mf, ue1)
    await mf.deliver(mf.ue2_response(200), PROXY)
    ok = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert ok.status == 200
    await mf.deliver(ue1.ack(ok))
    return invite, mf.ue2()


async def ue1_hangs_up(mf: B2buaHarness, ue1: UacDialogState, leg2_call_id: str) -> Request:
    """UE1 sends BYE: 200 to UE1, BYE to UE2 (answered 200). Returns leg 2's BYE."""
    before = len(mf.wire.requests("BYE", call_id=leg2_call_id))
    await mf.deliver(ue1.bye())
    assert mf.wire.final("BYE", call_id=ue1.call_id).status == 200
    byes = mf.wire.requests("BYE", call_id=leg2_call_id)[before:]
    assert len(byes) == 1, mf.wire.summary()
    await mf.deliver(make_ok(byes[0]), PROXY)
    return byes[0]


def make_ok(request: Request) -> Response:
    from avatar_mf.sip.build import make_response

    return make_response(request, 200)


# --------------------------------------------------------------------------- settings


def test_room_policy_matches_the_whole_user_part() -> None:
    policy = RoomPolicy("room.*")
    assert policy.is_room("sip:room1@mf.example.net")
    assert not policy.is_room("sip:+15551230002@ims.example.net")
    assert not policy.is_room("sip:myroom@mf.example.net")  # a whole match, not a search
    assert not policy.is_room("sip:ims.example.net")  # no user part: the empty string
    assert RoomPolicy(".*").is_room("sip:anyone@anywhere")  # the default: all rooms
    assert RoomPolicy(".*").is_room("sip:anywhere")


def test_relayed_status_keeps_the_callees_answer_but_hop_only_ones() -> None:
    for status in (404, 408, 480, 486, 487, 488, 600, 603):
        assert relayed_status(status) == status
    for status in (301, 302, 401, 407, 503):
        assert relayed_status(status) == 480


async def test_a_room_uri_is_answered_at_once_with_no_second_leg(mf: B2buaHarness) -> None:
    ue = UacDialogState(request_uri="sip:room1@10.0.0.2:5060")
    await mf.call(ue, OFFER)
    assert mf.wire.requests("INVITE") == []
    assert mf.sessions.calls[0].room == ""  # the room its Request-URI names
    await mf.deliver(ue.bye())


# --------------------------------------------------------------------------- set-up


async def test_leg2_invite_goes_to_the_proxy_with_the_mfs_own_offer(mf: B2buaHarness) -> None:
    """RFC 7092 3.2: a new dialog (own Call-ID, own From tag), the callee's Request-URI, UE1's
    identity in From, through the outbound proxy (a loose Route), the MF's offer."""
    ue1 = ue1_state()
    await mf.deliver(ue1.invite(OFFER))
    assert mf.wire.statuses("INVITE", call_id=ue1.call_id) == [100]
    sent = mf.wire.select("INVITE", requests=True)
    assert len(sent) == 1 and sent[0].peer == PROXY
    invite = mf.leg2_invite()
    assert invite.uri == CALLEE
    assert invite.headers.get("Route") == "<sip:10.0.0.9:5060;lr>"
    assert invite.headers.get("Call-ID") != ue1.call_id
    frm = parse_name_addr(invite.headers.get("From") or "")
    assert frm.uri == ue1.local_uri and frm.tag and frm.tag != ue1.local_tag
    assert parse_name_addr(invite.headers.get("To") or "").uri == CALLEE
    assert to_tag_of(invite) is None
    assert invite.headers.get("Max-Forwards") == "69"  # UE1's 70, one hop less
    assert invite.body == DEFAULT_OFFER
    assert "timer" in invite.headers.get_list("Supported")
    assert invite.headers.get("Contact", "").startswith("<sip:mf@10.0.0.2:")
    # UE2 refuses, to end the flow.
    await mf.deliver(mf.ue2_response(486), PROXY)


async def test_180_relayed_and_200_only_once_ue2_answered(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    invite = await ring(mf, ue1)
    assert mf.wire.statuses("INVITE", call_id=ue1.call_id) == [100, 180]
    ringing = mf.wire.responses("INVITE", status=180, call_id=ue1.call_id)[0]
    assert to_tag_of(ringing)
    leg2_call_id = invite.headers.get("Call-ID") or ""
    await mf.deliver(mf.ue2_response(200), PROXY)
    # ACK to UE2 (in the dialog of the 2xx), then 200 with the MF's answer to UE1.
    acks = mf.wire.requests("ACK", call_id=leg2_call_id)
    assert len(acks) == 1 and acks[0].uri == f"sip:ue2@{PROXY.host}:{PROXY.port};transport=udp"
    assert cseq_of(acks[0]) == (cseq_of(invite)[0], "ACK")
    assert to_tag_of(acks[0]) == mf.ue2_tag
    ok = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert ok.status == 200 and ok.body == DEFAULT_ANSWER
    assert to_tag_of(ok) == to_tag_of(ringing)
    offer = mf.offers.sessions[0]
    assert offer.answers == [UE2_ANSWER] and offer.answer_sent_count == 1
    assert offer.contacts == [f"<sip:ue2@{PROXY.host}:{PROXY.port};transport=udp>"]
    assert mf.ua.active_calls == 2
    await mf.deliver(ue1.ack(ok))
    await ue1_hangs_up(mf, ue1, leg2_call_id)


async def test_both_legs_share_one_room_of_their_own(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    invite, _ = await connect(mf, ue1)
    leg1 = mf.sessions.calls[0]
    leg2 = mf.offers.sessions[0].call
    assert leg1.room == leg2.room and leg1.room.startswith(PAIR_ROOM_PREFIX)
    assert leg1.identity == ue1.local_uri and leg2.identity == CALLEE
    assert leg2.call_id == invite.headers.get("Call-ID")
    other = ue1_state()
    invite2, _ = await connect(mf, other)
    assert mf.sessions.calls[1].room != leg1.room
    await ue1_hangs_up(mf, ue1, leg2.call_id)
    await ue1_hangs_up(mf, other, invite2.headers.get("Call-ID") or "")


async def test_a_retransmitted_2xx_gets_the_ack_again(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    invite, _ = await connect(mf, ue1)
    leg2_call_id = invite.headers.get("Call-ID") or ""
    await mf.deliver(mf.ue2_response(200), PROXY)
    acks = mf.wire.requests("ACK", call_id=leg2_call_id)
    assert len(acks) == 2 and acks[0] == acks[1]
    assert mf.ua.active_calls == 2
    await ue1_hangs_up(mf, ue1, leg2_call_id)


async def test_a_second_fork_2xx_is_acked_and_ended(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    invite, _ = await connect(mf, ue1)
    leg2_call_id = invite.headers.get("Call-ID") or ""
    await mf.deliver(mf.ue2_response(200, to_tag="fork2"), PROXY)
    byes = mf.wire.requests("BYE", call_id=leg2_call_id)
    assert [to_tag_of(b) for b in byes] == ["fork2"]
    await mf.deliver(make_ok(byes[0]), PROXY)
    assert mf.ua.active_calls == 2  # the call goes on on the first fork
    await ue1_hangs_up(mf, ue1, leg2_call_id)


# --------------------------------------------------------------------------- ending


async def test_bye_from_ue1_ends_leg2_with_a_reason(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    invite, _ = await connect(mf, ue1)
    bye = await ue1_hangs_up(mf, ue1, invite.headers.get("Call-ID") or "")
    assert "other leg ended: bye" in reason_of(bye)
    assert to_tag_of(bye) == mf.ue2_tag
    assert mf.ua.stats.end_reasons["peer_leg_ended"] == 1
    assert mf.ua.stats.end_reasons["bye"] == 1


async def test_bye_from_ue2_ends_leg1_with_a_reason(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    _, ue2 = await connect(mf, ue1)
    await mf.deliver(ue2.bye(), PROXY)
    assert mf.wire.final("BYE", call_id=ue2.call_id).status == 200
    byes = mf.wire.requests("BYE", call_id=ue1.call_id)
    assert len(byes) == 1 and "other leg ended: bye" in reason_of(byes[0])
    await mf.deliver(ue1.reply(byes[0], 200))
    assert mf.ua.active_calls == 0


async def test_cancel_while_ue2_rings_cancels_leg2(mf: B2buaHarness) -> None:
    """RFC 3261 9.1/9.2: 487 to UE1, CANCEL to UE2 (the INVITE's branch, Route, CSeq)."""
    ue1 = ue1_state()
    invite = await ring(mf, ue1)
    await mf.deliver(ue1.cancel())
    assert mf.wire.final("INVITE", call_id=ue1.call_id).status == 487
    cancels = mf.wire.requests("CANCEL")
    assert len(cancels) == 1
    cancel = cancels[0]
    assert cancel.uri == invite.uri
    assert cancel.headers.get("Via") == invite.headers.get_all("Via")[0]
    assert cancel.headers.get("Route") == invite.headers.get("Route")
    assert cseq_of(cancel) == (cseq_of(invite)[0], "CANCEL")
    await mf.deliver(make_ok(cancel), PROXY)
    await mf.deliver(mf.ue2_response(487), PROXY)
    # The INVITE transaction ACKs the 487 itself (RFC 3261 17.1.1.3).
    assert [r.method for r in mf.wire.requests(call_id=invite.headers.get("Call-ID"))] == [
        "INVITE",
        "CANCEL",
        "ACK",
    ]
    assert mf.ua.stats.end_reasons["cancelled"] == 1


async def test_cancel_before_any_provisional_waits_for_one(mf: B2buaHarness) -> None:
    """RFC 3261 9.1: no CANCEL before a provisional response; sent when one comes."""
    ue1 = ue1_state()
    await mf.deliver(ue1.invite(OFFER))
    await mf.deliver(ue1.cancel())
    assert mf.wire.final("INVITE", call_id=ue1.call_id).status == 487
    assert mf.wire.requests("CANCEL") == []
    await mf.deliver(mf.ue2_response(180), PROXY)
    cancels = mf.wire.requests("CANCEL")
    assert len(cancels) == 1
    # No 180 reaches UE1 after its CANCEL.
    assert 180 not in mf.wire.statuses("INVITE", call_id=ue1.call_id)
    await mf.deliver(make_ok(cancels[0]), PROXY)
    await mf.deliver(mf.ue2_response(487), PROXY)


async def test_cancelled_invite_never_answered_is_abandoned(mf: B2buaHarness) -> None:
    """RFC 3261 9.1: the INVITE still unanswered 64*T1 after its CANCEL is given up."""
    ue1 = ue1_state()
    await ring(mf, ue1)
    await mf.deliver(ue1.cancel())
    cancel = mf.wire.requests("CANCEL")[0]
    await mf.deliver(make_ok(cancel), PROXY)
    await mf.advance(64 * mf.timers.t1 - 1)
    assert any(t.method == "INVITE" for t in mf.layer.client_transactions())
    await mf.advance(2)
    assert not any(t.method == "INVITE" for t in mf.layer.client_transactions())


async def test_2xx_after_cancel_is_acked_and_ended_with_bye(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    invite = await ring(mf, ue1)
    await mf.deliver(ue1.cancel())
    await mf.deliver(mf.ue2_response(200), PROXY)  # the 200 crossed the CANCEL
    leg2_call_id = invite.headers.get("Call-ID") or ""
    assert [r.method for r in mf.wire.requests(call_id=leg2_call_id)] == [
        "INVITE",
        "CANCEL",
        "ACK",
        "BYE",
    ]
    bye = mf.wire.requests("BYE", call_id=leg2_call_id)[0]
    await mf.deliver(make_ok(bye), PROXY)
    await mf.deliver(make_ok(mf.wire.requests("CANCEL")[0]), PROXY)
    assert mf.wire.final("INVITE", call_id=ue1.call_id).status == 487


@pytest.mark.parametrize("status", [486, 404, 480, 603])
async def test_ue2_refusal_reaches_ue1_with_the_same_status(mf: B2buaHarness, status: int) -> None:
    ue1 = ue1_state()
    await ring(mf, ue1)
    await mf.deliver(mf.ue2_response(status), PROXY)
    final = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert final.status == status
    await mf.deliver(ue1.ack(final))
    # The MF's INVITE transaction ACKed UE2's refusal.
    assert len(mf.wire.requests("ACK")) == 1
    assert mf.ua.stats.end_reasons["peer_leg_refused"] == 1
    assert mf.ua.stats.calls_failed == 0
    assert mf.sessions.sessions[0].closed and mf.offers.sessions[0].closed


async def test_a_redirect_from_ue2_becomes_480(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    await ring(mf, ue1)
    await mf.deliver(mf.ue2_response(302), PROXY)
    final = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert final.status == 480
    await mf.deliver(ue1.ack(final))


async def test_no_answer_in_time_cancels_leg2_and_answers_480(make_mf: MakeMf) -> None:
    mf = make_mf(
        two_leg=TwoLegConfig(
            room_pattern="room.*",
            outbound_proxy=f"sip:{PROXY.host}:{PROXY.port}",
            host="10.0.0.2",
            no_answer_timeout=30.0,
        )
    )
    ue1 = ue1_state()
    invite = await ring(mf, ue1)
    assert invite.headers.get("Route") == "<sip:10.0.0.9:5060;lr>"  # ;lr added
    await mf.advance(29.0)
    assert mf.wire.requests("CANCEL") == []
    await mf.advance(1.0)
    final = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert final.status == 480
    cancel = mf.wire.requests("CANCEL")[0]
    await mf.deliver(make_ok(cancel), PROXY)
    await mf.deliver(mf.ue2_response(487), PROXY)
    await mf.deliver(ue1.ack(final))


async def test_leg2_timeout_is_408_to_ue1(make_mf: MakeMf) -> None:
    """Timer B: nothing from the proxy within 64*T1."""
    mf = make_mf(timers=TimerConfig(t1=0.5))
    ue1 = ue1_state()
    await mf.deliver(ue1.invite(OFFER))
    await mf.advance(64 * 0.5 + 1, step=1.0)
    final = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert final.status == 408
    await mf.deliver(ue1.ack(final))


async def test_no_outbound_proxy_refuses_two_leg_calls_480(make_mf: MakeMf) -> None:
    mf = make_mf(two_leg=TwoLegConfig(room_pattern="room.*", host="10.0.0.2"))
    ue1 = ue1_state()
    await mf.deliver(ue1.invite(OFFER))
    final = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert final.status == 480
    assert mf.wire.requests("INVITE") == []
    await mf.deliver(ue1.ack(final))


async def test_ue1_offer_refused_places_no_second_leg(make_mf: MakeMf) -> None:
    mf = make_mf(sessions=FakeSessionFactory(error=SipError(488)))
    ue1 = ue1_state()
    await mf.deliver(ue1.invite(OFFER))
    final = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert final.status == 488
    assert mf.wire.requests("INVITE") == []
    await mf.deliver(ue1.ack(final))


async def test_unusable_answer_from_ue2_ends_leg2_and_refuses_ue1(make_mf: MakeMf) -> None:
    mf = make_mf(offers=FakeOfferFactory(answer_error=SipError(488, "No Data Channel")))
    ue1 = ue1_state()
    invite = await ring(mf, ue1)
    await mf.deliver(mf.ue2_response(200), PROXY)
    leg2_call_id = invite.headers.get("Call-ID") or ""
    assert [r.method for r in mf.wire.requests(call_id=leg2_call_id)] == ["INVITE", "ACK", "BYE"]
    final = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert final.status == 488
    await mf.deliver(make_ok(mf.wire.requests("BYE", call_id=leg2_call_id)[0]), PROXY)
    await mf.deliver(ue1.ack(final))
    assert mf.offers.sessions[0].answer_sent_count == 0


async def test_leg2_media_failure_ends_both_legs_with_reasons(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    _, ue2 = await connect(mf, ue1)
    mf.offers.sessions[0].fail("DTLS setup timeout")
    await mf.settle()
    bye2 = mf.wire.requests("BYE", call_id=ue2.call_id)
    bye1 = mf.wire.requests("BYE", call_id=ue1.call_id)
    assert len(bye2) == 1 and "media failed: DTLS setup timeout" in reason_of(bye2[0])
    assert len(bye1) == 1
    assert "other leg ended: media failed: DTLS setup timeout" in reason_of(bye1[0])
    await mf.deliver(make_ok(bye2[0]), PROXY)
    await mf.deliver(ue1.reply(bye1[0], 200))


async def test_leg1_media_failure_ends_leg2(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    _, ue2 = await connect(mf, ue1)
    mf.sessions.sessions[0].fail("setup timeout")
    await mf.settle()
    bye1 = mf.wire.requests("BYE", call_id=ue1.call_id)
    bye2 = mf.wire.requests("BYE", call_id=ue2.call_id)
    assert len(bye1) == 1 and len(bye2) == 1
    assert "other leg ended: media failed: setup timeout" in reason_of(bye2[0])
    await mf.deliver(make_ok(bye2[0]), PROXY)
    await mf.deliver(ue1.reply(bye1[0], 200))


async def test_operator_drop_of_leg1_ends_leg2(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    _, ue2 = await connect(mf, ue1)
    leg1 = next(c for c in mf.ua.calls() if c.call_id == ue1.call_id)
    mf.ua.drop(leg1, "dropped by operator")
    await mf.settle()
    bye2 = mf.wire.requests("BYE", call_id=ue2.call_id)
    assert len(bye2) == 1 and "other leg ended: dropped by operator" in reason_of(bye2[0])
    await mf.deliver(make_ok(bye2[0]), PROXY)
    await mf.deliver(ue1.reply(mf.wire.requests("BYE", call_id=ue1.call_id)[0], 200))


# --------------------------------------------------------------------------- in the dialogs


async def test_reinvite_on_leg2_is_answered_without_touching_leg1(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    _, ue2 = await connect(mf, ue1)
    before = len(mf.wire.sent)
    await mf.deliver(ue2.invite(UE2_ANSWER), PROXY)
    ok = mf.wire.final("INVITE", call_id=ue2.call_id)
    assert ok.status == 200 and ok.body == DEFAULT_OFFER
    await mf.deliver(ue2.ack(ok), PROXY)
    assert mf.offers.sessions[0].offers == [UE2_ANSWER]
    assert mf.sessions.sessions[0].offers == []
    assert [s.call_id for s in mf.wire.sent[before:]] == [ue2.call_id] * 2  # 100 and 200
    assert mf.ua.active_calls == 2
    await ue1_hangs_up(mf, ue1, ue2.call_id)


async def test_reinvite_on_leg1_is_answered_without_touching_leg2(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    _, ue2 = await connect(mf, ue1)
    before = len(mf.wire.sent)
    await mf.deliver(ue1.invite(OFFER))
    ok = mf.wire.final("INVITE", call_id=ue1.call_id)
    await mf.deliver(ue1.ack(ok))
    assert mf.sessions.sessions[0].offers == [OFFER]
    assert mf.offers.sessions[0].offers == []
    assert all(s.call_id == ue1.call_id for s in mf.wire.sent[before:])
    await ue1_hangs_up(mf, ue1, ue2.call_id)


async def test_session_timer_on_leg2_mf_refreshes_when_ue2_says_uac(mf: B2buaHarness) -> None:
    """RFC 4028 7.2: refresher=uac in UE2's 2xx names the MF (the UAC of leg 2): it refreshes
    with UPDATE every SE/2 on leg 2 only."""
    ue1 = ue1_state()
    await ring(mf, ue1)
    se = [("Session-Expires", "120;refresher=uac"), ("Require", "timer")]
    await mf.deliver(mf.ue2_response(200, headers=se), PROXY)
    ok = mf.wire.final("INVITE", call_id=ue1.call_id)
    await mf.deliver(ue1.ack(ok))
    leg2_call_id = mf.leg2_invite().headers.get("Call-ID") or ""
    await mf.advance(60.0)
    updates = mf.wire.requests("UPDATE")
    assert [u.headers.get("Call-ID") for u in updates] == [leg2_call_id]
    await mf.deliver(make_ok(updates[0]), PROXY)
    await ue1_hangs_up(mf, ue1, leg2_call_id)


async def test_leg2_session_expiry_ends_both_legs(mf: B2buaHarness) -> None:
    """refresher=uas: UE2 refreshes; without a refresh leg 2 expires (RFC 4028 10) and leg 1
    is ended with the reason."""
    ue1 = ue1_state()
    await ring(mf, ue1)
    se = [("Session-Expires", "90;refresher=uas"), ("Require", "timer")]
    await mf.deliver(mf.ue2_response(200, headers=se), PROXY)
    ok = mf.wire.final("INVITE", call_id=ue1.call_id)
    await mf.deliver(ue1.ack(ok))
    leg2_call_id = mf.leg2_invite().headers.get("Call-ID") or ""
    await mf.advance(90 - 30 + 1)
    bye2 = mf.wire.requests("BYE", call_id=leg2_call_id)
    bye1 = mf.wire.requests("BYE", call_id=ue1.call_id)
    # (one BYE each, and its retransmissions over UDP: the clock jumped)
    assert bye2 and all(b == bye2[0] for b in bye2) and "session expired" in reason_of(bye2[0])
    assert bye1 and all(b == bye1[0] for b in bye1)
    assert "other leg ended: session expired" in reason_of(bye1[0])
    assert mf.wire.requests("UPDATE") == []
    await mf.deliver(make_ok(bye2[0]), PROXY)
    await mf.deliver(ue1.reply(bye1[0], 200))


async def test_ue2_refresh_keeps_leg2_alive(mf: B2buaHarness) -> None:
    ue1 = ue1_state()
    await ring(mf, ue1)
    se = [("Session-Expires", "90;refresher=uas"), ("Require", "timer")]
    await mf.deliver(mf.ue2_response(200, headers=se), PROXY)
    ok = mf.wire.final("INVITE", call_id=ue1.call_id)
    await mf.deliver(ue1.ack(ok))
    ue2 = mf.ue2()
    await mf.advance(50)
    await mf.deliver(
        ue2.update(headers=[("Session-Expires", "90;refresher=uac"), ("Supported", "timer")]),
        PROXY,
    )
    assert mf.wire.final("UPDATE", call_id=ue2.call_id).status == 200
    await mf.advance(50)
    assert mf.wire.requests("BYE") == []
    await ue1_hangs_up(mf, ue1, ue2.call_id)


def test_two_leg_end_reasons_are_bounded_and_not_failures() -> None:
    """The leg ended because of the other one carries why in its text (the BYE's Reason,
    RFC 3326); neither counts as a failure of the MF."""
    ended = CallEnd(EndReason.PEER_LEG_ENDED, "bye")
    assert (ended.label, ended.text, ended.failure) == (
        "peer_leg_ended",
        "other leg ended: bye",
        False,
    )
    refused = CallEnd(EndReason.PEER_LEG_REFUSED, "486")
    assert (refused.label, refused.text) == ("peer_leg_refused", "other leg refused 486")
    assert not is_failure("peer_leg_ended") and not is_failure("peer_leg_refused")


@pytest.mark.parametrize("record_route", [False, True])
async def test_leg2_in_dialog_requests_follow_ue2s_contact_or_the_record_route(
    mf: B2buaHarness, record_route: bool
) -> None:
    """RFC 3261 12.1.2 / 12.2.1.1: without Record-Route the ACK and BYE go to UE2's Contact
    (not the outbound proxy); with it, to the proxy that record-routed."""
    ue1 = ue1_state()
    invite = await ring(mf, ue1)
    contact = "<sip:ue2@10.0.0.9:5062>"  # the proxy's host, another port
    headers = [("Record-Route", "<sip:10.0.0.9:5060;lr>")] if record_route else []
    ok2 = mf.ue2_response(200, headers=headers)
    ok2 = ok2.with_headers(ok2.headers.set("Contact", contact))
    await mf.deliver(ok2, PROXY)
    leg2_call_id = invite.headers.get("Call-ID") or ""
    ok = mf.wire.final("INVITE", call_id=ue1.call_id)
    await mf.deliver(ue1.ack(ok))
    await mf.deliver(ue1.bye())
    sent = mf.wire.select(call_id=leg2_call_id, requests=True)
    ack, bye = (next(s for s in sent if s.method == m) for m in ("ACK", "BYE"))
    where = (PROXY.host, PROXY.port) if record_route else ("10.0.0.9", 5062)
    assert (ack.peer.host, ack.peer.port) == where
    assert (bye.peer.host, bye.peer.port) == where
    assert ack.message.uri == bye.message.uri == "sip:ue2@10.0.0.9:5062"  # type: ignore[union-attr]
    assert isinstance(bye.message, Request)
    await mf.deliver(make_ok(bye.message), PROXY)


# ------------------------------------------------------------ progress, identity, capacity


async def test_183_reaches_ue1_without_ue2s_early_media(mf: B2buaHarness) -> None:
    """Session Progress is the call's progress too; UE2's SDP stays on leg 2 (the MF
    terminates media), so UE1 gets the status with no body."""
    ue1 = ue1_state()
    await mf.deliver(ue1.invite(OFFER))
    await mf.deliver(mf.ue2_response(183, body=UE2_ANSWER), PROXY)
    assert mf.wire.statuses("INVITE", call_id=ue1.call_id) == [100, 183]
    progress = mf.wire.responses("INVITE", status=183, call_id=ue1.call_id)[0]
    assert progress.body == b""
    await mf.deliver(mf.ue2_response(486), PROXY)


async def test_asserted_identity_is_asserted_on_to_leg2(make_mf: MakeMf) -> None:
    """RFC 3325 9.1: UE1's P-CSCF (trusted) asserted the identity; the MF asserts it on."""
    trusting = replace(
        DEFAULT_UA_CONFIG, asserted_identity_peers=(IPv4Network(f"{UE_UDP.host}/32"),)
    )
    mf = make_mf(config=trusting)
    ue1 = ue1_state()
    asserted = "sip:+15551230001@ims.example.net"
    await mf.deliver(ue1.invite(OFFER, headers=[("P-Asserted-Identity", f"<{asserted}>")]))
    invite = mf.leg2_invite()
    assert invite.headers.get("P-Asserted-Identity") == f"<{asserted}>"
    assert parse_name_addr(invite.headers.get("From") or "").uri == asserted
    await mf.deliver(mf.ue2_response(486), PROXY)


async def test_an_identity_from_from_is_never_asserted(make_mf: MakeMf) -> None:
    """From an untrusted source the header is ignored, and the MF asserts nothing."""
    mf = make_mf()
    ue1 = ue1_state()
    forged = "sip:+15550000000@ims.example.net"
    await mf.deliver(ue1.invite(OFFER, headers=[("P-Asserted-Identity", f"<{forged}>")]))
    invite = mf.leg2_invite()
    assert invite.headers.get("P-Asserted-Identity") is None
    assert parse_name_addr(invite.headers.get("From") or "").uri == ue1.local_uri
    await mf.deliver(mf.ue2_response(486), PROXY)


async def test_no_second_leg_past_max_dialogs(make_mf: MakeMf) -> None:
    """A two-leg call holds two dialogs: with one left under max_dialogs, UE1 gets 503 with
    Retry-After and no INVITE leaves the MF."""
    mf = make_mf(config=replace(DEFAULT_UA_CONFIG, max_dialogs=1))
    ue1 = ue1_state()
    await mf.deliver(ue1.invite(OFFER))
    final = mf.wire.final("INVITE", call_id=ue1.call_id)
    assert final.status == 503 and final.headers.get("Retry-After") == "30"
    assert mf.wire.requests("INVITE") == []
    await mf.deliver(ue1.ack(final))
