"""Two-leg calls: the MF as a media-terminating B2BUA (RFC 7092 section 3.2; RFC 3261; RFC 3326).

UE1 calls UE2 and the MF sits in the path. An INVITE whose Request-URI names no room
(:class:`RoomPolicy`) is bridged by :class:`TwoLegCalls`, the user agent's
:class:`~avatar_mf.ua.user_agent.CallBridge`:

- Leg 1 (UE1 -> MF) is answered by the MF's own media (the room session factory, as for a room
  call); leg 2 (MF -> UE2) is a new INVITE from the MF (``ua/uac_invite.py``) to UE1's
  Request-URI through the outbound proxy, From UE1's identity with a new tag (asserted on in
  P-Asserted-Identity only when a trusted peer asserted it on leg 1), its own Call-ID,
  carrying the MF's own offer (an :class:`~avatar_mf.ua.media_seam.OfferFactory`). Media
  terminate at the MF: each leg has its own SDP and data channels; both legs join one avatar
  room made for the pair (``CallInfo.room``), so the pipeline serves them as any room of two.
- UE1 gets its 200 only once UE2 answered (RFC 7092 3.2 relays the call's progress): 180-183
  from leg 2 are relayed to UE1 (without UE2's early-media SDP: media terminate at the MF); a
  2xx from leg 2 is ACKed and UE1 gets the MF's answer; UE2's
  refusal reaches UE1 with the same status (3xx, 401, 407 and 503, which mean something only to
  the hop that got them, become 480); no final answer within ``no_answer_timeout``: leg 2 is
  CANCELled and UE1 gets 480.
- CANCEL from UE1 while UE2 rings: UE1 gets 487 (the user agent), leg 2 is CANCELled (RFC
  3261 9.1; a 2xx that still comes is ACKed and ended with BYE).
- Once both legs are up each is a dialog of the user agent, with its own session timer (RFC
  4028) and re-INVITE/UPDATE handling (a re-offer on one leg is answered by that leg's media
  only). A leg that ends for any reason (BYE, session expiry, media failure, operator drop)
  ends the other with BYE carrying the reason (RFC 3326 Reason: ``other leg ended: bye``).

Why a two-leg call ended is a :class:`~avatar_mf.ua.end_reason.CallEnd`: ``peer_leg_ended`` for
the leg ended because the other one did, ``peer_leg_refused`` for UE1's INVITE refused because
UE2's was.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from avatar_mf.clock import Clock, TimerHandle
from avatar_mf.sip.build import new_call_id, new_tag
from avatar_mf.sip.dialog import Dialog
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.headers import parse_name_addr
from avatar_mf.sip.message import Request, Response
from avatar_mf.sip.peer import Peer
from avatar_mf.sip.timers import TimerConfig
from avatar_mf.sip.transaction_layer import ClientTransaction
from avatar_mf.sip.uri import SipUri, parse_uri
from avatar_mf.ua.end_reason import CallEnd, EndReason
from avatar_mf.ua.media_seam import (
    CallInfo,
    FailureCallback,
    MediaSession,
    OfferFactory,
    OfferSession,
    SessionFactory,
)
from avatar_mf.ua.uac_invite import (
    InviteSpec,
    OutgoingInvite,
    build_invite,
    hop_peer,
    leg_timer,
    via_for,
)
from avatar_mf.ua.user_agent import ALLOW, Call, UaTransport, UserAgent

log = logging.getLogger(__name__)

__all__ = ["RoomPolicy", "TwoLegCalls", "TwoLegConfig", "relayed_status"]

#: Room names of pairs start with a character no SIP URI user part holds unescaped (RFC 3261
#: 25.1), so a pair's room never meets a room a Request-URI names.
PAIR_ROOM_PREFIX = "#pair-"


@dataclass(frozen=True, slots=True)
class TwoLegConfig:
    """The settings of two-leg calls (``[calls]`` in the configuration).

    Attributes:
        room_pattern: a regular expression; a Request-URI whose user part matches it whole
            names a room (``.*``: every Request-URI, no two-leg calls).
        outbound_proxy: where second legs go (a SIP URI, e.g. ``sip:127.0.0.1:5070;lr``);
            empty: INVITEs to users who are not rooms are refused 480.
        no_answer_timeout: seconds a second leg may ring before it is CANCELled.
        host: the MF's address in Via and Contact; user_agent: the User-Agent header.
        session_expires, min_se: the session timer the MF asks for on second legs.
    """

    room_pattern: str = ".*"
    outbound_proxy: str = ""
    no_answer_timeout: float = 120.0
    host: str = "127.0.0.1"
    user_agent: str = "avatar-mf"
    session_expires: int = 1800
    min_se: int = 90


class RoomPolicy:
    """Which Request-URIs name rooms: those whose user part fully matches ``pattern`` (a URI
    without a user part is matched as the empty string; one that does not parse is a room, as
    it always was)."""

    def __init__(self, pattern: str) -> None:
        self._pattern = re.compile(pattern)

    def is_room(self, request_uri: str) -> bool:
        try:
            uri = parse_uri(request_uri)
        except SipError:
            return True
        user = uri.user or "" if isinstance(uri, SipUri) else ""
        return self._pattern.fullmatch(user) is not None


def relayed_status(status: int) -> int:
    """The status UE1 gets for UE2's refusal ``status`` (RFC 7092 3.2: relayed as is, but
    responses that concern only the MF's hop: redirects (the MF does not recurse), auth
    challenges (the MF has no credentials of UE1), 503 (RFC 3261 16.7 step 6: not passed on))."""
    if 300 <= status < 400 or status in (401, 407, 503):
        return 480
    return status


class _Refused(Exception):
    """Leg 2 got a final refusal: ``status`` to relay, with its reason phrase."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class _Pair:
    """One two-leg call: leg 1 (a pending then established :class:`Call`), the outgoing
    INVITE of leg 2, and leg 2's :class:`Call` once UE2 answered."""

    def __init__(self, bridge: TwoLegCalls, call1: Call, room: str) -> None:
        self.bridge = bridge
        self.call1 = call1
        self.room = room
        self.media1: MediaSession | None = None
        self.offer: OfferSession | None = None
        self.outgoing: OutgoingInvite | None = None
        self.call2: Call | None = None
        #: True while UE1's INVITE is being answered: the bridge's coroutine owns leg 1.
        self.connecting = True
        self.outcome: asyncio.Future[tuple[Response, Dialog]] = (
            asyncio.get_running_loop().create_future()
        )
        self.media1_closed = False
        self.offer_closed = False

    @property
    def log_extra(self) -> dict[str, object]:
        return {"call_id": self.call1.call_id}

    # -- InviteListener -------------------------------------------------------------------

    def on_progress(self, response: Response) -> None:
        # 180 Ringing .. 183 Session Progress: the call's progress. The MF terminates media,
        # so a 183's early-media SDP (UE2's) stays on leg 2: UE1 gets the status alone.
        if 180 <= response.status <= 183:
            self.bridge.ua.send_provisional(self.call1, response.status, response.reason)

    def on_answered(self, response: Response, dialog: Dialog) -> None:
        if not self.outcome.done():
            self.outcome.set_result((response, dialog))

    def on_refused(self, status: int, reason: str) -> None:
        if not self.outcome.done():
            self.outcome.set_exception(_Refused(status, reason))

    def no_answer(self) -> None:
        if self.outgoing is not None:
            self.outgoing.cancel()
        if not self.outcome.done():
            self.outcome.set_exception(_Refused(480, "No Answer"))

    # -- legs ending ----------------------------------------------------------------------

    def leg2_media_failed(self, reason: str) -> None:
        call2 = self.call2
        if call2 is not None and not call2.ended:
            self.bridge.ua.end_call(call2, CallEnd(EndReason.MEDIA_FAILED, reason))

    def leg1_closed(self) -> None:
        """Leg 1 ended (its media is being closed): end leg 2."""
        self.media1_closed = True
        call2 = self.call2
        if call2 is not None and not call2.ended:
            why = self.call1.end.text if self.call1.end is not None else "ended"
            self.bridge.ua.end_call(call2, CallEnd(EndReason.PEER_LEG_ENDED, why))
        self.bridge.release_if_done(self)

    def leg2_closed(self) -> None:
        """Leg 2 ended (its media is being closed): end leg 1, unless the bridge is still
        answering it (then the refusal is answered there)."""
        self.offer_closed = True
        call1 = self.call1
        if not self.connecting and not call1.ended and self.call2 is not None:
            why = self.call2.end.text if self.call2.end is not None else "ended"
            self.bridge.ua.end_call(call1, CallEnd(EndReason.PEER_LEG_ENDED, why))
        self.bridge.release_if_done(self)

    async def abort(self) -> None:
        """UE1's INVITE will not be answered 2xx: give leg 2 up, release both medias."""
        if self.outgoing is not None:
            self.outgoing.cancel()
        call2 = self.call2
        if call2 is not None:
            if not call2.ended:
                why = self.call1.end.text if self.call1.end is not None else "not answered"
                self.bridge.ua.end_call(call2, CallEnd(EndReason.PEER_LEG_ENDED, why))
        elif self.offer is not None and not self.offer_closed:
            self.offer_closed = True
            await _close(self.offer, self.log_extra)
        if self.media1 is not None and not self.media1_closed:
            self.media1_closed = True
            await _close(self.media1, self.log_extra)
        if self.media1 is None:
            self.media1_closed = True
        if self.offer is None:
            self.offer_closed = True


