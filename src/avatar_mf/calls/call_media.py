"""Call media: from an SDP offer to open data channels, and back to an SDP answer.

:class:`CallSessionFactory` is the user agent's :class:`~avatar_mf.ua.media_seam.SessionFactory`.
For each offer it plans the answer (``sdp.offer_answer.plan_answer``: audio/video rejected with
port 0, one data channel m-line accepted with the streams the policy takes), creates the data
channel endpoint (``media.endpoint``), writes the answer from the endpoint's local parameters,
and starts DTLS/SCTP. A re-offer (re-INVITE, UPDATE) adds the new streams to the live
association; one that restarts ICE (RFC 8445 section 9) keeps it too, with new local ICE
credentials on the ICE-lite path, and is refused (488) on aioice's full agent. Messages
arriving on a channel go to the channel service chosen by its subprotocol (``services/``); a
subprotocol with no service registered runs the diagnostic echo service.

Traffic is counted for ``/metrics`` in the factory's :class:`ChannelTraffic` (messages and
bytes per subprotocol and direction, channels open per subprotocol, data channel sessions
failed by reason) and per call (``messages_in`` ... ``bytes_out``, for ``/sessions``).
Subprotocols without a registered service are counted as ``other`` so a UE cannot grow the
label set. A message costs two additions to plain ints on its channel's :class:`Flow`; the
per-subprotocol and per-call figures are summed from the flows when they are read (a scrape,
``/sessions``, a CDR), not per message (issue 16: CPU per relayed unit).
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial

from avatar_mf.calls.audio import MEDIA_TIMEOUT, AudioPlane, CallAudio
from avatar_mf.calls.video import CallVideo, VideoPlane
from avatar_mf.channels.base import ChannelInfo, ChannelService, EchoService, ServiceFactory
from avatar_mf.config import AppConfig
from avatar_mf.media.endpoint import DataChannelEndpointFactory
from avatar_mf.media.errors import MediaError
from avatar_mf.media.events import (
    ChannelClosed,
    ChannelOpened,
    MessageReceived,
    SessionClosed,
    SessionConnected,
    SessionEvent,
    SessionFailed,
)
from avatar_mf.media.ice_lite import restarts_ice
from avatar_mf.media.params import RemoteParams
from avatar_mf.media.sdp_params import answer_params, remote_params, stream_spec
from avatar_mf.media.session import DataChannelSession
from avatar_mf.rooms.rooms import room_name
from avatar_mf.sdp.audio import AudioPlan
from avatar_mf.sdp.datachannel import StreamPolicy
from avatar_mf.sdp.errors import SdpError, SdpNotAcceptable
from avatar_mf.sdp.model import SessionDescription, parse_sdp, serialize_sdp
from avatar_mf.sdp.offer_answer import (
    AnswerPlan,
    AnswerPolicy,
    DataChannelAnswerParams,
    MediaLinePlan,
    Negotiated,
    plan_answer,
    render_answer,
    versioned_answer,
)
from avatar_mf.sip.errors import SipError
from avatar_mf.sip.feature_tags import avatar_feature_tags
from avatar_mf.ua.media_seam import CallInfo, FailureCallback, MediaSession

log = logging.getLogger(__name__)

RX = "rx"
TX = "tx"


class Flow:
    """One channel's (or a call's stray) traffic as plain ints, counted per message and
    summed into :class:`ChannelTraffic` and the call's figures when they are read."""

    __slots__ = ("label", "messages_in", "bytes_in", "messages_out", "bytes_out")

    def __init__(self, label: str) -> None:
        self.label = label
        self.messages_in = 0
        self.bytes_in = 0
        self.messages_out = 0
        self.bytes_out = 0


