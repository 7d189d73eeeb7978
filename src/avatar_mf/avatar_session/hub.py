"""The avatar hub of one MF node: which call has which avatar session, in which room.

It provides the channel services for the avatar subprotocols (``3gpp-ar-metadata``,
``3gpp-ar-animation``, ``avatar-mf-transfer``, ``avatar-mf-audio``). The first avatar channel of
a call that opens creates the call's :class:`~.session.AvatarSession`, joins the room its
Request-URI names and opens the session's pipeline (the configured stages,
:class:`PipelineStages`; of several animation-data stages the session uses those its hello
selects, :mod:`.selection`); when the last one closes (BYE, CANCEL, media failure) the session
leaves the room, which is announced to the others, and its pipeline closes (the participant's
leaving runs through the scene stage last).

The hub is a registry: sessions get what they use as :class:`~.session.SessionDeps`, and the
hub serves them only as their :class:`~.session.SessionDirectory` (the others in the room).
Counters for ``/metrics``: :attr:`AvatarHub.session_stats` (error replies),
:attr:`AvatarHub.pipeline_stats` (stage failures and drops) and the relay's metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from avatar_mf.avatar_session.adapters import (
    AnimationService,
    AudioService,
    MetadataService,
    TransferChannelService,
)
from avatar_mf.avatar_session.negotiation import (
    ConversionNote,
    Negotiation,
    NetworkFunctions,
    capabilities,
    conversion_notes,
    negotiate,
    with_fallback,
    with_sdp_asks,
)
from avatar_mf.avatar_session.selection import Offer
from avatar_mf.avatar_session.session import (
    AvatarConverter,
    AvatarSession,
    AvatarSettings,
    SessionDeps,
    SessionStats,
)
from avatar_mf.avatar_session.uploads import PhotoBudget, UploadSlots
from avatar_mf.channels.base import ChannelContext, ChannelService, ServiceFactory
from avatar_mf.clock import Clock
from avatar_mf.codecs.video import Picture
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.pipeline.frames import AudioIn, Frame
from avatar_mf.pipeline.runner import NamedStage, PipelineStats, QueueLimits, SessionPipeline
from avatar_mf.pipeline.stage import StageContext, StageKind, StageProvider
from avatar_mf.protocol import metadata as md
from avatar_mf.rooms.relay import RelayMetrics
from avatar_mf.rooms.rooms import Participant, RelayLimits, Room, RoomRegistry, room_name
from avatar_mf.storage import Authorizer, AvatarCache, AvatarRepository

log = logging.getLogger(__name__)

METADATA = "3gpp-ar-metadata"
ANIMATION = "3gpp-ar-animation"
TRANSFER = "avatar-mf-transfer"
AUDIO = "avatar-mf-audio"


@dataclass(frozen=True, slots=True)
class ConfiguredStage:
    """One stage of the node's pipeline: its kind, configured name and provider."""

    kind: str
    name: str
    provider: StageProvider


#: The stages every session's pipeline opens, in pipeline order.
PipelineStages = Sequence[ConfiguredStage]

#: Answers a session's hello (the negotiation); the default states the configured stages.
CapabilitiesPolicy = Callable[[AvatarSession, md.Hello], md.Capabilities]


#: Released sessions whose call has not ended yet, kept at most (oldest dropped first).
_RELEASED_KEPT = 4096


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What a call's record says of its avatar session."""

    room: str
    participant_id: str
    animation_data: tuple[str, ...]

    @classmethod
    def of(cls, session: AvatarSession) -> SessionFacts:
        return cls(session.participant.room.name, session.id, session.selection.stages)