async def _close(media: MediaSession, extra: dict[str, object]) -> None:
    try:
        await media.close()
    except Exception:
        log.exception("closing the media of a two-leg call failed", extra=extra)


class _Leg1Media:
    """Leg 1's media as the user agent holds it: the answerer session; closing it ends leg 2."""

    def __init__(self, pair: _Pair, media: MediaSession) -> None:
        self._pair = pair
        self._media = media

    @property
    def local_sdp(self) -> bytes:
        return self._media.local_sdp

    def answer_sent(self) -> None:
        self._media.answer_sent()

    async def renegotiate(self, offer: bytes) -> bytes:
        return await self._media.renegotiate(offer)

    async def close(self) -> None:
        pair = self._pair
        if pair.media1_closed:
            return
        pair.leg1_closed()
        await _close(self._media, pair.log_extra)


class _Leg2Media:
    """Leg 2's media as the user agent holds it: the offerer session; closing it ends leg 1."""

    def __init__(self, pair: _Pair, media: OfferSession) -> None:
        self._pair = pair
        self._media = media

    @property
    def local_sdp(self) -> bytes:
        return self._media.local_sdp

    def answer_sent(self) -> None:
        self._media.answer_sent()

    async def renegotiate(self, offer: bytes) -> bytes:
        return await self._media.renegotiate(offer)

    async def close(self) -> None:
        pair = self._pair
        if pair.offer_closed:
            return
        pair.leg2_closed()
        await _close(self._media, pair.log_extra)


