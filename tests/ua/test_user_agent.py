"""The user agent through the real transaction layer: call flows, sans-IO and instant.

Each test plays a UE (:class:`UacDialogState`) against a real :class:`UserAgent` over a real
:class:`TransactionLayer`, with a :class:`FakeClock`, a :class:`RecordingWire` and a
:class:`FakeSessionFactory` (``avatar_mf.testing.sip``). Every test ends its flows, and the
``make_mf`` fixture then checks the leak invariant (:meth:`UaHarness.assert_idle`): no call, no
pending INVITE, no transaction and no timer left, each media session closed exactly once, no task
failed, no final response sent twice differently by one transaction.

RFC 3261 sections are cited per test; the timers (2xx retransmission, session timers) are in
``test_user_agent_timers.py``, the property test in ``test_user_agent_properties.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.testing.sip import (
    DEFAULT_ANSWER,
    DEFAULT_UA_CONFIG,
    UE_TCP,
    FakeSessionFactory,
    UacDialogState,
    UaHarness,
    cseq_of,
    sip_error_with_warning,
    to_tag_of,
)
from avatar_mf.ua.user_agent import ALLOW, UserAgentConfig

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()
REOFFER = OFFER.replace(b"a=dcmap:10 ", b"a=dcmap:12 ")
REANSWER = DEFAULT_ANSWER + b'a=dcmap:12 subprotocol="http"\r\n'

MakeMf = Callable[..., UaHarness]


@pytest.fixture
async def make_mf() -> AsyncIterator[MakeMf]:
    """Build harnesses; at teardown every one must be idle (the leak invariant)."""
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


def retry_after(response: Response) -> int:
    value = response.headers.get("Retry-After")
    assert value is not None, f"{response.status} without Retry-After"
    return int(value.split(";")[0])


async def hang_up(mf: UaHarness, ue: UacDialogState) -> None:
    """The UE ends an established call with BYE; the MF answers 200."""
    bye = ue.bye()
    await mf.deliver(bye, ue.peer)
    assert mf.wire.final("BYE", call_id=ue.call_id).status == 200


# --------------------------------------------------------------------------- INVITE


async def test_invite_100_at_once_then_200_with_answer(make_mf: MakeMf) -> None:
    """RFC 3261 17.2.1 / 13.3.1: 100 Trying before the factory answers; then 200 with the SDP
    answer, Contact, Allow, Supported and a To tag kept by every later response."""
    gate = asyncio.Event()
    mf = make_mf(sessions=FakeSessionFactory(gate=gate))
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    assert mf.wire.summary() == ["100 INVITE"]
    trying = mf.wire.responses("INVITE")[0]
    assert to_tag_of(trying) is None  # RFC 3261 8.2.6.2: never a tag on 100
    assert mf.sessions.create_count == 1
    assert mf.sessions.offers == [OFFER]
    assert mf.ua.pending_invites == 1 and mf.ua.active_calls == 0

    gate.set()
    await mf.settle()
    ok = mf.wire.final("INVITE")
    assert ok.status == 200
    assert ok.body == DEFAULT_ANSWER
    assert ok.headers.get("Content-Type") == "application/sdp"
    assert ok.headers.get("Contact") == "<sip:mf@10.0.0.2:5060;transport=udp>"
    assert ok.headers.get("Allow") == ALLOW
    assert "timer" in ok.headers.get_list("Supported")
    tag = to_tag_of(ok)
    assert tag
    assert mf.ua.pending_invites == 0 and mf.ua.active_calls == 1

    ue.learn(ok)
    await mf.deliver(ue.ack(ok))
    await mf.deliver(ue.update())
    await mf.deliver(ue.invite(REOFFER))
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
    await hang_up(mf, ue)
    later = [r for r in mf.wire.responses() if r.status >= 200]
    assert [cseq_of(r)[1] for r in later] == ["INVITE", "UPDATE", "INVITE", "BYE"]
    assert {to_tag_of(r) for r in later} == {tag}


async def test_2xx_copies_record_route_and_the_mf_routes_its_bye(mf: UaHarness) -> None:
    """RFC 3261 12.1.1: the UAS copies every Record-Route, in order, into the 2xx (the UE's
    route set); its own in-dialog requests carry the route set as Route and go to the first
    hop (12.2.1.1)."""
    ue = UacDialogState()
    proxy = "<sip:10.0.0.9:5060;lr;transport=udp>, <sip:scscf.ims.example.net;lr>"
    edge = "<sip:pcscf.ims.example.net;lr>"
    await mf.deliver(ue.invite(OFFER, headers=(("Record-Route", proxy), ("Record-Route", edge))))
    ok = mf.wire.final("INVITE")
    assert ok.headers.get_list("Record-Route") == [
        "<sip:10.0.0.9:5060;lr;transport=udp>",
        "<sip:scscf.ims.example.net;lr>",
        "<sip:pcscf.ims.example.net;lr>",
    ]
    await mf.deliver(ue.ack(ok))
    mf.sessions.sessions[0].fail()
    await mf.settle()
    [bye] = mf.wire.select("BYE", requests=True)
    assert isinstance(bye.message, Request)
    assert bye.message.headers.get_list("Route") == ok.headers.get_list("Record-Route")
    assert bye.message.uri == "sip:ue@10.0.0.1:5060;transport=udp"
    assert bye.peer == Peer("udp", "10.0.0.9", 5060)
    await mf.deliver(ue.reply(bye.message, 200))
    await mf.deliver(ue.bye())  # the call is over: 481
    assert mf.wire.final("BYE").status == 481


async def test_call_info_from_the_invite(make_mf: MakeMf) -> None:
    # The UE's source (10.0.0.1) is configured as a peer asserting identities (a P-CSCF).
    peers = (IPv4Network("10.0.0.0/24"),)
    mf = make_mf(replace(DEFAULT_UA_CONFIG, asserted_identity_peers=peers))
    ue = UacDialogState()
    await mf.deliver(
        ue.invite(OFFER, headers=(("P-Asserted-Identity", "<sip:+15550001@ims.example.net>"),))
    )
    info = mf.sessions.calls[0]
    assert info.call_id == ue.call_id
    assert info.request_uri == ue.request_uri
    assert info.from_uri == ue.local_uri
    assert info.to_uri == ue.remote_uri
    assert info.identity == "sip:+15550001@ims.example.net"
    assert info.contact == ue.contact
    assert info.source_host == "10.0.0.1"
    ue.learn(mf.wire.final("INVITE"))
    await mf.deliver(ue.ack())
    await hang_up(mf, ue)


async def test_retransmitted_invite_while_answering_and_after_200(make_mf: MakeMf) -> None:
    """RFC 3261 17.2.1: a retransmission gets the last response (100, then the 200) and never
    reaches the UA: the factory runs once, one dialog only."""
    gate = asyncio.Event()
    mf = make_mf(sessions=FakeSessionFactory(gate=gate))
    ue = UacDialogState()
    invite = ue.invite(OFFER)
    await mf.deliver(invite)
    await mf.deliver(invite)
    assert mf.wire.statuses("INVITE") == [100, 100]
    assert mf.sessions.create_count == 1

    gate.set()
    await mf.settle()
    ok = mf.wire.final("INVITE")
    await mf.deliver(invite)
    assert mf.wire.statuses("INVITE") == [100, 100, 200, 200]
    assert mf.wire.responses("INVITE")[-1] == ok
    assert mf.sessions.create_count == 1
    assert mf.ua.active_calls == 1

    await mf.deliver(ue.ack(ok))
    await hang_up(mf, ue)


# --------------------------------------------------------------------------- CANCEL


async def test_cancel_before_answer(make_mf: MakeMf) -> None:
    """RFC 3261 9.2: 200 to the CANCEL, 487 to the INVITE with the call's To tag; the media
    being created is abandoned (the factory's create is cancelled, nothing created)."""
    gate = asyncio.Event()
    mf = make_mf(sessions=FakeSessionFactory(gate=gate))
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    await mf.deliver(ue.cancel())
    assert mf.wire.summary() == ["100 INVITE", "200 CANCEL", "487 INVITE"]
    terminated = mf.wire.final("INVITE")
    assert to_tag_of(terminated)
    assert mf.ua.pending_invites == 0 and mf.ua.active_calls == 0
    assert mf.sessions.cancelled == 1
    assert mf.sessions.sessions == []

    gate.set()  # too late: nothing answers any more
    await mf.settle()
    assert mf.wire.summary() == ["100 INVITE", "200 CANCEL", "487 INVITE"]
    await mf.deliver(ue.ack(terminated))  # ACK for the 487 ends the INVITE transaction
    assert mf.layer.stats.acks_absorbed == 1


async def test_cancel_while_a_factory_finishes_anyway_closes_the_media(make_mf: MakeMf) -> None:
    """A factory that completes its session despite the cancellation: the UA closes it."""
    gate = asyncio.Event()
    mf = make_mf(sessions=FakeSessionFactory(gate=gate, ignore_cancel=True))
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    await mf.deliver(ue.cancel())
    assert mf.wire.final("INVITE").status == 487
    assert len(mf.sessions.sessions) == 1
    assert mf.sessions.sessions[0].close_count == 1
    assert mf.ua.active_calls == 0
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))