@dataclass
class ChannelTraffic:
    """Node-wide data channel counters, keyed by subprotocol label
    (:meth:`CallSessionFactory.subprotocol_label`)."""

    #: Flows of channels now open (counted per message), and what closed ones counted.
    live: set[Flow] = field(default_factory=set)
    _settled_messages: Counter[tuple[str, str]] = field(
        default_factory=Counter, init=False, repr=False
    )
    _settled_bytes: Counter[tuple[str, str]] = field(
        default_factory=Counter, init=False, repr=False
    )
    #: Channels open now, by subprotocol.
    open_channels: Counter[str] = field(default_factory=Counter)
    #: Channels opened since start, by subprotocol.
    opened: Counter[str] = field(default_factory=Counter)
    #: Data channel sessions that never came up, by reason ("setup timeout" ...).
    failed: Counter[str] = field(default_factory=Counter)

    @property
    def messages(self) -> Counter[tuple[str, str]]:
        """Messages by (subprotocol, "rx" | "tx"), summed now."""
        total = Counter(self._settled_messages)
        for flow in self.live:
            _add(total, flow.label, flow.messages_in, flow.messages_out)
        return total

    @property
    def bytes(self) -> Counter[tuple[str, str]]:
        """Bytes by (subprotocol, "rx" | "tx"), summed now."""
        total = Counter(self._settled_bytes)
        for flow in self.live:
            _add(total, flow.label, flow.bytes_in, flow.bytes_out)
        return total

    def settle(self, flow: Flow) -> None:
        """``flow``'s channel closed: its counts are kept, it is no longer summed live."""
        if flow in self.live:
            self.live.discard(flow)
            _add(self._settled_messages, flow.label, flow.messages_in, flow.messages_out)
            _add(self._settled_bytes, flow.label, flow.bytes_in, flow.bytes_out)


def _add(counter: Counter[tuple[str, str]], label: str, rx: int, tx: int) -> None:
    if rx:
        counter[label, RX] += rx
    if tx:
        counter[label, TX] += tx


def _bundled(plan: AnswerPlan) -> bool:
    """Whether ``plan`` runs SRTP on the data channel's transport (WebRTC audio or video)."""
    return CallAudio.bundled(plan.audio) or CallVideo.bundled(plan.video)


def _failure_label(reason: str) -> str:
    """A bounded label for a media failure reason (``setup timeout``, ``dtls failed`` ...)."""
    text = reason.strip().lower().replace(" ", "_")
    if not text or len(text) > 40 or not text.replace("_", "").isalpha():
        return "other"
    return text


def _sdp_error(err: SdpError, agent: str) -> SipError:
    return SipError(
        err.status, err.reason_phrase, headers=(("Warning", err.warning.header_value(agent)),)
    )


