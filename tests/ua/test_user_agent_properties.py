"""Property test: random UE behaviour against the user agent over the real transaction layer.

Hypothesis draws how the media behaves (answers, answers late, refuses, crashes; re-offers
likewise), the transport, the session timer asked for, the capacity, and a random sequence of UE
actions on one or two dialogs: INVITE, retransmitted INVITE, ACK, CANCEL, BYE, retransmitted
BYE, re-INVITE, UPDATE with or without an offer, OPTIONS, media failure, late media answers,
answers to the MF's own BYE/UPDATE, and clock advances. Whatever happens:

* nothing raises out of the user agent (no TU error in the layer, no failed task);
* no server transaction ever sends two different final responses;
* after the UE ends every flow (ACK what was answered, CANCEL what was not, BYE what was
  established) and a long clock advance, the leak invariant holds
  (:meth:`UaHarness.assert_idle`: no call, no pending INVITE, no transaction, no timer, every
  media session closed exactly once).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.testing.sip import (
    DEFAULT_UA_CONFIG,
    UE_TCP,
    UE_UDP,
    FakeSessionFactory,
    UacDialogState,
    UaHarness,
    cseq_of,
    sip_error_with_warning,
)

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()

MEDIA_MODES = ["answer", "late", "refuse", "crash"]
TIMERS: list[tuple[tuple[str, str], ...]] = [
    (),
    (("Supported", "timer"), ("Session-Expires", "90;refresher=uac")),
    (("Supported", "timer"), ("Session-Expires", "90;refresher=uas")),
    (("Session-Expires", "90"),),
]

dialog = st.integers(min_value=0, max_value=1)
UE_ACTIONS = [
    "invite",
    "retransmit_invite",
    "ack",
    "ack",
    "cancel",
    "bye",
    "retransmit_bye",
    "reinvite",
    "update",
    "update_offer",
    "options",
    "media_failure",
]
ue_action = st.tuples(st.sampled_from(UE_ACTIONS), dialog)
action = st.one_of(
    *[ue_action] * 5,  # weights: mostly the UE acting, often time passing, sometimes the media
    *[st.tuples(st.just("advance"), st.sampled_from([0.1, 0.5, 1.0, 4.0, 16.0, 40.0, 100.0]))] * 2,
    st.tuples(st.just("release"), st.just(0)),
    st.tuples(st.just("answer_mf"), st.sampled_from([200, 200, 408, 481])),
)


@dataclass
class Ue:
    """One UE dialog and what it sent."""

    state: UacDialogState
    invites: list[Request] = field(default_factory=list)
    cancels: dict[int, Request] = field(default_factory=dict)  # id(INVITE) -> its CANCEL
    last_bye: Request | None = None


@dataclass
class Scenario:
    media: str
    reoffer: str
    peer: Peer
    timer: tuple[tuple[str, str], ...]
    max_dialogs: int
    actions: list[tuple[str, Any]]


def _branch(message: Request | Response) -> str:
    via = message.headers.get("Via") or ""
    return via.split("branch=")[1].split(";")[0] if "branch=" in via else ""


def final_for(mf: UaHarness, request: Request) -> Response | None:
    """The final response the MF sent to ``request`` (matched by branch and CSeq)."""
    branch, cseq = _branch(request), request.headers.get("CSeq")
    for response in reversed(mf.wire.responses(request.method)):
        if response.status >= 200 and _branch(response) == branch:
            if response.headers.get("CSeq") == cseq:
                return response
    return None


def learn_tag(mf: UaHarness, ue: Ue) -> None:
    for response in mf.wire.responses("INVITE", status=200, call_id=ue.state.call_id):
        ue.state.learn(response)


class Runner:
    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.gate = asyncio.Event()
        factory = FakeSessionFactory(
            gate=self.gate if scenario.media == "late" else None,
            error=(
                sip_error_with_warning(488)
                if scenario.media == "refuse"
                else RuntimeError("media bug")
                if scenario.media == "crash"
                else None
            ),
        )
        config = replace(
            DEFAULT_UA_CONFIG, session_expires=120, min_se=90, max_dialogs=scenario.max_dialogs
        )
        self.mf = UaHarness(config, sessions=factory)
        self.ues = [Ue(UacDialogState(peer=scenario.peer)) for _ in range(2)]
        self.answered: set[int] = set()  # id() of MF requests the UE answered
        self.reoffer_gates: list[asyncio.Event] = []
        self.first_sent: dict[int, float] = {}  # id() of a UE request -> when first sent
        self.acked: set[int] = set()  # id() of the INVITEs the UE acknowledged

    async def send(self, message: Request | Response) -> None:
        self.first_sent.setdefault(id(message), self.mf.clock.now())
        await self.mf.deliver(message, self.s.peer)

    def may_retransmit(self, request: Request) -> bool:
        """What a UAC retransmits (RFC 3261 17.1): only over UDP, only while its client
        transaction lives (64*T1), never an INVITE it has acknowledged. A copy arriving
        later would start a new server transaction, whose different answer is legitimate (the
        final-response check keys transactions by branch)."""
        first = self.first_sent.get(id(request))
        return (
            not self.s.peer.reliable
            and id(request) not in self.acked
            and first is not None
            # Timer F and Timer J both end at 64*T1; a nanosecond short of it, so float
            # rounding (0.1 + 16 + 16 - 0.1 < 32) cannot let a copy out at the very instant
            # the server transaction is gone.
            and self.mf.clock.now() - first < 64 * self.mf.timers.t1 - 1e-9
        )

    def arm_media(self) -> None:
        """Give every media session the scenario's re-offer behaviour."""
        for session in self.mf.sessions.sessions:
            if self.s.reoffer == "late" and session.reoffer_gate is None:
                session.reoffer_gate = asyncio.Event()
                self.reoffer_gates.append(session.reoffer_gate)
            elif self.s.reoffer == "refuse":
                session.reoffer_error = sip_error_with_warning(488)
            elif self.s.reoffer == "crash":
                session.reoffer_error = RuntimeError("media bug")

    async def step(self, name: str, arg: Any) -> None:
        mf = self.mf
        if name == "advance":
            await mf.advance(float(arg))
            return
        if name == "release":
            self.gate.set()
            for gate in self.reoffer_gates:
                gate.set()
            await mf.settle()
            return
        if name == "answer_mf":
            for request in mf.wire.requests():
                if id(request) not in self.answered:
                    self.answered.add(id(request))
                    # make_response keeps the To tag the MF's request already carries.
                    await self.send(self.ues[0].state.reply(request, int(arg)))
            return
        ue = self.ues[int(arg)]
        state = ue.state
        learn_tag(mf, ue)
        if name == "invite" and not ue.invites:
            ue.invites.append(state.invite(OFFER, headers=self.s.timer))
            await self.send(ue.invites[-1])
        elif name == "reinvite" and state.remote_tag:
            ue.invites.append(state.invite(OFFER, headers=self.s.timer))
            await self.send(ue.invites[-1])
        elif name == "retransmit_invite" and ue.invites and self.may_retransmit(ue.invites[-1]):
            await self.send(ue.invites[-1])
        elif name == "ack" and ue.invites:
            final = final_for(mf, ue.invites[-1])
            if final is not None:
                state.last_invite = ue.invites[-1]
                self.acked.add(id(ue.invites[-1]))
                await self.send(state.ack(final))
        elif name == "cancel" and ue.invites:
            await self.cancel(ue, ue.invites[-1])
        elif name == "bye":
            ue.last_bye = state.bye()
            await self.send(ue.last_bye)
        elif name == "retransmit_bye" and ue.last_bye and self.may_retransmit(ue.last_bye):
            await self.send(ue.last_bye)
        elif name == "update":
            await self.send(state.update(headers=self.s.timer))
        elif name == "update_offer":
            await self.send(state.update(OFFER))
        elif name == "options":
            await self.send(state.options())
        elif name == "media_failure":
            for i, info in enumerate(mf.sessions.calls):
                if info.call_id == state.call_id:
                    mf.sessions.failure_callbacks[i]("DTLS setup timeout")
            await mf.settle()
        self.arm_media()

    async def cancel(self, ue: Ue, invite: Request) -> None:
        """CANCEL ``invite``: one CANCEL per INVITE, re-sent while its transaction lives."""
        cancel = ue.cancels.get(id(invite))
        if cancel is None:
            cancel = ue.cancels[id(invite)] = ue.state.cancel(invite)
        elif not self.may_retransmit(cancel):
            return
        await self.send(cancel)

    async def end_flows(self) -> None:
        """What a well-behaved UE does last: every INVITE acknowledged or cancelled, every
        established dialog ended with BYE, every MF request answered."""
        mf = self.mf
        self.gate.set()
        for gate in self.reoffer_gates:
            gate.set()
        await mf.settle()
        for ue in self.ues:
            for invite in ue.invites:
                if final_for(mf, invite) is None:
                    await self.cancel(ue, invite)
                final = final_for(mf, invite)
                if final is not None:
                    ue.state.last_invite = invite
                    await self.send(ue.state.ack(final))
            learn_tag(mf, ue)
            if ue.state.remote_tag:
                await self.send(ue.state.bye())
        await self.step("answer_mf", 200)
        for _ in range(4):  # the MF's BYEs after timeouts, answered or timing out
            await mf.advance(200.0)
            await self.step("answer_mf", 200)

    def check_final_responses(self) -> None:
        for key, finals in self.mf.final_responses_per_transaction().items():
            assert len(finals) == 1, f"{key}: {sorted(r.status for r in finals)}"