async def test_cancel_200_carries_the_487_to_tag(make_mf: MakeMf) -> None:
    gate = asyncio.Event()
    mf = make_mf(sessions=FakeSessionFactory(gate=gate))
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    await mf.deliver(ue.cancel())
    terminated = mf.wire.final("INVITE")
    await mf.deliver(ue.ack(terminated))
    assert to_tag_of(mf.wire.final("CANCEL")) == to_tag_of(terminated)


async def test_cancel_after_200_has_no_effect(mf: UaHarness) -> None:
    """RFC 3261 9.2: the CANCEL matches the (Accepted) INVITE transaction, so it gets 200, but
    the INVITE stays answered 200 and the call goes on. Once the transaction is gone (Timer L)
    a CANCEL matches nothing: 481."""
    ue = UacDialogState()
    ok = await mf.call(ue, OFFER, ack=False)
    invite = ue.last_invite
    assert invite is not None
    await mf.deliver(ue.cancel(invite))
    assert mf.wire.final("CANCEL").status == 200
    assert to_tag_of(mf.wire.final("CANCEL")) == to_tag_of(ok)
    assert [r.status for r in mf.wire.responses("INVITE") if r.status >= 200] == [200]
    assert mf.ua.active_calls == 1
    await mf.deliver(ue.ack(ok))

    await mf.advance(64 * mf.timers.t1 + 1)  # Timer L ends the INVITE server transaction
    mf.wire.clear()
    await mf.deliver(ue.cancel(invite))
    assert mf.wire.statuses("CANCEL") == [481]
    assert mf.ua.active_calls == 1
    await hang_up(mf, ue)


