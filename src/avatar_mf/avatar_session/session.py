"""One call's avatar session: its channels in, frames through its pipeline, frames out to the
room (TR 26.813 call flow as the MF serves it; docs/protocol.md has the messages):

- A.1 / hello: the UE says what it does; the MF answers ``capabilities`` (who does D.1, D.3,
  D.4).
- D.1.3 / D.2: ``avatar select`` is authorised against the avatar storage (TS 22.156: owner or
  grantee, time-bound, allow-listed parties); the avatar is loaded once through the cache and
  offered to every other participant as a chunked transfer with a SHA-256 digest. A UE can also
  upload its own base avatar (a transfer towards the MF, validated by the pipeline's upload
  validation stage) or ask the network to generate one (``avatar generate``, the base-avatar
  stage); either is stored for it and delivered like a selected one.
- Authorization holds for the whole call (TS 22.156 R-7.2.3-002/004): every delivery (an offer
  to a participant already there or joining later, each ``transfer accept`` that starts or
  resumes one) is checked for the receiving party; an avatar used by a grant is re-checked when
  the grant ends and every ``grant_recheck_interval`` seconds (revocations are a change in the
  store, which signals nothing: polled). When the right ends, the avatar is withdrawn: its
  transfers in progress fail, the user and every receiver get ``avatar refused`` with the
  TS 22.156 code (``grant-expired``, ``grant-revoked`` ...), late joiners no longer get it, and
  it is logged. The participant's animation units are still relayed: they are its own data,
  not the avatar (receivers animate another avatar with them).
- Uploads are bounded (:mod:`.uploads`): bytes held as they arrive, a cap per session and per
  node (``busy``), stalled ones failed with ``timeout``.
- D.3: UE-centric units arriving on the UE's animation channel and units an animation-data
  stage makes from the UE's ``text`` go through the pipeline to the other participants.
- B / C: ``scene get`` and ``scene update`` (JSON Patch) go to the scene stage; changes are
  fanned out to the room.

The session never calls a stage: it adapts what arrives into frames
(:mod:`avatar_mf.pipeline.frames`), pushes them into its
:class:`~avatar_mf.pipeline.runner.SessionPipeline`, and routes what comes out in
:meth:`AvatarSession.deliver`. Every failure becomes an ``error`` (or ``avatar refused`` /
``transfer failed``) message on the metadata channel; the session and the call go on. Log
lines carry ``call_id``, ``session_id`` (the participant id) and ``room``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from avatar_mf.avatar.vrm import Converted
from avatar_mf.avatar_session.negotiation import Negotiation, with_sdp_asks
from avatar_mf.avatar_session.recent_video import RecentPictures
from avatar_mf.avatar_session.selection import Offer, Selection, select
from avatar_mf.avatar_session.uploads import PhotoBudget, Upload, UploadSlots, deadline
from avatar_mf.channels.base import ChannelContext, ChannelInfo
from avatar_mf.clock import Clock, TimerHandle, sleep
from avatar_mf.codecs.video import VIDEO_CLOCK, Picture
from avatar_mf.pipeline.frames import (
    AnimationUnitFrame,
    AudioIn,
    AudioOut,
    AvatarInUse,
    AvatarUpload,
    BaseAvatarFrame,
    ExpressionFilterApplied,
    ExpressionFilterFrame,
    Frame,
    GenerateAvatar,
    GenerationProgress,
    ImageInput,
    ParticipantJoined,
    ParticipantLeft,
    ReceiverFormats,
    SceneFrame,
    ScenePatchFrame,
    SceneQuery,
    SceneSnapshot,
    StageError,
    TextInput,
    VideoIn,
)
from avatar_mf.pipeline.runner import SessionPipeline
from avatar_mf.pipeline.stage import StageContext
from avatar_mf.protocol import metadata as md
from avatar_mf.protocol.names import AnimationInput, ErrorCode
from avatar_mf.protocol.transfer import (
    ChunkError,
    ChunkGap,
    ChunkStored,
    TransferAborted,
    TransferDone,
    TransferError,
    TransferReceiver,
    TransferSender,
    parse_chunk,
)
from avatar_mf.rooms.relay import Outlet, RelayMetrics
from avatar_mf.rooms.rooms import Participant
from avatar_mf.storage import (
    Authorizer,
    AvatarCache,
    AvatarRepository,
    AvatarTooLargeError,
    Decision,
    InvalidAvatarError,
    InvalidRequestError,
    Reason,
    StorageError,
)
from avatar_mf.storage.model import check_content_type

log = logging.getLogger(__name__)

#: Uploads of these content types are photos for ``avatar:generate`` (kept in the call, not
#: stored); PHOTOS_KEPT the most a call keeps (four photos and a depth image each).
PHOTO_TYPES = frozenset({"image/jpeg", "image/png"})
PHOTOS_KEPT = 8

#: Where a session's voice comes from (:attr:`AvatarSession.voice_source`): the call's RTP
#: audio stream, or raw audio messages on an ``avatar-mf-audio`` data channel.
VOICE_RTP = "rtp"
VOICE_DATACHANNEL = "datachannel"

#: Seconds after a grant's expiry at which its use is re-checked (the loop clock and the wall
#: clock of the authorizer are read separately: checking a hair late never sees it still valid).
EXPIRY_MARGIN = 0.001


@dataclass(frozen=True, slots=True)
class AvatarSettings:
    #: Animation units per second for network-generated animation.
    rate: float = 30.0
    profile: str = "arf-face-v1"
    max_metadata_size: int = 65536
    max_transfer_size: int = 64 * 1024 * 1024
    #: Chunks are sent while the channel buffers less than this many bytes.
    high_water: int = 256 * 1024
    retry_interval: float = 0.005
    #: Base avatar container types the MF accepts and delivers.
    avatar_formats: tuple[str, ...] = ("application/vnd.arf+zip", "model/gltf-binary")
    #: Seconds between re-checks of the grant an avatar in use depends on (a revocation takes
    #: effect within this time; an expiry at its exact time).
    grant_recheck_interval: float = 10.0
    #: Uploads (transfers towards the MF) one session / the node runs at once; 0: no limit.
    max_uploads_per_session: int = 2
    max_uploads_per_node: int = 16
    #: An upload is failed ``timeout`` after this many seconds without a new byte...
    upload_stall_timeout: float = 30.0
    #: ...or when it is not complete this many seconds after its offer.
    upload_timeout: float = 600.0
    #: The largest photo a call may upload for ``avatar:generate`` (the photo generator's own
    #: limit), and the bytes of kept photos all the node's calls may hold together (0: none).
    max_photo_size: int = 16 * 1024 * 1024
    max_photo_bytes_per_node: int = 256 * 1024 * 1024


@dataclass
class SessionStats:
    """Node-wide counters of the avatar sessions, read by ``/metrics``."""

    #: ``error`` messages sent to UEs, by code.
    error_replies: Counter[str] = field(default_factory=Counter)
    #: Failures outside the stages, by (where, kind): ("session", "internal").
    session_errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Messages on ``avatar-mf-audio`` channels, by outcome: ``accepted``, a refusal reason of
    #: :mod:`avatar_mf.protocol.audio` (``too-long`` ...), or the session's refusal code
    #: (``unsupported``: voice not agreed; ``conflict``: the voice comes from RTP).
    audio_messages: Counter[str] = field(default_factory=Counter)


class SessionDirectory(Protocol):
    """The other sessions of a session's room (the hub implements it)."""

    def others(self, session: AvatarSession) -> Iterable[AvatarSession]: ...

    def release(self, session: AvatarSession) -> None:
        """The session's last channel closed."""
        ...


