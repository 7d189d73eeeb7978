"""Shipped fakes for two-leg calls (``ua/b2bua.py``) without a network.

* :class:`FakeOfferFactory` / :class:`FakeOfferSession` -- implement
  :class:`~avatar_mf.ua.media_seam.OfferFactory` / :class:`~avatar_mf.ua.media_seam.OfferSession`:
  a fixed offer, the answer recorded (or refused with a :class:`SipError`), failures raised
  through ``on_failure``, every ``close`` counted.
* :class:`B2buaHarness` -- a :class:`~avatar_mf.testing.sip.UaHarness` whose user agent has a
  :class:`~avatar_mf.ua.b2bua.TwoLegCalls` bridge: rooms are Request-URI users starting with
  ``room``, second legs go to :data:`PROXY`. :meth:`B2buaHarness.leg2_invite` is the INVITE the
  MF sent, :meth:`B2buaHarness.ue2_response` UE2's response to it, :meth:`B2buaHarness.ue2`
  UE2's side of leg 2 for its own requests (BYE, re-INVITE).

A two-leg call::

    mf = B2buaHarness()
    ue1 = UacDialogState(request_uri="sip:bob@ims.example.net")
    await mf.deliver(ue1.invite(offer))             # leg 2's INVITE goes to PROXY
    await mf.deliver(mf.ue2_response(180), PROXY)   # 180 to UE1
    await mf.deliver(mf.ue2_response(200), PROXY)   # ACK to UE2, 200 to UE1
"""

from __future__ import annotations

from collections.abc import Iterable

from avatar_mf.sip.build import make_response, new_tag
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.testing.clock import FakeClock
from avatar_mf.testing.sip import (
    DEFAULT_ANSWER,
    DEFAULT_UA_CONFIG,
    FakeSessionFactory,
    UacDialogState,
    UaHarness,
)
from avatar_mf.ua.b2bua import TwoLegCalls, TwoLegConfig
from avatar_mf.ua.media_seam import CallInfo, FailureCallback, OfferSession
from avatar_mf.ua.user_agent import UserAgentConfig

__all__ = [
    "DEFAULT_OFFER",
    "PROXY",
    "UE2_ANSWER",
    "B2buaHarness",
    "FakeOfferFactory",
    "FakeOfferSession",
]

#: The outbound proxy of the harness (where second legs go).
PROXY = Peer("udp", "10.0.0.9", 5060)

#: The MF's offer on a second leg (what a fake offer session says).
DEFAULT_OFFER = (
    b"v=0\r\n"
    b"o=avatar-mf 7 1 IN IP4 10.0.0.2\r\n"
    b"s=-\r\n"
    b"c=IN IP4 10.0.0.2\r\n"
    b"t=0 0\r\n"
    b"m=application 40002 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    b"a=setup:actpass\r\n"
    b"a=sctp-port:5000\r\n"
    b'a=dcmap:1000 label="avatar-meta";subprotocol="3gpp-ar-metadata"\r\n'
)

#: UE2's answer to it.
UE2_ANSWER = DEFAULT_ANSWER


class FakeOfferSession:
    """An :class:`~avatar_mf.ua.media_seam.OfferSession` that records what it is asked.

    Attributes:
        call: the leg's CallInfo; answers: every answer given to :meth:`accept_answer`.
        answer_error: raised by :meth:`accept_answer` (``SipError(488)``: an unusable answer).
        offers: re-offers passed to :meth:`renegotiate`; close_count, answer_sent_count.
    """

    def __init__(self, call: CallInfo, on_failure: FailureCallback, offer: bytes) -> None:
        self.call = call
        self.local_sdp = offer
        self._on_failure = on_failure
        self.answers: list[bytes] = []
        self.contacts: list[str] = []
        self.answer_error: SipError | None = None
        self.offers: list[bytes] = []
        self.close_count = 0
        self.answer_sent_count = 0

    @property
    def closed(self) -> bool:
        return self.close_count > 0

    async def accept_answer(self, answer: bytes, contact: str = "") -> None:
        self.answers.append(answer)
        self.contacts.append(contact)
        if self.answer_error is not None:
            raise self.answer_error

    def answer_sent(self) -> None:
        self.answer_sent_count += 1

    async def renegotiate(self, offer: bytes) -> bytes:
        self.offers.append(offer)
        return self.local_sdp

    async def close(self) -> None:
        self.close_count += 1

    def fail(self, reason: str = "DTLS setup timeout") -> None:
        """The leg's media fails on its own."""
        self._on_failure(reason)