# --------------------------------------------------------------------------- BYE


async def test_bye_and_its_retransmission(mf: UaHarness) -> None:
    """RFC 3261 15.1.2: 200 and the session ends; a retransmitted BYE gets the cached 200 from
    the transaction (17.2.2) and never reaches the UA: media closed once."""
    ue = UacDialogState()
    ok = await mf.call(ue, OFFER)
    media = mf.sessions.sessions[0]
    bye = ue.bye()
    await mf.deliver(bye)
    first = mf.wire.final("BYE")
    assert first.status == 200 and to_tag_of(first) == to_tag_of(ok)
    assert media.close_count == 1
    assert mf.ua.active_calls == 0
    await mf.deliver(bye)
    assert mf.wire.responses("BYE") == [first, first]
    assert media.close_count == 1


@pytest.mark.parametrize("to_tag", ["nosuchdialog", None])
async def test_bye_naming_no_dialog_is_481(mf: UaHarness, to_tag: str | None) -> None:
    """RFC 3261 15.1.2 / 12.2.2: a BYE that matches no dialog gets 481."""
    ue = UacDialogState()
    await mf.deliver(ue.request("BYE", to_tag=to_tag))
    assert mf.wire.statuses("BYE") == [481]


async def test_in_dialog_request_with_lower_cseq_is_500(mf: UaHarness) -> None:
    """RFC 3261 12.2.2: a CSeq lower than the last one seen in the dialog gets 500."""
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    await mf.deliver(ue.update())  # CSeq 2
    assert mf.wire.final("UPDATE").status == 200
    await mf.deliver(ue.request("BYE", cseq=1))
    stale = mf.wire.final("BYE")
    assert stale.status == 500
    assert mf.ua.active_calls == 1
    assert mf.sessions.sessions[0].close_count == 0
    await hang_up(mf, ue)