class AvatarConverter(Protocol):
    """Converts a stored base avatar for a receiver (``convert_avatar`` of the converter
    stage's provider): None when the stored format will do."""

    async def convert_avatar(
        self,
        executor: Any,
        key: str,
        data: bytes,
        content_type: str,
        accepted: Sequence[str],
        *,
        avatar_id: str,
        name: str = ...,
    ) -> Converted | None: ...


#: Builds a session's pipeline: the stages opened for its context, delivering to ``sink``.
PipelineFactory = Callable[[StageContext, Callable[[Frame], None]], SessionPipeline]


@dataclass(frozen=True, slots=True)
class SessionDeps:
    """Everything a session uses, given by the hub (constructor injection, no hub reach-in)."""

    clock: Clock
    settings: AvatarSettings
    directory: SessionDirectory
    make_pipeline: PipelineFactory
    executor: Any
    stats: SessionStats
    relay_metrics: RelayMetrics
    #: Answers a hello: the capabilities reply (negotiated placement of each function).
    capabilities: Callable[[AvatarSession, md.Hello], md.Capabilities]
    store: AvatarRepository | None = None
    authorizer: Authorizer | None = None
    cache: AvatarCache | None = None
    #: The node's uploads in progress (shared by every session of the node).
    uploads: UploadSlots = field(default_factory=lambda: UploadSlots(0))
    #: The bytes of the photos the node's sessions keep for ``avatar:generate``.
    photo_bytes: PhotoBudget = field(default_factory=lambda: PhotoBudget(0))
    #: Plays speech to a room's other audio members: (room, call id, 16 kHz PCM, start time);
    #: False when the room has no audio. None: the node serves no audio.
    play_audio: Callable[[str, str, bytes, float], bool] | None = None
    #: Converts a base avatar to a format the receiver accepts (the converter stage's
    #: provider, TR 26.813 section 4); None: avatars are delivered as stored.
    avatar_converter: AvatarConverter | None = None
    #: The animation-data stages a new session's pipeline opens, with the inputs each takes
    #: (read together with ``make_pipeline``); the session selects among them by its hello.
    animation_offers: Callable[[], Sequence[Offer]] = tuple


@dataclass(eq=False)
class _Outgoing:
    sender: TransferSender
    channel: ChannelContext
    #: Whose avatar this transfer delivers.
    source: AvatarSession
    avatar_id: str
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _AvatarUse:
    """The avatar a session's participant uses now, and who it was offered to."""

    avatar_id: str
    #: True when the use rests on a grant (re-checked), False for the owner.
    by_grant: bool
    #: Session ids of the participants it was offered to.
    receivers: set[str] = field(default_factory=set)
    timer: TimerHandle | None = None