class FakeOfferFactory:
    """An :class:`~avatar_mf.ua.media_seam.OfferFactory` of :class:`FakeOfferSession`.

    ``answer_error`` is given to every session made (its ``accept_answer`` raises it)."""

    def __init__(self, offer: bytes = DEFAULT_OFFER, answer_error: SipError | None = None) -> None:
        self.offer = offer
        self.answer_error = answer_error
        self.sessions: list[FakeOfferSession] = []

    async def create_offer(self, call: CallInfo, on_failure: FailureCallback) -> OfferSession:
        session = FakeOfferSession(call, on_failure, self.offer)
        session.answer_error = self.answer_error
        self.sessions.append(session)
        return session


class B2buaHarness(UaHarness):
    """A :class:`UaHarness` with two-leg calls (see the module doc)."""

    def __init__(
        self,
        config: UserAgentConfig = DEFAULT_UA_CONFIG,
        *,
        two_leg: TwoLegConfig | None = None,
        timers: TimerConfig | None = None,
        sessions: FakeSessionFactory | None = None,
        offers: FakeOfferFactory | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        super().__init__(config, timers=timers, sessions=sessions, clock=clock)
        self.offers = offers or FakeOfferFactory()
        self.two_leg = two_leg or TwoLegConfig(
            room_pattern="room.*",
            outbound_proxy=f"sip:{PROXY.host}:{PROXY.port};lr",
            host=config.host,
            user_agent=config.user_agent,
            no_answer_timeout=60.0,
        )
        self.bridge = TwoLegCalls(
            self.two_leg,
            ua=self.ua,
            answers=self.sessions,
            offers=self.offers,
            sender=self.wire,
            send_ack=self.wire.send,
            clock=self.clock,
            timers=self.timers,
        )
        self.ua.bridge = self.bridge
        #: UE2's To tag in its responses.
        self.ue2_tag = new_tag()

    def leg2_invite(self, index: int = -1) -> Request:
        """An INVITE the MF sent (retransmissions included; default the last)."""
        invites = self.wire.requests("INVITE")
        if not invites:
            raise AssertionError(f"the MF sent no INVITE (sent: {self.wire.summary()})")
        return invites[index]

    def ue2_response(
        self,
        status: int,
        *,
        body: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
        invite: Request | None = None,
        to_tag: str | None = None,
    ) -> Response:
        """UE2's response to the MF's INVITE: a Contact, and UE2's answer in a 2xx."""
        request = invite or self.leg2_invite()
        extra = [("Contact", f"<sip:ue2@{PROXY.host}:{PROXY.port};transport=udp>"), *headers]
        if body is None and 200 <= status < 300:
            body = UE2_ANSWER
        tag = None if status == 100 else (to_tag or self.ue2_tag)
        return make_response(
            request,
            status,
            to_tag=tag,
            headers=extra,
            body=body or b"",
            content_type="application/sdp" if body else None,
        )

    def ue2(self) -> UacDialogState:
        """UE2's side of leg 2 (after the 2xx): its requests to the MF in that dialog."""
        invite = self.leg2_invite()
        frm = invite.headers.get("From") or ""
        mf_tag = frm.partition(";tag=")[2]
        return UacDialogState(
            peer=PROXY,
            call_id=invite.headers.get("Call-ID") or "",
            local_tag=self.ue2_tag,
            remote_tag=mf_tag,
            local_uri=invite.uri,
            remote_uri=frm.partition(";")[0].strip("<>"),
            request_uri=f"sip:mf@{self.two_leg.host}:5060",
            cseq=100,
        )

    async def assert_idle(self) -> None:
        await super().assert_idle()
        problems: list[str] = []
        for session in self.offers.sessions:
            if session.close_count != 1:
                problems.append(f"offer of {session.call.call_id} closed {session.close_count}x")
        if self.bridge.active_pairs:
            problems.append(f"{self.bridge.active_pairs} two-leg calls held")
        if self.bridge.outgoing_invites:
            problems.append(f"{self.bridge.outgoing_invites} outgoing INVITEs held")
        if problems:
            raise AssertionError("; ".join(problems))