async def test_requests_naming_no_dialog_are_481_and_stray_ack_is_dropped(mf: UaHarness) -> None:
    """RFC 3261 12.2.2: a To tag that names no dialog gets 481; an ACK that matches nothing
    is dropped without an answer (17)."""
    ue = UacDialogState(remote_tag="gone")
    await mf.deliver(ue.invite(OFFER))
    await mf.deliver(ue.update(OFFER))
    await mf.deliver(ue.request("ACK", cseq=1))
    assert mf.wire.summary() == ["100 INVITE", "481 INVITE", "481 UPDATE"]
    assert mf.sessions.create_count == 0
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))  # the 481's own ACK
    await mf.deliver(UacDialogState().update())  # UPDATE without any To tag: no dialog either
    assert mf.wire.final("UPDATE").status == 481


# --------------------------------------------------------------------------- re-INVITE, UPDATE


async def test_reinvite_renegotiates_and_needs_its_own_ack(mf: UaHarness) -> None:
    """RFC 3261 14.2: the re-offer goes to the media session; 200 with its answer; the 2xx is
    retransmitted until the ACK for *this* INVITE arrives (13.3.1.4)."""
    ue = UacDialogState()
    ok = await mf.call(ue, OFFER)
    media = mf.sessions.sessions[0]
    media.reoffer_answer = REANSWER
    await mf.deliver(ue.invite(REOFFER))
    assert media.offers == [REOFFER]
    reok = mf.wire.final("INVITE")
    assert reok.status == 200 and reok.body == REANSWER
    assert cseq_of(reok)[0] == cseq_of(ok)[0] + 1
    assert to_tag_of(reok) == to_tag_of(ok)
    assert reok.headers.get("Contact") == ok.headers.get("Contact")

    await mf.advance(mf.timers.t1)
    assert mf.wire.responses("INVITE", status=200)[-1] == reok  # retransmitted
    count = len(mf.wire.responses("INVITE", status=200))
    await mf.deliver(ue.ack(reok))
    await mf.advance(10 * mf.timers.t2)
    assert len(mf.wire.responses("INVITE", status=200)) == count
    await hang_up(mf, ue)


async def test_reinvite_while_another_is_pending_is_500_with_retry_after(mf: UaHarness) -> None:
    """RFC 3261 14.2: a second INVITE before the final response to the first: 500 with a
    Retry-After of 0 to 10 s (491 is for glare with an INVITE the UAS itself sent)."""
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    media = mf.sessions.sessions[0]
    media.reoffer_gate = gate = asyncio.Event()
    await mf.deliver(ue.invite(REOFFER))
    await mf.deliver(ue.invite(REOFFER))
    second = mf.wire.final("INVITE")
    assert second.status == 500
    assert 0 <= retry_after(second) <= 10
    assert media.offers == [REOFFER]
    await mf.deliver(ue.ack(second))

    gate.set()
    await mf.settle()
    first_ok = [r for r in mf.wire.responses("INVITE", status=200) if cseq_of(r)[0] == 2]
    assert len(first_ok) == 1
    await mf.deliver(ue.request("ACK", cseq=2))
    await hang_up(mf, ue)


async def test_update_with_offer_while_reinvite_pending_is_500(mf: UaHarness) -> None:
    """RFC 3311 5.2: an UPDATE offer while an offer received is unanswered: 500 + Retry-After;
    an UPDATE without an offer is still a plain refresh (200)."""
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    media = mf.sessions.sessions[0]
    media.reoffer_gate = gate = asyncio.Event()
    await mf.deliver(ue.invite(REOFFER))
    await mf.deliver(ue.update(REOFFER))
    refused = mf.wire.final("UPDATE")
    assert refused.status == 500 and 0 <= retry_after(refused) <= 10
    await mf.deliver(ue.update())
    assert mf.wire.final("UPDATE").status == 200
    gate.set()
    await mf.settle()
    await mf.deliver(ue.request("ACK", cseq=2))
    assert media.offers == [REOFFER]
    await hang_up(mf, ue)


async def test_reinvite_before_the_initial_ack_is_500_with_retry_after(mf: UaHarness) -> None:
    """The initial INVITE is not complete until its ACK (its 2xx is still retransmitted):
    a re-INVITE then gets 500 with Retry-After 0..10 s, as RFC 3261 14.2 does for overlapping
    INVITEs; the media is not touched."""
    ue = UacDialogState()
    ok = await mf.call(ue, OFFER, ack=False)
    invite = ue.last_invite
    await mf.deliver(ue.invite(REOFFER))
    refused = mf.wire.final("INVITE")
    assert refused.status == 500 and 0 <= retry_after(refused) <= 10
    assert mf.sessions.sessions[0].offers == []
    await mf.deliver(ue.ack(refused))
    ue.last_invite = invite
    await mf.deliver(ue.ack(ok))
    await hang_up(mf, ue)