class AvatarHub:
    def __init__(
        self,
        *,
        clock: Clock,
        executor: StageExecutor,
        stages: PipelineStages,
        settings: AvatarSettings | None = None,
        store: AvatarRepository | None = None,
        authorizer: Authorizer | None = None,
        cache: AvatarCache | None = None,
        relay_limits: RelayLimits | None = None,
        relay_metrics: RelayMetrics | None = None,
        queue_limits: QueueLimits | None = None,
        capabilities: CapabilitiesPolicy | None = None,
        play_audio: Callable[[str, str, bytes, float], bool] | None = None,
    ) -> None:
        self.clock = clock
        self.settings = settings or AvatarSettings()
        self.stages = tuple(stages)
        self.rooms = RoomRegistry(clock, limits=relay_limits, announce=self._announce)
        self._sessions: dict[str, AvatarSession] = {}
        self._by_participant: dict[int, AvatarSession] = {}
        self._closing: set[asyncio.Task[None]] = set()
        #: What a call's record needs of its session once the session was released (its data
        #: channels closed before the call ended): until the record takes it, bounded.
        self._released: OrderedDict[str, SessionFacts] = OrderedDict()
        #: Calls whose record was written while their session was live (released later).
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._queue_limits = queue_limits or QueueLimits()
        self.relay_metrics = relay_metrics if relay_metrics is not None else RelayMetrics()
        self.pipeline_stats = PipelineStats()
        self.session_stats = SessionStats()
        self._deps = SessionDeps(
            clock=clock,
            settings=self.settings,
            directory=self,
            make_pipeline=self._make_pipeline,
            executor=executor,
            stats=self.session_stats,
            relay_metrics=self.relay_metrics,
            capabilities=capabilities or self._capabilities,
            store=store,
            authorizer=authorizer,
            cache=cache,
            uploads=UploadSlots(self.settings.max_uploads_per_node),
            photo_bytes=PhotoBudget(self.settings.max_photo_bytes_per_node),
            play_audio=play_audio,
            avatar_converter=self._avatar_converter(),
            animation_offers=self.animation_offers,
        )

    # -- counters (read by /metrics) ------------------------------------------------------

    @property
    def stage_errors(self) -> Counter[tuple[str, str]]:
        """Stage failures by (stage, kind): ("animation_data", "busy"), ("scene", "rejected")."""
        return self.pipeline_stats.errors + self.session_stats.session_errors

    @property
    def error_replies(self) -> Counter[str]:
        return self.session_stats.error_replies

    @property
    def uploads_in_progress(self) -> int:
        """Uploads (transfers towards the MF) running now, node-wide."""
        return self._deps.uploads.active

    # -- services -------------------------------------------------------------------------

    def services(self) -> dict[str, ServiceFactory]:
        return {
            METADATA: self._metadata,
            ANIMATION: self._animation,
            TRANSFER: self._transfer,
            AUDIO: self._audio,
        }

    def _metadata(self, channel: ChannelContext) -> ChannelService:
        session = self._session_for(channel)
        service = MetadataService(session, channel)
        session.attach("metadata", channel)
        return service

    def _animation(self, channel: ChannelContext) -> ChannelService:
        session = self._session_for(channel)
        service = AnimationService(session, channel)
        session.attach("animation", channel)
        return service

    def _transfer(self, channel: ChannelContext) -> ChannelService:
        session = self._session_for(channel)
        service = TransferChannelService(session, channel)
        session.attach("transfer", channel)
        return service

    def _audio(self, channel: ChannelContext) -> ChannelService:
        session = self._session_for(channel)
        service = AudioService(session, channel)
        session.attach("audio", channel)
        return service

    # -- sessions and rooms ---------------------------------------------------------------

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def sessions(self) -> Iterator[AvatarSession]:
        return iter(self._sessions.values())

    def session_of(self, call_id: str) -> AvatarSession | None:
        """The avatar session of call ``call_id``, if it has one."""
        return self._sessions.get(call_id)

    def facts_of(self, call_id: str, *, forget: bool = False) -> SessionFacts | None:
        """Room, participant id and animation-data stages of call ``call_id``'s avatar
        session, live or released before the call ended; ``forget``: the call ended, drop
        what was kept of a released session."""
        session = self._sessions.get(call_id)
        if session is not None:
            if forget:  # released after its call's record: nothing to keep then
                self._ended[call_id] = None
                while len(self._ended) > _RELEASED_KEPT:
                    self._ended.popitem(last=False)
            return SessionFacts.of(session)
        return self._released.pop(call_id, None) if forget else self._released.get(call_id)

    def _session_for(self, channel: ChannelContext) -> AvatarSession:
        info = channel.info
        session = self._sessions.get(info.call_id)
        if session is None:
            # A two-leg call's legs name the room made for the pair; others their Request-URI.
            name = info.room or room_name(info.request_uri)
            participant = self.rooms.join(name, info.identity)
            participant.on_overload = self._overloaded
            session = AvatarSession(self._deps, info, participant)
            self._sessions[info.call_id] = session
            self._by_participant[id(participant)] = session
            log.info(
                "call %s joined room %s as %s",
                info.call_id,
                name,
                participant.id,
                extra=session.log_extra,
            )
        return session

    def _make_pipeline(
        self, context: StageContext, sink: Callable[[Frame], None]
    ) -> SessionPipeline:
        stages = [NamedStage(s.kind, s.name, s.provider.open(context)) for s in self.stages]
        return SessionPipeline(
            stages,
            sink,
            limits=self._queue_limits,
            stats=self.pipeline_stats,
            log_extra=context.log_extra,
        )

    def animation_offers(self) -> tuple[Offer, ...]:
        """The configured animation-data stages and the inputs each takes (selection.py)."""
        return tuple(
            Offer(stage.name, tuple(getattr(stage.provider, "animation_inputs", ())))
            for stage in self.stages
            if stage.kind == StageKind.ANIMATION_DATA
        )

    def wants_audio(self, call_id: str) -> bool:
        """The call's avatar session has a stage that takes its decoded voice (``AudioIn``)
        and selected it (its hello agreed voice), and its voice does not come from an
        ``avatar-mf-audio`` channel."""
        session = self._sessions.get(call_id)
        return (
            session is not None and session.takes_rtp_voice() and session.pipeline.accepts(AudioIn)
        )

    def push_audio(self, call_id: str, pcm: bytes, rtp_timestamp: int, clock_rate: int) -> None:
        """Decoded voice of a call's RTP stream, to its avatar session (if it has one)."""
        session = self._sessions.get(call_id)
        if session is not None:
            session.on_audio(pcm, rtp_timestamp, clock_rate)

    def push_video(
        self, call_id: str, picture: Picture, rtp_timestamp: int, keyframe: bool
    ) -> None:
        """A decoded picture of a call's RTP video stream, to its avatar session (if any)."""
        session = self._sessions.get(call_id)
        if session is not None:
            session.on_video(picture, rtp_timestamp, keyframe)

    def others(self, session: AvatarSession) -> Iterator[AvatarSession]:
        for participant in session.participant.room.others(session.participant):
            other = self._by_participant.get(id(participant))
            if other is not None:
                yield other

    def release(self, session: AvatarSession) -> None:
        if self._sessions.get(session.call_id) is not session:
            return
        del self._sessions[session.call_id]
        self._by_participant.pop(id(session.participant), None)
        if session.call_id in self._ended:  # its call's record is written: nothing to keep
            del self._ended[session.call_id]
        else:
            self._released[session.call_id] = SessionFacts.of(session)
            while len(self._released) > _RELEASED_KEPT:
                self._released.popitem(last=False)
        closing = session.close()
        room = session.participant.room
        session.participant.leave()
        task = asyncio.get_running_loop().create_task(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        log.info("call %s left room %s", session.call_id, room.name, extra=session.log_extra)

    async def aclose(self) -> None:
        """Wait for the pipelines of released sessions to finish closing."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _announce(self, room: Room, participant: Participant, what: str) -> None:
        message: md.ParticipantJoined | md.ParticipantLeft
        if what == "joined":
            message = md.ParticipantJoined(
                id=md.new_message_id(),
                participant_id=participant.id,
                display_name=participant.identity[:1024],
            )
        else:
            message = md.ParticipantLeft(id=md.new_message_id(), participant_id=participant.id)
        participant.publish_metadata(md.dump_message(message))

    def _overloaded(self, participant: Participant) -> None:
        session = self._by_participant.get(id(participant))
        call = session.call_id if session is not None else "?"
        extra = session.log_extra if session is not None else {"call_id": call}
        log.warning(
            "call %s: metadata receiver overloaded; its queue was dropped", call, extra=extra
        )

    # -- capabilities (A.1) -----------------------------------------------------------------

    def network_functions(self) -> NetworkFunctions:
        """What this node's configured stages can do in the network."""
        inputs: set[str] = set()
        animates = False
        generates = False
        for stage in self.stages:
            if stage.kind == StageKind.ANIMATION_DATA:
                inputs.update(getattr(stage.provider, "animation_inputs", ()))
            elif stage.kind == StageKind.ANIMATION:
                animates = animates or bool(getattr(stage.provider, "animates_in_network", False))
            elif stage.kind == StageKind.BASE_AVATAR:
                generates = True
        return self._with_conversion(
            NetworkFunctions(
                base_avatar_generation=generates,
                animation_data_inputs=frozenset(inputs),
                animation=animates,
                profiles=(self.settings.profile,),
                formats=self.settings.avatar_formats,
            )
        )

    def _capabilities(self, session: AvatarSession, hello: md.Hello) -> md.Capabilities:
        """Negotiate (TR 26.813 A.1) from the caller's Contact feature tags, its hello and the
        configured stages; re-run on every hello."""
        hello = with_sdp_asks(hello, session.info)
        agreement = negotiate(session.info.avatar_tags, hello, self.network_functions())
        for refusal in agreement.refused:
            log.info(
                "call %s: refused %s=%s: %s (%s)",
                session.call_id,
                refusal.function.value,
                refusal.requested,
                refusal.code,
                refusal.reason,
                extra=session.log_extra,
            )
        session.agreement = agreement
        return capabilities(
            agreement,
            message_id=md.new_message_id(),
            in_reply_to=hello.id,
            session_id=session.id,
            max_message_size=self.settings.max_metadata_size,
            max_transfer_size=self.settings.max_transfer_size,
            conversions=self._conversion_notes(hello, agreement),
        )

    # -- conversion (TR 26.813 section 4: the MF as the gateway) ------------------------------

    def _converters(self) -> list[StageProvider]:
        return [s.provider for s in self.stages if s.kind == StageKind.CONVERTER]

    def _avatar_converter(self) -> AvatarConverter | None:
        for provider in self._converters():
            if callable(getattr(provider, "convert_avatar", None)):
                return provider  # type: ignore[return-value]
        return None

    def _with_conversion(self, network: NetworkFunctions) -> NetworkFunctions:
        """The MF's offer: always the common fallback, plus what its converters write."""
        profiles: list[str] = []
        formats: list[str] = []
        for provider in self._converters():
            profiles += getattr(provider, "profiles", ())
            formats += getattr(provider, "formats", ())
        return with_fallback(network, tuple(profiles), tuple(formats))

    def _conversion_notes(
        self, hello: md.Hello, agreement: Negotiation
    ) -> tuple[ConversionNote, ...]:
        notes: list[tuple[str, str, str, str]] = []
        profiles = agreement.animation_profiles if hello.animation_profiles else ()
        formats = agreement.avatar_formats if hello.avatar_formats else ()
        for provider in self._converters():
            losses = getattr(provider, "losses", None)
            if callable(losses):
                notes += losses(profiles, formats)
        return conversion_notes(notes)