class CallMediaSession:
    """The media of one call: its SDP state and its data channel association."""

    def __init__(
        self,
        factory: CallSessionFactory,
        call: CallInfo,
        on_failure: FailureCallback,
    ) -> None:
        self._factory = factory
        self.call = call
        #: The caller's avatar feature tags (RFC 3840 Contact parameters), read once per call.
        self.avatar_tags = avatar_feature_tags(call.contact)
        self._on_failure = on_failure
        self.dc: DataChannelSession | None = None
        #: The offer's a=dcsa attributes (the avatar negotiation reads its own from them).
        self.dcsa: tuple[str, ...] = ()
        self.negotiated: Negotiated | None = None
        self._session_id = secrets.randbelow(2**31)
        self._version = 0
        self.closed = False
        self._services: dict[int, ChannelService] = {}
        #: Open channels: stream id -> subprotocol label.
        self.open_channels: dict[int, str] = {}
        # Each open channel's traffic; messages on a stream without an open channel go to
        # the "other" flow; the flows of closed channels are kept for the call's figures.
        self._flows: dict[int, Flow] = {}
        self._other: Flow | None = None
        self._closed_flows: list[Flow] = []
        self._log_extra = {"call_id": call.call_id}
        plane = factory.audio
        #: The call's IMS-style audio streams (None when the node serves no audio).
        self.audio: CallAudio | None = (
            CallAudio(plane, call.call_id, call.room or room_name(call.request_uri), on_failure)
            if plane is not None
            else None
        )
        self._audio_ports: dict[int, int] = {}
        #: The call's IMS-style video streams (None when the node serves no video).
        self.video: CallVideo | None = (
            CallVideo(factory.video, call.call_id, self._video_timed_out)
            if factory.video is not None
            else None
        )
        self._video_ports: dict[int, int] = {}

    def _video_timed_out(self) -> None:
        """A video stream saw no RTP for ``rtp_timeout``: a call without audio streams (whose
        own timeout would end it) ends for it."""
        if not self.closed and (self.audio is None or not self.audio.live):
            self._on_failure(MEDIA_TIMEOUT)

    def _flow(self, stream_id: int) -> Flow:
        """The flow counting ``stream_id`` (the call's "other" one without an open channel)."""
        flow = self._flows.get(stream_id)
        if flow is not None:
            return flow
        if self._other is None:
            self._other = Flow("other")
            self._factory.traffic.live.add(self._other)
        return self._other

    def _sum(self, name: str) -> int:
        flows = [*self._flows.values(), *self._closed_flows]
        if self._other is not None:
            flows.append(self._other)
        return sum(getattr(flow, name) for flow in flows)

    @property
    def messages_in(self) -> int:
        return self._sum("messages_in")

    @property
    def messages_out(self) -> int:
        return self._sum("messages_out")

    @property
    def bytes_in(self) -> int:
        return self._sum("bytes_in")

    @property
    def bytes_out(self) -> int:
        return self._sum("bytes_out")

    @property
    def local_sdp(self) -> bytes:
        assert self.negotiated is not None
        return serialize_sdp(self.negotiated.answer).encode()

    # -- offer/answer ---------------------------------------------------------------------

    async def _apply_media(self, plan: AnswerPlan) -> AnswerPlan:
        """Open (keep, close) the video, then the audio streams of ``plan``."""
        return await self._apply_audio(await self._apply_video(plan))

    async def _apply_video(self, plan: AnswerPlan) -> AnswerPlan:
        """Open (keep, close) the video streams of ``plan``; those that cannot be served (no
        port) become port 0."""
        if self.video is None:
            return plan
        ports, refused = await self.video.apply(plan.video)
        self._video_ports = ports
        if not refused:
            return plan
        gone = {p.index for p in refused}
        lines = tuple(
            MediaLinePlan(line.index, line.media, False, "no RTP port for video", 370)
            if line.index in gone
            else line
            for line in plan.lines
        )
        return replace(plan, lines=lines, video=tuple(p for p in plan.video if p.index not in gone))

    async def _apply_audio(self, plan: AnswerPlan) -> AnswerPlan:
        """Open (keep, close) the audio streams of ``plan``; the m-lines that cannot be served
        (room full, no port) become port 0."""
        if self.audio is None:
            return plan
        ports, refused = await self.audio.apply(plan.audio)
        self._audio_ports = ports
        if not refused:
            return plan
        gone = {p.index for p in refused}
        lines = tuple(
            MediaLinePlan(line.index, line.media, False, "audio room full or no RTP port", 370)
            if line.index in gone
            else line
            for line in plan.lines
        )
        kept: tuple[AudioPlan, ...] = tuple(p for p in plan.audio if p.index not in gone)
        if plan.datachannel is None and not kept and not plan.video:
            raise SipError(503, "No Media Resources", headers=(("Retry-After", "5"),))
        return replace(plan, lines=lines, audio=kept)

    async def answer(self, body: bytes) -> None:
        offer = self._parse(body)
        plan = await self._apply_media(self._plan(offer, previous=None))
        params = None
        if plan.datachannel is not None:
            dc = plan.datachannel
            self.dcsa = tuple(s.attribute for s in dc.remote.dcsas)
            try:
                self.dc = await self._factory.media.create(
                    remote_params(dc.remote),
                    [stream_spec(m) for m in dc.accepted],
                    on_event=self._on_event,
                    setup=dc.local_setup,
                    srtp=True if _bundled(plan) else None,
                )
            except MediaError as exc:
                raise SipError(exc.status_hint, str(exc)[:100]) from exc
            params = answer_params(self.dc.local)
            self._attach_bundle(self.dc)
        self.negotiated = Negotiated(offer, self._render(plan, params))

    def _attach_bundle(self, dc: DataChannelSession) -> None:
        """The audio and video BUNDLEd with the data channel onto its DTLS transport."""
        if self.audio is not None:
            self.audio.attach_bundle(dc)
        if self.video is not None:
            self.video.attach_bundle(dc)

    def answer_sent(self) -> None:
        """The 2xx carrying the answer went out: start the association (ICE, DTLS, SCTP).

        Not before: a call CANCELled or refused while the answer was being made never starts
        one (the user agent calls this only once the 2xx is handed to its transaction)."""
        if self.dc is not None and not self.closed:
            self.dc.start()

    async def renegotiate(self, offer_body: bytes) -> bytes:
        assert self.negotiated is not None
        offer = self._parse(offer_body)
        plan = self._plan(offer, previous=self.negotiated)
        restart = self._ice_restart(plan)  # before anything changes: a 488 leaves the call be
        plan = await self._apply_media(plan)
        dc = plan.datachannel
        params = None
        if dc is not None:
            if dc.new_association or self.dc is None:
                # A new DTLS association (new tls-id or transport): replace the old one.
                old, self.dc = self.dc, None
                if old is not None:
                    await old.close()
                try:
                    self.dc = await self._factory.media.create(
                        remote_params(dc.remote),
                        [stream_spec(m) for m in dc.accepted],
                        on_event=self._on_event,
                        setup=dc.local_setup,
                        srtp=True if _bundled(plan) else None,
                    )
                except MediaError as exc:
                    raise SipError(exc.status_hint, str(exc)[:100]) from exc
                params = answer_params(self.dc.local)
                self.dc.start()
            else:
                for gone in dc.changes.closed:
                    if gone.stream_id in self.dc.streams:
                        self.dc.close_stream(gone.stream_id)
                if dc.changes.opened:
                    self.dc.add_streams(stream_spec(m) for m in dc.changes.opened)
                if restart is not None:
                    # New local credentials from here on: the 2xx carrying them goes out in
                    # this same step (the user agent sends it as renegotiate returns).
                    try:
                        self.dc.restart_ice(restart)
                    except MediaError as exc:
                        raise SipError(exc.status_hint, str(exc)[:100]) from exc
                params = answer_params(self.dc.local)
            self._attach_bundle(self.dc)
        elif self.dc is not None:
            old, self.dc = self.dc, None
            await old.close()
        answer = versioned_answer(self.negotiated.answer, self._render(plan, params))
        self.negotiated = Negotiated(offer, answer)
        return serialize_sdp(answer).encode()

    def _ice_restart(self, plan: AnswerPlan) -> RemoteParams | None:
        """The peer's new parameters when ``plan`` keeps the DTLS association and restarts
        ICE (RFC 8445 section 9, RFC 8839 4.4.1.1.1); None otherwise. On a path that cannot
        restart (aioice's full agent, ``media.ice_lite = false``) the re-offer is refused
        with 488 and a Warning saying so, and the call goes on as before."""
        dc, session = plan.datachannel, self.dc
        if dc is None or dc.new_association or session is None or session.remote is None:
            return None
        remote = remote_params(dc.remote)
        if not restarts_ice(session.remote.ice, remote.ice):
            return None
        if not session.can_restart_ice:
            refusal = SdpNotAcceptable(
                "ICE restart (RFC 8445 section 9) is not supported with media.ice_lite = "
                "false: keep a=ice-ufrag/a=ice-pwd, or offer a new DTLS association",
                line=dc.remote.media.line,
            )
            raise _sdp_error(refusal, self._factory.agent)
        return remote

    def _parse(self, body: bytes) -> SessionDescription:
        if not body:
            raise SipError(488, "No SDP Offer")
        try:
            return parse_sdp(body)
        except SdpError as err:
            raise _sdp_error(err, self._factory.agent) from err

    def _plan(self, offer: SessionDescription, previous: Negotiated | None) -> AnswerPlan:
        try:
            return plan_answer(offer, self._factory.policy, previous=previous)
        except SdpError as err:
            raise _sdp_error(err, self._factory.agent) from err

    def _render(
        self, plan: AnswerPlan, params: DataChannelAnswerParams | None
    ) -> SessionDescription:
        self._version += 1
        return render_answer(
            plan,
            params,
            local_address=self._factory.media.media_host,
            session_id=self._session_id,
            session_version=self._version,
            audio_ports=self._audio_ports,
            audio_address=self._factory.audio.advertised_host if self._factory.audio else None,
            video_ports=self._video_ports,
        )

    # -- channel events -------------------------------------------------------------------

    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, MessageReceived):
            data, stream_id = event.data, event.stream_id
            flow = self._flows.get(stream_id) or self._flow(stream_id)
            flow.messages_in += 1
            flow.bytes_in += len(data) if isinstance(data, bytes) else len(data.encode())
            service = self._services.get(stream_id)
            if service is not None:
                service.on_message(data)
        elif isinstance(event, ChannelOpened):
            self._channel_opened(event.stream_id)
            self._open_service(event.stream_id)
        elif isinstance(event, ChannelClosed):
            self._channel_closed(event.stream_id)
            self._close_service(event.stream_id)
        elif isinstance(event, SessionConnected):
            log.debug(
                "call %s: data channels up in %.0f ms",
                self.call.call_id,
                event.setup_seconds * 1000,
                extra=self._log_extra,
            )
            observe = self._factory.observe_dc_setup
            if observe is not None:
                observe(event.setup_seconds)
        elif isinstance(event, SessionClosed | SessionFailed):
            for stream_id in list(self.open_channels):
                self._channel_closed(stream_id)
            for stream_id in list(self._services):
                self._close_service(stream_id)
            if isinstance(event, SessionFailed):
                self._factory.traffic.failed[_failure_label(event.reason)] += 1
                self.dc = None
                # An avatar call whose data channels never came up ends, audio or not (its
                # UE cannot do what it asked for); an audio-only call has no data channel.
                if not self.closed:
                    self._on_failure(event.reason)

    def _channel_opened(self, stream_id: int) -> None:
        if self.dc is None or stream_id in self.open_channels:
            return
        spec = self.dc.streams.get(stream_id)
        label = self._factory.subprotocol_label(spec.subprotocol if spec is not None else "")
        self.open_channels[stream_id] = label
        flow = self._flows[stream_id] = Flow(label)
        self._factory.traffic.live.add(flow)
        self._factory.traffic.open_channels[label] += 1
        self._factory.traffic.opened[label] += 1

    def _channel_closed(self, stream_id: int) -> None:
        label = self.open_channels.pop(stream_id, None)
        if label is not None:
            self._factory.traffic.open_channels[label] -= 1
        flow = self._flows.pop(stream_id, None)
        if flow is not None:
            self._closed_flows.append(flow)
            self._factory.traffic.settle(flow)

    def _open_service(self, stream_id: int) -> None:
        if self.dc is None or stream_id in self._services:
            return
        spec = self.dc.streams.get(stream_id)
        remote = self.dc.remote
        info = ChannelInfo(
            call_id=self.call.call_id,
            stream_id=stream_id,
            label=spec.label if spec is not None else "",
            subprotocol=spec.subprotocol if spec is not None else "",
            max_message_size=remote.max_message_size if remote is not None else 0,
            identity=self.call.identity,
            request_uri=self.call.request_uri,
            avatar_tags=self.avatar_tags,
            room=self.call.room,
            dcsa=self.dcsa,
        )
        make = self._factory.services.get(info.subprotocol.lower(), EchoService)
        try:
            self._services[stream_id] = make(_Channel(self, info))
        except Exception:
            log.exception(
                "call %s: service for %s failed to start",
                self.call.call_id,
                info,
                extra=self._log_extra,
            )

    def _close_service(self, stream_id: int) -> None:
        service = self._services.pop(stream_id, None)
        if service is not None:
            try:
                service.on_close()
            except Exception:
                log.exception(
                    "call %s: service on_close failed", self.call.call_id, extra=self._log_extra
                )

    def send(self, stream_id: int, data: str | bytes) -> None:
        if self.dc is None:
            return
        try:
            self.dc.send(stream_id, data)
        except MediaError as exc:
            log.info(
                "call %s: cannot send on %d: %s",
                self.call.call_id,
                stream_id,
                exc,
                extra=self._log_extra,
            )
            return
        flow = self._flows.get(stream_id) or self._flow(stream_id)
        flow.messages_out += 1
        flow.bytes_out += len(data) if isinstance(data, bytes) else len(data.encode())

    def buffered_amount(self, stream_id: int) -> int:
        if self.dc is None:
            return 0
        try:
            return self.dc.buffered_amount(stream_id)
        except MediaError:
            return 0

    async def close(self) -> None:
        self.closed = True
        self._factory.forget(self)
        if self.audio is not None:
            self.audio.close()
        if self.video is not None:
            self.video.close()
        for stream_id in list(self.open_channels):
            self._channel_closed(stream_id)
        for stream_id in list(self._services):
            self._close_service(stream_id)
        if self._other is not None:
            self._factory.traffic.settle(self._other)
        dc, self.dc = self.dc, None
        if dc is not None:
            await dc.close()