async def test_reoffer_refused_by_the_media_keeps_the_call(mf: UaHarness) -> None:
    """A re-offer the media refuses (SipError 488) is answered 488; the session goes on
    (RFC 3261 14.2: a failed re-INVITE leaves the session unchanged)."""
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    media = mf.sessions.sessions[0]
    media.reoffer_error = sip_error_with_warning(488, "no such stream")
    await mf.deliver(ue.invite(REOFFER))
    refused = mf.wire.final("INVITE")
    assert refused.status == 488
    assert refused.headers.get("Warning") == '304 avatar-mf "no such stream"'
    await mf.deliver(ue.ack(refused))
    media.reoffer_error = None
    await mf.deliver(ue.invite(REOFFER))
    assert mf.wire.final("INVITE").status == 200
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
    assert mf.ua.active_calls == 1
    await hang_up(mf, ue)


async def test_reoffer_crashing_the_media_is_500_and_does_not_wedge_the_dialog(
    mf: UaHarness,
) -> None:
    """A media bug during a re-offer: 500, and the next re-INVITE is served normally."""
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    media = mf.sessions.sessions[0]
    media.reoffer_error = RuntimeError("media layer bug")
    await mf.deliver(ue.invite(REOFFER))
    crashed = mf.wire.final("INVITE")
    assert crashed.status == 500
    await mf.deliver(ue.ack(crashed))
    media.reoffer_error = None
    await mf.deliver(ue.invite(REOFFER))
    assert mf.wire.final("INVITE").status == 200
    await mf.deliver(ue.ack(mf.wire.final("INVITE")))
    await hang_up(mf, ue)


async def test_update_with_and_without_sdp(mf: UaHarness) -> None:
    """RFC 3311: an UPDATE offer is renegotiated and answered in the 200; an UPDATE without a
    body is a session refresh: 200 without a body, media untouched."""
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    media = mf.sessions.sessions[0]
    media.reoffer_answer = REANSWER
    await mf.deliver(ue.update(REOFFER))
    answered = mf.wire.final("UPDATE")
    assert answered.status == 200 and answered.body == REANSWER
    assert media.offers == [REOFFER]
    await mf.deliver(ue.update())
    refreshed = mf.wire.final("UPDATE")
    assert refreshed.status == 200 and refreshed.body == b""
    assert refreshed.headers.get("Content-Type") is None
    assert media.offers == [REOFFER]
    await hang_up(mf, ue)


async def test_bye_while_a_reinvite_is_pending_answers_it_487(mf: UaHarness) -> None:
    """RFC 3261 15.1.2: after a BYE the UAS still answers pending requests, 487 recommended;
    the renegotiation is abandoned and the media closed once."""
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    media = mf.sessions.sessions[0]
    media.reoffer_gate = asyncio.Event()
    await mf.deliver(ue.invite(REOFFER))
    await hang_up(mf, ue)
    pending = mf.wire.final("INVITE")
    assert pending.status == 487 and cseq_of(pending)[0] == 2
    assert media.close_count == 1
    await mf.deliver(ue.ack(pending))


# --------------------------------------------------------------------------- capacity, OPTIONS


async def test_503_past_max_dialogs(make_mf: MakeMf) -> None:
    """A pending INVITE counts: past max_dialogs a new call gets 503 with Retry-After."""
    gate = asyncio.Event()
    mf = make_mf(replace(DEFAULT_UA_CONFIG, max_dialogs=1), FakeSessionFactory(gate=gate))
    first, second = UacDialogState(), UacDialogState()
    await mf.deliver(first.invite(OFFER))
    await mf.deliver(second.invite(OFFER))
    busy = mf.wire.final("INVITE", call_id=second.call_id)
    assert busy.status == 503 and retry_after(busy) == DEFAULT_UA_CONFIG.retry_after
    assert mf.sessions.create_count == 1
    await mf.deliver(second.ack(busy))
    gate.set()
    await mf.settle()
    ok = mf.wire.final("INVITE", call_id=first.call_id)
    await mf.deliver(first.ack(ok))
    await hang_up(mf, first)
    await mf.call(second, OFFER)  # room again
    await hang_up(mf, second)