class TwoLegCalls:
    """The user agent's :class:`~avatar_mf.ua.user_agent.CallBridge` (see the module doc).

    Args:
        config: the settings.
        ua: the user agent (set ``ua.bridge`` to this object).
        answers: makes leg 1's media from UE1's offer (the room session factory).
        offers: makes leg 2's media, the MF's offer.
        sender: the user agent's transport (client transactions, local ports).
        send_ack: sends an ACK outside any transaction (``TransactionLayer.send_stateless``).
        clock, timers: the 64*T1 waits after a CANCEL and for 2xx retransmissions.
    """

    def __init__(
        self,
        config: TwoLegConfig,
        *,
        ua: UserAgent,
        answers: SessionFactory,
        offers: OfferFactory,
        sender: UaTransport,
        send_ack: Callable[[Request, Peer], None],
        clock: Clock,
        timers: TimerConfig,
    ) -> None:
        self._cfg = config
        self.ua = ua
        self._answers = answers
        self._offers = offers
        self._sender = sender
        self._send_ack = send_ack
        self._clock = clock
        self._timers = timers
        self.rooms = RoomPolicy(config.room_pattern)
        self._proxy: Peer | None = None
        self._route = ""
        if config.outbound_proxy:
            self._proxy = hop_peer(config.outbound_proxy)
            uri = config.outbound_proxy
            self._route = f"<{uri}>" if ";lr" in uri.lower() else f"<{uri};lr>"
        self._pairs: set[_Pair] = set()
        #: MF INVITEs by Call-ID, until 64*T1 after their final response (2xx retransmissions
        #: get their ACK again).
        self._outgoing: dict[str, OutgoingInvite] = {}
        self._expiry: dict[str, TimerHandle] = {}
        #: Two-leg calls answered (both legs up) and refused by leg 2 since start.
        self.answered = 0
        self.refused = 0

    # -- introspection --------------------------------------------------------------------

    @property
    def active_pairs(self) -> int:
        """Two-leg calls whose legs are not all released."""
        return len(self._pairs)

    @property
    def outgoing_invites(self) -> int:
        return len(self._outgoing)

    # -- CallBridge -----------------------------------------------------------------------

    def bridges(self, info: CallInfo) -> bool:
        return not self.rooms.is_room(info.request_uri)

    async def answer(
        self, call: Call, request: Request, info: CallInfo, on_failure: FailureCallback
    ) -> MediaSession:
        pair = _Pair(self, call, PAIR_ROOM_PREFIX + secrets.token_hex(8))
        self._pairs.add(pair)
        try:
            media = await self._connect(pair, request, info, on_failure)
        except _Refused as refused:
            self.refused += 1
            status = relayed_status(refused.status)
            reason = refused.reason if status == refused.status else None
            error = SipError(status, reason)
            end = CallEnd(EndReason.PEER_LEG_REFUSED, str(refused.status))
            log.info(
                "call %s: second leg refused %d %s",
                call.call_id,
                refused.status,
                refused.reason,
                extra=pair.log_extra,
            )
            self.ua.end_call(call, end, error)
            await self._give_up(pair)
            raise error from None
        except BaseException:
            await self._give_up(pair)
            raise
        pair.connecting = False
        self.answered += 1
        return media

    async def _give_up(self, pair: _Pair) -> None:
        """UE1's INVITE is refused (or was CANCELled): release the pair. Leg 1 stays the
        bridge's (``connecting``) until its refusal is under way: the caller raises at once."""
        await pair.abort()
        pair.connecting = False
        self.release_if_done(pair)

    async def _connect(
        self, pair: _Pair, request: Request, info: CallInfo, on_failure: FailureCallback
    ) -> MediaSession:
        proxy = self._proxy
        if proxy is None:
            log.warning(
                "call %s: %s names no room and no outbound proxy is set",
                info.call_id,
                info.request_uri,
                extra=pair.log_extra,
            )
            raise SipError(480, "No Outbound Proxy")
        # Leg 2 is one more dialog: refuse the call (503, as for any INVITE past max_dialogs)
        # rather than exceed the cap, counting the second legs still being placed.
        placing = sum(1 for o in self._outgoing.values() if not o.done)
        if not self.ua.has_room_for(1 + placing):
            log.warning(
                "call %s: no room for a second leg (max_dialogs)",
                info.call_id,
                extra=pair.log_extra,
            )
            raise SipError(503, "Too Many Calls", headers=(self.ua.retry_after_header(),))
        pair.media1 = await self._answers.create(
            replace(info, room=pair.room), request.body, on_failure
        )
        host = self._cfg.host
        leg2 = CallInfo(
            call_id=new_call_id(host),
            request_uri=info.request_uri,
            from_uri=info.identity,
            to_uri=info.to_uri,
            identity=info.to_uri,
            contact="",
            source_host=proxy.host,
            room=pair.room,
        )
        pair.offer = await self._offers.create_offer(leg2, pair.leg2_media_failed)
        invite = build_invite(
            self._spec(request, leg2, asserted=info.asserted),
            self._via(proxy),
            pair.offer.local_sdp,
        )
        outgoing = OutgoingInvite(
            invite,
            proxy,
            send_request=self._sender.send_request,
            send_ack=self._send_ack,
            make_via=self._via,
            clock=self._clock,
            abandon_after=64 * self._timers.t1,
            listener=pair,
            on_finished=lambda: self._finished(leg2.call_id),
        )
        pair.outgoing = outgoing
        self._outgoing[leg2.call_id] = outgoing
        log.info(
            "call %s: second leg %s to %s",
            info.call_id,
            leg2.call_id,
            info.request_uri,
            extra={**pair.log_extra, "leg2_call_id": leg2.call_id},
        )
        outgoing.start()
        timer = self._clock.call_later(self._cfg.no_answer_timeout, pair.no_answer)
        try:
            response, dialog = await pair.outcome
        finally:
            timer.cancel()
        leg2_info = replace(leg2, contact=_first_contact(response))
        timer2 = leg_timer(response)
        pair.call2 = self.ua.adopt_outgoing(
            dialog, proxy, _Leg2Media(pair, pair.offer), timer2, leg2_info
        )
        try:
            await pair.offer.accept_answer(response.body, leg2_info.contact)
        except SipError as err:
            log.info(
                "call %s: second leg's answer refused: %s",
                info.call_id,
                err.reason,
                extra=pair.log_extra,
            )
            self.ua.end_call(pair.call2, CallEnd(EndReason.REJECTED, f"{err.status} answer"))
            raise SipError(err.status, "Second Leg Media Refused") from None
        pair.offer.answer_sent()
        return _Leg1Media(pair, pair.media1)

    def _spec(self, request: Request, leg2: CallInfo, *, asserted: bool) -> InviteSpec:
        """Leg 2's INVITE. When UE1's identity was asserted by a trusted peer (RFC 3325 9.1),
        the MF, inside the same trust domain, asserts it on to the proxy in
        P-Asserted-Identity; an identity taken from From is never asserted."""
        headers: tuple[tuple[str, str], ...] = (("User-Agent", self._cfg.user_agent),)
        if asserted:
            headers += (("P-Asserted-Identity", f"<{leg2.from_uri}>"),)
        max_forwards = 70
        try:
            max_forwards = max(0, int(request.headers.get("Max-Forwards") or "70") - 1)
        except ValueError:
            pass
        assert self._proxy is not None
        return InviteSpec(
            request_uri=leg2.request_uri,
            from_uri=leg2.from_uri,
            to_uri=leg2.to_uri,
            from_tag=new_tag(),
            call_id=leg2.call_id,
            cseq=secrets.randbelow(2**30) + 1,
            contact=self._contact(self._proxy),
            route=self._route,
            max_forwards=min(70, max_forwards),
            session_expires=self._cfg.session_expires,
            min_se=self._cfg.min_se,
            allow=ALLOW,
            headers=headers,
        )

    def _via(self, peer: Peer) -> str:
        return via_for(peer, self._host(), self._sender.local_port(peer.transport))

    def _host(self) -> str:
        host = self._cfg.host
        return f"[{host}]" if ":" in host and not host.startswith("[") else host

    def _contact(self, peer: Peer) -> str:
        port = self._sender.local_port(peer.transport)
        return f"<sip:mf@{self._host()}:{port};transport={peer.transport}>"

    # -- responses to the MF's INVITEs ----------------------------------------------------

    def on_invite_response(self, tx: ClientTransaction, response: Response) -> None:
        outgoing = self._outgoing.get(tx.request.headers.get("Call-ID") or "")
        if outgoing is not None and outgoing.request is tx.request:
            outgoing.on_response(response)

    def on_invite_failed(self, tx: ClientTransaction, *, timeout: bool) -> None:
        outgoing = self._outgoing.get(tx.request.headers.get("Call-ID") or "")
        if outgoing is not None and outgoing.request is tx.request:
            outgoing.on_failed(timeout=timeout)

    def _finished(self, call_id: str) -> None:
        """An INVITE of the MF is over: forget it after 64*T1 (Timer M, RFC 6026)."""
        if call_id in self._expiry:
            return

        def forget() -> None:
            self._expiry.pop(call_id, None)
            self._outgoing.pop(call_id, None)

        self._expiry[call_id] = self._clock.call_later(64 * self._timers.t1, forget)

    def release_if_done(self, pair: _Pair) -> None:
        if pair.media1_closed and pair.offer_closed and not pair.connecting:
            self._pairs.discard(pair)

    def close(self) -> None:
        """Forget every INVITE (shutdown, after the user agent ended the calls)."""
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        self._outgoing.clear()


def _first_contact(response: Response) -> str:
    contacts = response.headers.get_list("Contact")
    if not contacts:
        return ""
    try:
        return str(parse_name_addr(contacts[0]))
    except SipError:
        return ""