class AvatarSession:
    def __init__(self, deps: SessionDeps, info: ChannelInfo, participant: Participant) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.call_id = info.call_id
        self.identity = info.identity
        self.info = info
        self.participant = participant
        self.channels: dict[str, ChannelContext] = {}
        self.avatar_id: str | None = None
        self._use: _AvatarUse | None = None
        self.hello: md.Hello | None = None
        #: The placement agreed at the last hello (A.1), or None before the first.
        self.agreement: Negotiation | None = None
        self._outgoing: dict[str, _Outgoing] = {}
        self._incoming: dict[bytes, Upload] = {}
        #: Photos uploaded for ``avatar:generate`` in this call, by transfer id (the newest
        #: PHOTOS_KEPT; they go when the call ends).
        self._photos: dict[str, bytes] = {}
        #: The last few pictures of the call's video, for avatar:generate source video.
        self._video = RecentPictures()
        #: (source session id, avatar id) -> the content type it was offered to this UE in.
        self._offered_as: dict[tuple[str, str], str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Where the session's voice comes from: the first source taken once voice is agreed
        #: (VOICE_RTP or VOICE_DATACHANNEL) holds it for the rest of the call; None: no voice yet.
        self.voice_source: str | None = None
        self.closed = False
        self.log_extra: dict[str, object] = {
            "call_id": self.call_id,
            "session_id": participant.id,
            "room": participant.room.name,
        }
        context = StageContext(
            call_id=self.call_id,
            participant=participant.id,
            identity=self.identity,
            room=participant.room.name,
            clock=deps.clock,
            executor=deps.executor,
            rate=deps.settings.rate,
            log_extra=self.log_extra,
            agreed_inputs=self._agreed_inputs,
        )
        self.pipeline = deps.make_pipeline(context, self.deliver)
        self._offers = tuple(deps.animation_offers())
        #: Which animation-data stages this session uses (selection.py), by its last hello.
        self.selection: Selection = select(self._offers, None)
        self._spawn(self.pipeline.start())
        self.pipeline.push(ParticipantJoined(participant.id, display_name=self.identity[:1024]))

    def _agreed_inputs(self) -> tuple[str, ...]:
        """The animation inputs the last hello agreed (none before a hello)."""
        return self.agreement.animation_inputs if self.agreement is not None else ()

    @property
    def id(self) -> str:
        return self.participant.id

    # -- channels -------------------------------------------------------------------------

    def attach(self, kind: str, channel: ChannelContext) -> None:
        self.channels[kind] = channel
        outlet = Outlet(channel.send, channel.buffered_amount, self.deps.relay_metrics)
        if kind == "metadata":
            self.participant.attach_metadata(outlet)
            self._welcome()
        elif kind == "animation":
            self.participant.attach_animation(outlet)

    def detach(self, kind: str, channel: ChannelContext) -> None:
        if self.channels.get(kind) is channel:
            del self.channels[kind]
        if not self.channels:
            self.deps.directory.release(self)

    def _welcome(self) -> None:
        """The metadata channel opened: who is already there, and the avatars they selected
        (D.2 for late joiners)."""
        for other in self.deps.directory.others(self):
            self.send(
                md.ParticipantJoined(
                    id=md.new_message_id(),
                    participant_id=other.id,
                    display_name=other.identity[:1024],
                    avatar_id=other.avatar_id,
                )
            )
            if other.avatar_id is not None:
                self.offer_avatar(other)

    def close(self) -> Coroutine[Any, Any, None]:
        """Release everything the session holds; the returned coroutine closes the pipeline
        (the participant's leaving runs through it last). The hub calls it once."""
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self._outgoing.clear()
        for tag in list(self._incoming):
            self._end_upload(tag)
        for transfer_id in list(self._photos):
            self._drop_photo(transfer_id)
        if self._use is not None and self._use.timer is not None:
            self._use.timer.cancel()
        self._use = None
        return self.pipeline.aclose(final=ParticipantLeft(self.id))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "call %s: avatar task failed",
                self.call_id,
                exc_info=task.exception(),
                extra=self.log_extra,
            )
            self.deps.stats.session_errors["session", "internal"] += 1
            self.reply_error(md.MetadataError(ErrorCode.INTERNAL, "the MF could not complete that"))

    # -- sending --------------------------------------------------------------------------

    def send(self, message: md.Message) -> None:
        """Queue a metadata message to this UE (reliable, bounded: see rooms/relay.py)."""
        queue = self.participant.metadata
        if queue is not None and not self.closed:
            queue.offer(md.dump_message(message))

    def reply_error(self, exc: md.MetadataError) -> None:
        log.info(
            "call %s: metadata error %s: %s",
            self.call_id,
            exc.code,
            exc.message,
            extra={**self.log_extra, "code": exc.code},
        )
        self.deps.stats.error_replies[exc.code] += 1
        self.send(md.error_for(exc))

    def _broadcast(self, message: md.Message) -> None:
        self.participant.publish_metadata(md.dump_message(message))

    # -- in: what the UE sends, as frames ---------------------------------------------------

    def on_metadata(self, message: md.Message) -> None:
        if isinstance(message, md.Hello):
            self.hello = message
            self.send(self.deps.capabilities(self, message))
            self._select_stages()
            self._receiver_formats()
        elif isinstance(message, md.ExpressionFilter):
            self._expression_filter(message)
        elif isinstance(message, md.AvatarSelect):
            self._spawn(self._select(message))
        elif isinstance(message, md.AvatarGenerate):
            video = self._video.pictures() if message.source == "video" else ()
            if message.source == "video" and not video:
                self.reply_error(
                    md.MetadataError(
                        ErrorCode.NO_VIDEO,
                        "no picture of this call's video stream to build from",
                        message.id,
                    )
                )
                return
            missing = [
                t for t in (*message.photos, *message.depths)
                if t is not None and t not in self._photos
            ]
            if missing:
                self.reply_error(
                    md.MetadataError(
                        ErrorCode.UNKNOWN_TRANSFER,
                        f"no photo uploaded in this call as {missing[0]!r}",
                        message.id,
                    )
                )
                return
            self.pipeline.push(
                GenerateAvatar(
                    self.id,
                    identity=self.identity,
                    name=message.name or "avatar",
                    seed=message.seed,
                    images=tuple(self._photos[t] for t in message.photos),
                    depths=tuple(
                        None if t is None else self._photos[t] for t in message.depths
                    ),
                    message_id=message.id,
                    video=video,
                )
            )
        elif isinstance(message, md.TransferAccept):
            self._accepted(message)
        elif isinstance(message, md.TransferComplete | md.TransferFailed):
            self._outgoing_done(message)
        elif isinstance(message, md.TransferOffer):
            self._incoming_offer(message)
        elif isinstance(message, md.AnimationText):
            if self._not_agreed(AnimationInput.TEXT, message.id):
                return
            self.pipeline.push(
                TextInput(self.id, message.text, message.language, message_id=message.id)
            )
        elif isinstance(message, md.AnimationImage):
            if self._not_agreed(AnimationInput.IMAGES, message.id):
                return
            self.pipeline.push(
                ImageInput(self.id, message.data, message.media_time, message_id=message.id)
            )
        elif isinstance(message, md.AnimationStart):
            self._broadcast(md.AnimationResumed(id=md.new_message_id(), participant_id=self.id))
        elif isinstance(message, md.AnimationStop):
            self._broadcast(
                md.AnimationStopped(
                    id=md.new_message_id(), participant_id=self.id, reason=message.reason
                )
            )
        elif isinstance(message, md.SceneGet):
            self.pipeline.push(SceneQuery(self.id, message_id=message.id))
        elif isinstance(message, md.SceneUpdate):
            operations = tuple(op.model_dump(by_alias=True) for op in message.operations)
            self.pipeline.push(
                ScenePatchFrame(self.id, message.base_version, operations, message_id=message.id)
            )
        elif isinstance(message, md.ErrorMessage):
            log.info(
                "call %s: UE reported %s: %s",
                self.call_id,
                message.code,
                message.message,
                extra={**self.log_extra, "code": message.code},
            )
        else:
            self.reply_error(
                md.MetadataError(
                    ErrorCode.UNEXPECTED_MESSAGE,
                    f"{message.type} is not sent to the MF",
                    message.id,
                )
            )

    def _select_stages(self) -> None:
        """Select the animation-data stages again from the agreement just made."""
        agreed = self.agreement.animation_inputs if self.agreement is not None else None
        selection = select(self._offers, agreed)
        if selection != self.selection:
            log.info(
                "call %s: animation data from %s (stages: %s)",
                self.call_id,
                ", ".join(sorted(selection.inputs)) or "nothing",
                ", ".join(selection.stages) or "none",
                extra={**self.log_extra, "animation_data": list(selection.stages)},
            )
        self.selection = selection

    def _not_agreed(self, name: str, message_id: str) -> bool:
        """An explicit request for an input the session's hello did not agree: answered."""
        if self.selection.allows(name):
            return False
        self.reply_error(
            md.MetadataError(
                ErrorCode.UNSUPPORTED,
                f"this session's hello did not agree the {name} animation input "
                f"(agreed: {', '.join(sorted(self.selection.inputs)) or 'none'})",
                message_id,
            )
        )
        return True

    def on_animation_unit(self, unit: bytes, *, is_config: bool) -> None:
        """D.3 UE-centric: one of the UE's own units (validated by the channel adapter)."""
        self.pipeline.push(AnimationUnitFrame(self.participant.id, unit, is_config=is_config))

    # -- out: what the pipeline produces, to the participants -------------------------------

    def on_audio(self, pcm: bytes, rtp_timestamp: int, clock_rate: int) -> None:
        """20 ms of the participant's decoded voice (its RTP stream), into the pipeline when the
        session selected voice and its voice does not come from the data channel."""
        if self.closed or not self.selection.allows(AnimationInput.VOICE):
            return
        if self.voice_source == VOICE_DATACHANNEL:
            return
        self.voice_source = VOICE_RTP
        self.pipeline.push(AudioIn(self.id, pcm, rtp_timestamp, clock_rate))

    def takes_rtp_voice(self) -> bool:
        """Whether the call's decoded RTP voice would go into the pipeline now."""
        return (
            not self.closed
            and self.voice_source != VOICE_DATACHANNEL
            and self.selection.takes(AudioIn)
        )

    def on_audio_message(
        self, pcm: bytes, timestamp: int, clock_rate: int
    ) -> md.MetadataError | None:
        """One raw audio message of the UE's ``avatar-mf-audio`` channel (validated by the
        channel adapter), into the pipeline as the same :class:`AudioIn` as RTP voice; or the
        error to answer with: ``unsupported`` when the hello did not agree voice,
        ``conflict`` when the session's voice comes from its RTP stream."""
        if self.closed:
            return None
        if not self.selection.allows(AnimationInput.VOICE):
            return md.MetadataError(
                ErrorCode.UNSUPPORTED,
                "this session's hello did not agree the voice animation input "
                f"(agreed: {', '.join(sorted(self.selection.inputs)) or 'none'})",
            )
        if self.voice_source == VOICE_RTP:
            return md.MetadataError(
                ErrorCode.CONFLICT,
                "this session's voice comes from its RTP audio stream (heard first)",
            )
        self.voice_source = VOICE_DATACHANNEL
        self.pipeline.push(AudioIn(self.id, pcm, timestamp, clock_rate))
        return None

    def on_video(self, picture: Picture, rtp_timestamp: int, keyframe: bool) -> None:
        """One decoded picture of the participant's RTP video stream, into the pipeline."""
        if not self.closed:
            frame = VideoIn(
                self.id,
                picture.width,
                picture.height,
                picture.data,
                rtp_timestamp,
                VIDEO_CLOCK,
                keyframe,
            )
            self._video.add(frame)  # for avatar:generate from video
            if self.selection.allows(AnimationInput.VIDEO):
                self.pipeline.push(frame)

    def deliver(self, frame: Frame) -> None:
        """The pipeline's sink: route one frame to the participants that get it."""
        if isinstance(frame, AnimationUnitFrame):
            if self.closed:
                pass
            elif frame.receivers is not None or frame.excluded:
                self._deliver_to(frame)
            else:
                self.participant.publish_animation(frame.unit, is_config=frame.is_config)
        elif isinstance(frame, AudioOut):
            play = self.deps.play_audio
            if play is not None and not self.closed:
                start = self.deps.clock.now() + frame.media_time
                play(self.participant.room.name, self.call_id, frame.pcm, start)
        elif isinstance(frame, AudioIn | VideoIn):
            pass  # no stage takes voice or camera (the default pipeline): nothing to route
        elif isinstance(frame, ExpressionFilterApplied | ExpressionFilterFrame):
            self._filter_answer(frame)
        elif isinstance(frame, ReceiverFormats):
            pass  # no converter stage: nothing to tell
        elif isinstance(frame, SceneFrame):
            self._scene_changed(frame)
        elif isinstance(frame, SceneSnapshot):
            self.send(
                md.Scene(
                    id=md.new_message_id(),
                    in_reply_to=frame.message_id,
                    version=frame.version,
                    document=frame.document,
                )
            )
        elif isinstance(frame, BaseAvatarFrame):
            self._spawn(self._store_avatar(frame))
        elif isinstance(frame, GenerationProgress):
            if frame.message_id is not None:
                self.send(
                    md.AvatarGenerateProgress(
                        id=md.new_message_id(),
                        in_reply_to=frame.message_id,
                        percent=max(0, min(100, frame.percent)),
                        stage=frame.stage,
                    )
                )
        elif isinstance(frame, StageError):
            self._stage_failed(frame)
        elif isinstance(frame, TextInput):
            self.reply_error(
                md.MetadataError(
                    ErrorCode.UNSUPPORTED, "no animation-data stage configured", frame.message_id
                )
            )
        elif isinstance(frame, ImageInput):
            self.reply_error(
                md.MetadataError(
                    ErrorCode.UNSUPPORTED, "no camera animation stage configured", frame.message_id
                )
            )
        elif isinstance(frame, GenerateAvatar):
            self.reply_error(
                md.MetadataError(
                    ErrorCode.UNSUPPORTED, "no base-avatar stage configured", frame.message_id
                )
            )
        elif isinstance(frame, ParticipantJoined | ParticipantLeft | SceneQuery | ScenePatchFrame):
            if isinstance(frame, SceneQuery | ScenePatchFrame):
                self.reply_error(
                    md.MetadataError(ErrorCode.UNSUPPORTED, "no scene stage", frame.message_id)
                )
        else:
            log.warning(
                "call %s: pipeline produced %s, which nothing routes",
                self.call_id,
                type(frame).__name__,
                extra=self.log_extra,
            )

    def _stage_failed(self, error: StageError) -> None:
        if error.cause == AvatarUpload.__name__ and error.message_id is not None:
            self.send(
                md.TransferFailed(
                    id=md.new_message_id(),
                    transfer_id=error.message_id,
                    code=error.code,
                    reason=error.message[:1024],
                )
            )
            return
        self.reply_error(md.MetadataError(error.code, error.message, error.message_id))

    def _scene_changed(self, frame: SceneFrame) -> None:
        channels = [
            participant.metadata
            for participant in self.participant.room
            if participant.metadata is not None
            and not (frame.reason == "joined" and participant is self.participant)
        ]
        if not frame.operations or not channels:
            return  # nobody to tell (e.g. a participant alone in its room): nothing to encode
        update = md.SceneUpdated(
            id=md.new_message_id(),
            in_reply_to=frame.message_id,
            version=frame.version,
            operations=tuple(md.PatchOperation.model_validate(op) for op in frame.operations),
        )
        text = md.dump_message(update)
        for channel in channels:
            channel.offer(text)

    # -- D.1.3 / D.2: avatar selection and delivery ---------------------------------------

    async def _select(self, message: md.AvatarSelect) -> None:
        avatar_id = message.avatar_id
        authorizer = self.deps.authorizer
        if authorizer is None or self.deps.store is None:
            self.send(
                md.AvatarRefused(
                    id=md.new_message_id(),
                    in_reply_to=message.id,
                    avatar_id=avatar_id,
                    code=ErrorCode.UNSUPPORTED,
                    reason="this MF has no avatar storage",
                )
            )
            return
        parties = frozenset(p.identity for p in self.participant.room.others(self.participant))
        decision = await authorizer.authorize_use(avatar_id, self.identity, call_parties=parties)
        if not decision.allowed:
            log.warning(
                "call %s: %s refused avatar %s: %s (%s)",
                self.call_id,
                self.identity,
                avatar_id,
                decision.reason_code,
                decision.message,
                extra=self.log_extra,
            )
            self.send(
                md.AvatarRefused(
                    id=md.new_message_id(),
                    in_reply_to=message.id,
                    avatar_id=avatar_id,
                    code=str(decision.reason_code),
                    reason=decision.message[:1024],
                )
            )
            return
        self.send(
            md.AvatarSelected(id=md.new_message_id(), in_reply_to=message.id, avatar_id=avatar_id)
        )
        self._use_avatar(avatar_id, decision)

    def _use_avatar(self, avatar_id: str, decision: Decision | None = None) -> None:
        """Use ``avatar_id`` from now on (``decision``: the grant it rests on; None: owned)."""
        if self._use is not None and self._use.timer is not None:
            self._use.timer.cancel()
        by_grant = decision is not None and decision.reason_code == Reason.GRANTED
        use = self._use = _AvatarUse(avatar_id, by_grant)
        self.avatar_id = avatar_id
        log.info(
            "call %s selected avatar %s",
            self.call_id,
            avatar_id,
            extra={**self.log_extra, "avatar_id": avatar_id},
        )
        if by_grant and decision is not None:
            self._schedule_recheck(use, decision)
        self.pipeline.push(AvatarInUse(self.id, avatar_id))
        for other in self.deps.directory.others(self):
            other.offer_avatar(self)

    # -- TS 22.156: the right to use the avatar holds for the whole call -------------------

    def _schedule_recheck(self, use: _AvatarUse, decision: Decision) -> None:
        """Re-check the grant at its end, or after ``grant_recheck_interval`` (revocations)."""
        delay = self.settings.grant_recheck_interval
        authorizer = self.deps.authorizer
        if decision.valid_until is not None and authorizer is not None:
            # Just past the end: a grant is valid up to its expiry, which is exclusive.
            left = max(0.0, decision.valid_until - authorizer.now())
            delay = min(delay, left + EXPIRY_MARGIN)
        use.timer = self.deps.clock.call_later(delay, lambda: self._recheck_due(use))

    def _recheck_due(self, use: _AvatarUse) -> None:
        use.timer = None
        if not self.closed and self._use is use:
            self._spawn(self._recheck(use))

    async def _recheck(self, use: _AvatarUse) -> None:
        authorizer = self.deps.authorizer
        if authorizer is None:
            return
        others = list(self.deps.directory.others(self))
        try:
            overall, each = await authorizer.authorize_parties(
                use.avatar_id, self.identity, [o.identity for o in others]
            )
        except StorageError as exc:
            # Kept in use until the store answers again (checked at the next interval).
            log.warning(
                "call %s: cannot re-check avatar %s: %s",
                self.call_id,
                use.avatar_id,
                exc,
                extra=self.log_extra,
            )
            if self._use is use and not self.closed:
                use.timer = self.deps.clock.call_later(
                    self.settings.grant_recheck_interval, lambda: self._recheck_due(use)
                )
            return
        if self._use is not use or self.closed:
            return
        if not overall.allowed:
            self._withdraw(use, overall)
            return
        for other in others:
            decision = each.get(other.identity, overall)
            if not decision.allowed and other.id in use.receivers:
                use.receivers.discard(other.id)
                self.delivery_refused(other, use.avatar_id, decision)
                other.withdraw_avatar(self, use.avatar_id, decision)
        self._schedule_recheck(use, overall)

    def _withdraw(self, use: _AvatarUse, decision: Decision) -> None:
        """The right to use the avatar ended: stop using and sending it, and say why."""
        self._use = None
        self.avatar_id = None
        self.pipeline.push(AvatarInUse(self.id, None))
        log.warning(
            "call %s: avatar %s withdrawn from %s: %s (%s)",
            self.call_id,
            use.avatar_id,
            self.identity,
            decision.reason_code,
            decision.message,
            extra={**self.log_extra, "avatar_id": use.avatar_id, "code": decision.reason_code},
        )
        self.send(
            md.AvatarRefused(
                id=md.new_message_id(),
                avatar_id=use.avatar_id,
                code=str(decision.reason_code),
                reason=decision.message[:1024],
            )
        )
        for other in self.deps.directory.others(self):
            if other.id in use.receivers:
                other.withdraw_avatar(self, use.avatar_id, decision)

    def note_delivery(self, receiver: AvatarSession, avatar_id: str) -> bool:
        """``receiver`` is about to be offered this session's avatar: False if it is no longer
        the one in use (withdrawn or changed meanwhile)."""
        use = self._use
        if self.closed or use is None or use.avatar_id != avatar_id:
            return False
        use.receivers.add(receiver.id)
        return True

    def delivery_refused(self, receiver: AvatarSession, avatar_id: str, decision: Decision) -> None:
        """Tell this session's UE (the avatar's user) that ``receiver`` does not get it."""
        log.warning(
            "call %s: avatar %s not delivered to %s: %s (%s)",
            self.call_id,
            avatar_id,
            receiver.identity,
            decision.reason_code,
            decision.message,
            extra={**self.log_extra, "avatar_id": avatar_id, "code": decision.reason_code},
        )
        self.reply_error(
            md.MetadataError(
                str(decision.reason_code),
                f"avatar {avatar_id} is not delivered to participant {receiver.id}: "
                f"{decision.message}",
            )
        )

    def withdraw_avatar(self, source: AvatarSession, avatar_id: str, decision: Decision) -> None:
        """Stop delivering ``source``'s avatar to this UE: its transfers in progress fail and
        the UE is told to stop using it (``avatar refused`` with the TS 22.156 code)."""
        code = str(decision.reason_code)
        reason = decision.message[:1024]
        for transfer_id, out in list(self._outgoing.items()):
            if out.source is source and out.avatar_id == avatar_id:
                del self._outgoing[transfer_id]
                if out.task is not None:
                    out.task.cancel()
                self.send(
                    md.TransferFailed(
                        id=md.new_message_id(), transfer_id=transfer_id, code=code, reason=reason
                    )
                )
        self.send(
            md.AvatarRefused(id=md.new_message_id(), avatar_id=avatar_id, code=code, reason=reason)
        )

    async def _may_receive(self, source: AvatarSession, avatar_id: str) -> Decision | None:
        """May this UE receive ``source``'s avatar now (TS 22.156, this party only)?"""
        authorizer = self.deps.authorizer
        if authorizer is None:
            return None
        overall, each = await authorizer.authorize_parties(
            avatar_id, source.identity, [self.identity]
        )
        return each.get(self.identity, overall)

    def offer_avatar(self, source: AvatarSession) -> None:
        """D.2: deliver ``source``'s base avatar to this UE (loaded once for the whole room),
        if this party may receive it."""
        if source.avatar_id is not None:
            self._spawn(self._offer_avatar(source, source.avatar_id))

    async def _offer_avatar(self, source: AvatarSession, avatar_id: str) -> None:
        channel = self.channels.get("transfer") or self.channels.get("metadata")
        store, cache = self.deps.store, self.deps.cache
        if channel is None or store is None or cache is None:
            return
        decision = await self._may_receive(source, avatar_id)
        if decision is not None and not decision.allowed:
            if source.avatar_id == avatar_id:
                source.delivery_refused(self, avatar_id, decision)
                self.send(
                    md.AvatarRefused(
                        id=md.new_message_id(),
                        avatar_id=avatar_id,
                        code=str(decision.reason_code),
                        reason=decision.message[:1024],
                    )
                )
            return
        record = await store.get_record(avatar_id)
        blob = await cache.get_blob(avatar_id)
        content_type = record.content_type
        converted = await self._convert_for_me(avatar_id, record.digest, blob, content_type)
        if converted is False:
            return
        if isinstance(converted, Converted):
            blob, content_type = converted.data, converted.content_type
        if self.closed or not source.note_delivery(self, avatar_id):
            return  # withdrawn (or replaced) while it was being loaded
        sender = TransferSender(
            blob,
            transfer_id=md.new_message_id(),
            max_message_size=channel.info.max_message_size,
            avatar_id=avatar_id,
            stream_id=channel.info.stream_id,
            content_type=content_type,
        )
        self._outgoing[sender.transfer_id] = _Outgoing(sender, channel, source, avatar_id)
        self._offered_as[source.id, avatar_id] = content_type
        self.send(sender.offer())

    def _accepted(self, accept: md.TransferAccept) -> None:
        out = self._outgoing.get(accept.transfer_id)
        if out is None:
            self.reply_error(
                md.MetadataError(
                    ErrorCode.UNKNOWN_TRANSFER, "no such transfer", in_reply_to=accept.id
                )
            )
            return
        if out.task is not None:
            out.task.cancel()
        out.task = self._spawn(self._pump(out, accept))

    async def _pump(self, out: _Outgoing, accept: md.TransferAccept) -> None:
        try:
            chunks = out.sender.resume(accept)
        except TransferError as exc:
            self.send(exc.reply())
            self._outgoing.pop(out.sender.transfer_id, None)
            return
        # Every start or resume of a delivery is a use of the avatar: check it again.
        decision = await self._may_receive(out.source, out.avatar_id)
        if self._outgoing.get(out.sender.transfer_id) is not out:
            return
        if decision is not None and not decision.allowed:
            self.withdraw_avatar(out.source, out.avatar_id, decision)
            return
        for chunk in chunks:
            while out.channel.buffered_amount() >= self.settings.high_water:
                await sleep(self.deps.clock, self.settings.retry_interval)
            out.channel.send(chunk)

    def _outgoing_done(self, message: md.TransferComplete | md.TransferFailed) -> None:
        out = self._outgoing.pop(message.transfer_id, None)
        if out is None:
            return
        if isinstance(message, md.TransferFailed):
            log.info(
                "call %s: transfer %s failed at the UE: %s",
                self.call_id,
                message.transfer_id,
                message.code,
                extra=self.log_extra,
            )
            if out.task is not None:
                out.task.cancel()
        elif message.sha256 != out.sender.sha256:
            log.warning(
                "call %s: UE reported a different digest", self.call_id, extra=self.log_extra
            )

    # -- uploads (D.1 alternative 2: the UE provides its base avatar) ---------------------

    def _transfer_failed(self, transfer_id: str, code: str, reason: str) -> None:
        self.send(
            md.TransferFailed(
                id=md.new_message_id(), transfer_id=transfer_id, code=code, reason=reason[:1024]
            )
        )

    def _incoming_offer(self, offer: md.TransferOffer) -> None:
        if self.deps.store is None:
            self._transfer_failed(
                offer.transfer_id, ErrorCode.UNSUPPORTED, "this MF has no avatar storage"
            )
            return
        try:
            check_content_type(offer.content_type)
        except InvalidRequestError as exc:
            self._transfer_failed(offer.transfer_id, ErrorCode.UNSUPPORTED, exc.message)
            return
        if offer.content_type in PHOTO_TYPES and offer.total_size > self.settings.max_photo_size:
            self._transfer_failed(
                offer.transfer_id,
                ErrorCode.TOO_LARGE,
                f"a photo of {offer.total_size} bytes is over {self.settings.max_photo_size}",
            )
            return
        try:
            receiver = TransferReceiver(offer, max_size=self.settings.max_transfer_size)
        except TransferError as exc:
            self.send(exc.reply())
            return
        running = self._incoming.get(receiver.tag)
        if running is not None:
            if running.receiver.matches(offer):  # the same transfer offered again: resume
                self.send(running.receiver.accept())
            else:
                self._transfer_failed(
                    offer.transfer_id,
                    ErrorCode.BUSY,
                    "a transfer with this id (chunk tag) is in progress",
                )
            return
        limit = self.settings.max_uploads_per_session
        if limit and len(self._incoming) >= limit:
            self._transfer_failed(
                offer.transfer_id, ErrorCode.BUSY, f"{limit} uploads of this call are in progress"
            )
            return
        if not self.deps.uploads.take():
            self._transfer_failed(
                offer.transfer_id, ErrorCode.BUSY, "the MF takes no more uploads now"
            )
            return
        now = self.deps.clock.now()
        upload = Upload(receiver, started=now, progressed=now)
        self._incoming[receiver.tag] = upload
        self._arm_upload_timer(upload)
        self.send(receiver.accept())

    def _arm_upload_timer(self, upload: Upload) -> None:
        when, _ = deadline(
            upload,
            stall_timeout=self.settings.upload_stall_timeout,
            timeout=self.settings.upload_timeout,
        )
        delay = when - self.deps.clock.now()
        upload.timer = self.deps.clock.call_later(delay, lambda: self._upload_timer(upload))

    def _upload_timer(self, upload: Upload) -> None:
        upload.timer = None
        tag = upload.receiver.tag
        if self.closed or self._incoming.get(tag) is not upload:
            return
        when, reason = deadline(
            upload,
            stall_timeout=self.settings.upload_stall_timeout,
            timeout=self.settings.upload_timeout,
        )
        if self.deps.clock.now() < when:
            self._arm_upload_timer(upload)  # data arrived since the timer was armed
            return
        log.info(
            "call %s: upload %s failed: %s",
            self.call_id,
            upload.receiver.offer.transfer_id,
            reason,
            extra=self.log_extra,
        )
        self.send(upload.receiver.fail(ErrorCode.TIMEOUT, reason))
        self._end_upload(tag)

    def _end_upload(self, tag: bytes) -> None:
        upload = self._incoming.pop(tag, None)
        if upload is None:
            return
        if upload.timer is not None:
            upload.timer.cancel()
            upload.timer = None
        self.deps.uploads.give_back()

    def on_chunk(self, data: bytes) -> None:
        try:
            chunk = parse_chunk(data)
        except ChunkError as exc:
            self.reply_error(md.MetadataError(exc.code, exc.message))
            return
        upload = self._incoming.get(chunk.tag)
        if upload is None:
            self.reply_error(
                md.MetadataError(ErrorCode.UNKNOWN_TRANSFER, "chunk of no open transfer")
            )
            return
        receiver = upload.receiver
        event = receiver.receive(chunk)
        if isinstance(event, ChunkStored):
            upload.progressed = self.deps.clock.now()
        elif isinstance(event, TransferDone):
            self._end_upload(chunk.tag)
            offer = receiver.offer
            if offer.content_type in PHOTO_TYPES:  # a photo for avatar:generate (issue 14)
                self._keep_photo(offer, event.payload)
                return
            self.pipeline.push(
                AvatarUpload(
                    self.id,
                    transfer_id=offer.transfer_id,
                    name=offer.avatar_id or "avatar",
                    content_type=offer.content_type,
                    data=event.payload,
                )
            )
        elif isinstance(event, TransferAborted):
            self._end_upload(chunk.tag)
            self.send(event.reply)
        elif isinstance(event, ChunkGap) and event.reply is not None:
            self.send(event.reply)

    def _keep_photo(self, offer: md.TransferOffer, payload: bytes) -> None:
        self._drop_photo(offer.transfer_id)
        while len(self._photos) >= PHOTOS_KEPT:
            self._drop_photo(next(iter(self._photos)))
        if not self.deps.photo_bytes.take(len(payload)):
            self._transfer_failed(
                offer.transfer_id, ErrorCode.BUSY, "the MF keeps no more photos now"
            )
            return
        self._photos[offer.transfer_id] = payload
        self.send(
            md.TransferComplete(
                id=md.new_message_id(), transfer_id=offer.transfer_id, sha256=offer.sha256.lower()
            )
        )

    def _drop_photo(self, transfer_id: str) -> None:
        payload = self._photos.pop(transfer_id, None)
        if payload is not None:
            self.deps.photo_bytes.give_back(len(payload))

    async def _store_avatar(self, frame: BaseAvatarFrame) -> None:
        """A validated upload or a generated avatar: store it for the caller and use it."""
        store = self.deps.store
        if store is None:
            self.reply_error(
                md.MetadataError(ErrorCode.UNSUPPORTED, "this MF has no avatar storage")
            )
            return
        try:
            record = await store.put(
                frame.data, owner=self.identity, name=frame.name, content_type=frame.content_type
            )
        except StorageError as exc:
            self._store_failed(frame, exc)
            return
        log.info(
            "call %s: stored %s avatar %s for %s",
            self.call_id,
            frame.source,
            record.avatar_id,
            self.identity,
            extra=self.log_extra,
        )
        if frame.source == "upload" and frame.origin_id is not None:
            self.send(
                md.TransferComplete(
                    id=md.new_message_id(), transfer_id=frame.origin_id, sha256=record.digest
                )
            )
            self.send(
                md.AvatarSelected(
                    id=md.new_message_id(), avatar_id=record.avatar_id, transfer_id=frame.origin_id
                )
            )
        else:
            self.send(
                md.AvatarSelected(
                    id=md.new_message_id(), in_reply_to=frame.origin_id, avatar_id=record.avatar_id
                )
            )
        self._use_avatar(record.avatar_id)

    def _store_failed(self, frame: BaseAvatarFrame, exc: StorageError) -> None:
        """The store refused the avatar: the UE is answered (no traceback: it is the input)."""
        if isinstance(exc, AvatarTooLargeError):
            code: str = ErrorCode.TOO_LARGE
        elif isinstance(exc, InvalidRequestError | InvalidAvatarError):
            code = ErrorCode.BAD_AVATAR
        else:
            code = ErrorCode.INTERNAL
        log.log(
            logging.ERROR if code == ErrorCode.INTERNAL else logging.INFO,
            "call %s: %s avatar not stored: %s (%s)",
            self.call_id,
            frame.source,
            exc.code,
            exc.message,
            extra=self.log_extra,
        )
        reason = f"not stored: {exc.message}" if code != ErrorCode.INTERNAL else "storage failed"
        if frame.source == "upload" and frame.origin_id is not None:
            self._transfer_failed(frame.origin_id, code, reason)
        else:
            self.reply_error(md.MetadataError(code, reason, frame.origin_id))

    # -- conversion and expression filters (TR 26.813 section 4; the converter stage) -------

    def _receiver_formats(self) -> None:
        """Tell the converter stage what this UE accepts as a receiver (empty: anything)."""
        hello, agreement = self.hello, self.agreement
        if hello is None:
            return
        hello = with_sdp_asks(hello, self.info)
        profiles = agreement.animation_profiles if agreement and hello.animation_profiles else ()
        formats = agreement.avatar_formats if agreement and hello.avatar_formats else ()
        self.pipeline.push(ReceiverFormats(self.id, self.identity, profiles, formats))
        if self.deps.avatar_converter is not None and hello.avatar_formats:
            # Avatars offered before this hello (when the channel opened) in a format it does
            # not take are offered again, converted.
            for other in self.deps.directory.others(self):
                offered = self._offered_as.get((other.id, other.avatar_id or ""))
                if offered is not None and offered not in hello.avatar_formats:
                    self.offer_avatar(other)

    def _expression_filter(self, message: md.ExpressionFilter) -> None:
        rule = None if message.filter is None else dict(message.filter)
        self.pipeline.push(
            ExpressionFilterFrame(self.id, tuple(message.audience), rule, message_id=message.id)
        )

    def _filter_answer(self, frame: ExpressionFilterApplied | ExpressionFilterFrame) -> None:
        if isinstance(frame, ExpressionFilterFrame):  # no converter stage took it
            self.reply_error(
                md.MetadataError(
                    ErrorCode.UNSUPPORTED,
                    "no converter stage: no expression filters",
                    frame.message_id,
                )
            )
            return
        self.send(
            md.ExpressionFilterApplied(
                id=md.new_message_id(), in_reply_to=frame.message_id, audience=frame.audience
            )
        )

    def _deliver_to(self, frame: AnimationUnitFrame) -> None:
        """A converter stage's copy for some receivers only (or all but some)."""
        wanted = None if frame.receivers is None else set(frame.receivers)
        for other in self.participant.room.others(self.participant):
            if other.animation is None or other.id in frame.excluded:
                continue
            if wanted is None or other.id in wanted:
                other.animation.offer(self.id, frame.unit, is_config=frame.is_config)

    async def _convert_for_me(
        self, avatar_id: str, digest: str, blob: bytes, content_type: str
    ) -> Converted | None | bool:
        """The base avatar in a format this UE accepts (None: as stored; False: it cannot
        be converted, the UE was told)."""
        converter, hello = self.deps.avatar_converter, self.hello
        if converter is None or hello is None:
            return None
        hello = with_sdp_asks(hello, self.info)
        if not hello.avatar_formats:
            return None
        try:
            return await converter.convert_avatar(
                self.deps.executor,
                digest,
                blob,
                content_type,
                hello.avatar_formats,
                avatar_id=avatar_id,
            )
        except ValueError as exc:  # AvatarFormatError included
            log.warning(
                "call %s: avatar %s not converted for %s: %s",
                self.call_id,
                avatar_id,
                hello.avatar_formats,
                exc,
                extra=self.log_extra,
            )
            self.send(
                md.AvatarRefused(
                    id=md.new_message_id(),
                    avatar_id=avatar_id,
                    code=ErrorCode.UNSUPPORTED,
                    reason=f"cannot convert it to {', '.join(hello.avatar_formats)}: {exc}"[:1024],
                )
            )
            return False