async def test_draining_refuses_new_calls_and_options_but_serves_dialogs(mf: UaHarness) -> None:
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    mf.ua.draining = True
    late = UacDialogState()
    await mf.deliver(late.invite(OFFER))
    refused = mf.wire.final("INVITE", call_id=late.call_id)
    assert refused.status == 503 and retry_after(refused) == DEFAULT_UA_CONFIG.retry_after
    await mf.deliver(late.ack(refused))
    await mf.deliver(late.options())
    options = mf.wire.final("OPTIONS")
    assert options.status == 503 and retry_after(options) == DEFAULT_UA_CONFIG.retry_after
    await mf.deliver(ue.update())
    assert mf.wire.final("UPDATE").status == 200
    await hang_up(mf, ue)


async def test_options(mf: UaHarness) -> None:
    """RFC 3261 11.2: 200 with Allow, Accept and Supported."""
    await mf.deliver(UacDialogState().options())
    ok = mf.wire.final("OPTIONS")
    assert ok.status == 200
    assert ok.headers.get("Allow") == ALLOW
    assert ok.headers.get("Accept") == "application/sdp"
    assert ok.headers.get_list("Supported") == ["timer"]
    assert to_tag_of(ok)


# --------------------------------------------------------------------------- methods


@pytest.mark.parametrize(
    "method", ["MESSAGE", "INFO", "REFER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "PRACK", "REGISTER"]
)
async def test_known_methods_not_served_are_405_in_and_out_of_dialog(
    mf: UaHarness, method: str
) -> None:
    """RFC 3261 8.2.1: 405 with Allow, whether or not the request names a (live) dialog."""
    stranger = UacDialogState()
    await mf.deliver(stranger.request(method))
    await mf.deliver(stranger.request(method, to_tag="nosuchdialog"))
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    await mf.deliver(ue.request(method))
    answers = mf.wire.responses(method)
    assert [r.status for r in answers] == [405, 405, 405]
    assert all(r.headers.get("Allow") == ALLOW for r in answers)
    await hang_up(mf, ue)


@pytest.mark.parametrize("method", ["FOO", "VITE", "NCEL"])
async def test_unknown_methods_are_501_in_and_out_of_dialog(mf: UaHarness, method: str) -> None:
    """RFC 3261 8.2.1: 501 for a method the UAS does not know, checked before the dialog (a
    method whose name is part of the Allow text is no less unknown)."""
    stranger = UacDialogState()
    await mf.deliver(stranger.request(method))
    await mf.deliver(stranger.request(method, to_tag="nosuchdialog"))
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    await mf.deliver(ue.request(method))
    assert mf.wire.statuses(method) == [501, 501, 501]
    await hang_up(mf, ue)


async def test_a_refused_in_dialog_method_does_not_break_the_dialog(mf: UaHarness) -> None:
    ue = UacDialogState()
    await mf.call(ue, OFFER)
    await mf.deliver(ue.request("MESSAGE"))
    await mf.deliver(ue.update())
    assert mf.wire.final("UPDATE").status == 200
    await hang_up(mf, ue)


# --------------------------------------------------------------------------- media errors


async def test_factory_refusing_the_offer_is_answered_with_its_error(mf: UaHarness) -> None:
    """A SipError from the factory is the answer: 488 with its Warning (RFC 3261 13.3.1.3,
    20.43), the call's To tag; no call, no media left."""
    mf.sessions.error = sip_error_with_warning(488, "no data channel m-line")
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    refused = mf.wire.final("INVITE")
    assert refused.status == 488
    assert refused.headers.get("Warning") == '304 avatar-mf "no data channel m-line"'
    assert to_tag_of(refused)
    assert mf.ua.active_calls == 0 and mf.ua.pending_invites == 0
    assert mf.ua.stats.calls_failed == 1
    await mf.deliver(ue.ack(refused))


async def test_factory_crashing_is_500_and_the_ua_keeps_serving(mf: UaHarness) -> None:
    mf.sessions.error = RuntimeError("media layer bug")
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    crashed = mf.wire.final("INVITE")
    assert crashed.status == 500
    await mf.deliver(ue.ack(crashed))
    assert mf.ua.active_calls == 0 and mf.ua.pending_invites == 0

    mf.sessions.error = None
    again = UacDialogState()
    await mf.call(again, OFFER)
    await hang_up(mf, again)


async def test_media_failure_on_an_established_call_sends_bye(mf: UaHarness) -> None:
    """A media session that fails on its own (DTLS setup timeout): BYE to the UE's Contact
    (RFC 3261 15.1.1), media closed once, call removed."""
    ue = UacDialogState()
    ok = await mf.call(ue, OFFER)
    media = mf.sessions.sessions[0]
    media.fail("DTLS setup timeout")
    await mf.settle()
    [bye] = mf.wire.requests("BYE")
    assert bye.uri == "sip:ue@10.0.0.1:5060;transport=udp"
    assert to_tag_of(bye) == ue.local_tag
    assert f"tag={to_tag_of(ok)}" in (bye.headers.get("From") or "")
    assert "DTLS setup timeout" in (bye.headers.get("Reason") or "")
    assert mf.wire.select("BYE", requests=True)[0].peer == ue.peer
    assert media.close_count == 1
    assert mf.ua.active_calls == 0
    await mf.deliver(ue.reply(bye, 200))
    media.fail("again")  # a late second report changes nothing
    await mf.settle()
    assert len(mf.wire.requests("BYE")) == 1


async def test_media_failure_before_the_200_answers_the_invite(make_mf: MakeMf) -> None:
    """The media fails while the answer is being built: the INVITE gets a final error response
    (it would otherwise hang in Proceeding, which has no timer), nothing leaks."""
    gate = asyncio.Event()
    mf = make_mf(sessions=FakeSessionFactory(gate=gate))
    ue = UacDialogState()
    await mf.deliver(ue.invite(OFFER))
    mf.sessions.failure_callbacks[0]("DTLS setup timeout")
    await mf.settle()
    failed = mf.wire.final("INVITE")
    assert failed.status == 500
    assert mf.ua.pending_invites == 0 and mf.ua.active_calls == 0
    assert mf.wire.requests("BYE") == []
    gate.set()
    await mf.settle()
    assert mf.sessions.sessions == []
    await mf.deliver(ue.ack(failed))


async def test_transport_error_on_a_pending_invite_releases_the_call(make_mf: MakeMf) -> None:
    """The transport fails while the INVITE is pending (re-sending 100 Trying to a
    retransmission): the transaction ends (RFC 3261 17.2.1 Figure 7) and nobody can be answered
    any more, so the call and its media must go too."""
    gate = asyncio.Event()
    mf = make_mf(sessions=FakeSessionFactory(gate=gate, ignore_cancel=True))
    ue = UacDialogState(peer=UE_TCP)
    invite = ue.invite(OFFER)
    await mf.deliver(invite, UE_TCP)
    mf.wire.fail = True
    await mf.deliver(invite, UE_TCP)
    mf.wire.fail = False
    assert len(mf.layer) == 0
    assert mf.layer.stats.transport_errors == 1
    assert mf.ua.pending_invites == 0  # released at once, not when the factory answers
    assert mf.sessions.cancelled == 1
    gate.set()
    await mf.settle()
    assert mf.ua.active_calls == 0 and mf.ua.pending_invites == 0
    assert all(s.close_count == 1 for s in mf.sessions.sessions)


async def test_close_all_ends_pending_and_established_calls(make_mf: MakeMf) -> None:
    gate = asyncio.Event()
    mf = make_mf(sessions=FakeSessionFactory(gate=gate))
    up, ringing = UacDialogState(), UacDialogState()
    gate.set()
    await mf.call(up, OFFER)
    gate.clear()
    await mf.deliver(ringing.invite(OFFER))
    await mf.ua.close_all("shutdown")
    await mf.settle()
    assert mf.wire.final("INVITE", call_id=ringing.call_id).status == 503
    [bye] = mf.wire.requests("BYE")
    assert bye.headers.get("Call-ID") == up.call_id
    await mf.deliver(up.reply(bye, 200))
    await mf.deliver(ringing.ack(mf.wire.final("INVITE", call_id=ringing.call_id)))
    assert mf.ua.active_calls == 0 and mf.ua.pending_invites == 0


async def test_two_calls_are_independent(mf: UaHarness) -> None:
    a, b = UacDialogState(), UacDialogState()
    ok_a = await mf.call(a, OFFER)
    ok_b = await mf.call(b, OFFER)
    assert to_tag_of(ok_a) != to_tag_of(ok_b)
    assert mf.ua.active_calls == 2
    await hang_up(mf, a)
    assert mf.ua.active_calls == 1
    assert [s.close_count for s in mf.sessions.sessions] == [1, 0]
    await hang_up(mf, b)