async def run(scenario: Scenario) -> None:
    runner = Runner(scenario)
    try:
        for name, arg in scenario.actions:
            await runner.step(name, arg)
            runner.check_final_responses()
            assert not runner.mf.task_errors()
            assert runner.mf.layer.stats.tu_errors == 0
        await runner.end_flows()
        await runner.mf.assert_idle()
        # Every INVITE that reached the UA got exactly one final response.
        for ue in runner.ues:
            for invite in ue.invites:
                assert final_for(runner.mf, invite) is not None, cseq_of(invite)
    finally:
        runner.mf.close()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    media=st.sampled_from(MEDIA_MODES),
    reoffer=st.sampled_from(MEDIA_MODES),
    peer=st.sampled_from([UE_UDP, UE_TCP]),
    timer=st.sampled_from(TIMERS),
    max_dialogs=st.sampled_from([1, 2]),
    second_call=st.booleans(),
    then=st.sampled_from(["ack", "cancel", "retransmit_invite", "release", "nothing"]),
    actions=st.lists(action, max_size=30),
)
def test_random_ue_behaviour_never_breaks_the_ua(
    media: str,
    reoffer: str,
    peer: Peer,
    timer: tuple[tuple[str, str], ...],
    max_dialogs: int,
    second_call: bool,
    then: str,
    actions: list[tuple[str, Any]],
) -> None:
    # Every scenario starts with a call (two when second_call) and a likely next step for the
    # first one; the rest is random.
    opening: list[tuple[str, Any]] = [("invite", 0)] + ([("invite", 1)] if second_call else [])
    opening.append((then, 0))
    scenario = Scenario(media, reoffer, peer, timer, max_dialogs, opening + actions)
    asyncio.run(run(scenario))