class _Channel:
    """One channel of a call as its service sees it (a ChannelContext). ``send`` and
    ``buffered_amount`` are the session's, bound to the stream (no call of this object's own
    per relayed message)."""

    def __init__(self, session: CallMediaSession, info: ChannelInfo) -> None:
        self._session = session
        self.info = info
        self.send: Callable[[str | bytes], None] = partial(session.send, info.stream_id)
        self.buffered_amount: Callable[[], int] = partial(
            session.buffered_amount, info.stream_id
        )


class CallSessionFactory:
    """Creates :class:`CallMediaSession` objects from offers (the UA's SessionFactory)."""

    def __init__(
        self,
        media: DataChannelEndpointFactory,
        config: AppConfig,
        services: Mapping[str, ServiceFactory] | None = None,
        *,
        observe_dc_setup: Callable[[float], None] | None = None,
        audio: AudioPlane | None = None,
        video: VideoPlane | None = None,
    ) -> None:
        self.media = media
        #: The node's video plane; None: video m-lines answered port 0.
        self.video = video
        #: The node's audio plane (RTP ports, rooms); None: audio m-lines answered port 0.
        self.audio = audio
        self.agent = config.sip.contact_host
        m = config.media
        self.policy = AnswerPolicy(
            streams=StreamPolicy(
                bootstrap_ids=frozenset(m.bootstrap_stream_ids),
                min_application_id=m.min_application_stream_id,
            ),
            audio=audio.caps if audio is not None else None,
            video=video.caps if video is not None else None,
        )
        #: Service factories by subprotocol (lower case); others get the echo service.
        self.services: dict[str, ServiceFactory] = dict(services or {})
        self.sessions: set[CallMediaSession] = set()
        self._by_call: dict[str, CallMediaSession] = {}
        self.traffic = ChannelTraffic()
        #: Called with each data channel association's setup time (ICE + DTLS + SCTP).
        self.observe_dc_setup = observe_dc_setup

    def subprotocol_label(self, subprotocol: str) -> str:
        """``subprotocol`` (lower case) when a service is registered for it, else "other"."""
        name = subprotocol.lower()
        return name if name in self.services else "other"

    async def create(
        self, call: CallInfo, offer: bytes, on_failure: FailureCallback
    ) -> MediaSession:
        session = CallMediaSession(self, call, on_failure)
        try:
            await session.answer(offer)
        except BaseException:
            await session.close()
            raise
        self.sessions.add(session)
        self._by_call[call.call_id] = session
        return session

    def session_of(self, call_id: str) -> CallMediaSession | None:
        """The live media session of call ``call_id`` (a look-up, not a scan of every call)."""
        return self._by_call.get(call_id)

    def forget(self, session: CallMediaSession) -> None:
        """``session`` closed: it leaves :attr:`sessions` and the look-up."""
        self.sessions.discard(session)
        if self._by_call.get(session.call.call_id) is session:
            del self._by_call[session.call.call_id]
