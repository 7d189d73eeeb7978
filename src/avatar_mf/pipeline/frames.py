"""Frames: what flows through an avatar session's pipeline (pipecat's shape).

Everything that enters a session (an animation unit from the UE's channel, a text to speak, an
uploaded or requested base avatar, a scene patch, a participant joining or leaving) is adapted
into one of these frozen, slotted dataclasses and pushed into the session's
:class:`~avatar_mf.pipeline.runner.SessionPipeline`; what comes out of the stages (animation
units, base avatars, scene changes, errors) is a frame too, routed by the session to the
participants that negotiated it. Change a frame with :func:`dataclasses.replace`.

Every frame names the ``participant`` it comes from or concerns (the call's participant id in
its room). Each frame class says how it behaves when a stage falls behind
(:attr:`Frame.delivery`): animation is :attr:`Delivery.NEWEST_WINS` (a stale unit is worth
nothing: the oldest waiting one is dropped), everything else is :attr:`Delivery.RELIABLE`
(never dropped; past the queue limit the new frame is refused with a ``busy`` error).

Errors travel as :class:`StageError` frames: a failing stage degrades its own session (the UE
gets an ``error`` message) and never the pipeline or the process.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar


class Delivery(enum.Enum):
    """What a pipeline does with a frame when the stage it waits for is behind."""

    #: Never dropped; past the queue limit a new frame is refused (``busy``) instead.
    RELIABLE = "reliable"
    #: Real-time data: past the queue limit the oldest waiting frame of the kind is dropped.
    NEWEST_WINS = "newest-wins"


@dataclass(frozen=True, slots=True)
class Frame:
    """Base of every frame: the participant it comes from or concerns."""

    participant: str

    delivery: ClassVar[Delivery] = Delivery.RELIABLE

    @property
    def request_id(self) -> str | None:
        """The id of the UE message that caused this frame, for error replies."""
        return None


# -- inputs from the UE ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextInput(Frame):
    """Text the UE wants its avatar to speak (D.3 network-centric, text source)."""

    text: str
    language: str = "en"
    message_id: str | None = None

    @property
    def request_id(self) -> str | None:
        return self.message_id


@dataclass(frozen=True, slots=True)
class ImageInput(Frame):
    """A camera picture the UE sent on a data channel (D.3 network-centric, images source):
    JPEG or PNG bytes; ``media_time`` seconds on the sender's timeline (None: the arrival
    time). Newest-wins, like video: an old picture is worth nothing."""

    data: bytes = field(repr=False)
    media_time: float | None = None
    message_id: str | None = None

    delivery: ClassVar[Delivery] = Delivery.NEWEST_WINS

    @property
    def request_id(self) -> str | None:
        return self.message_id


@dataclass(frozen=True, slots=True)
class AnimationUnitFrame(Frame):
    """One encoded ARF Avatar Animation Unit (ISO/IEC 23090-39), as sent on the wire.

    From the UE's animation channel (D.3 UE-centric) or from an animation-data stage (D.3
    network-centric). ``media_time`` is the unit's time in seconds from the start of its stream
    when a stage made it (None for relayed UE units); ``timescale`` the ticks per second of
    its stream when known.
    """

    unit: bytes = field(repr=False)
    is_config: bool = False
    media_time: float | None = None
    timescale: float | None = None
    #: Who gets it: None, every other participant of the room but ``excluded``; else only
    #: these participant ids (a converter stage's per-receiver copy, TR 26.813 section 4).
    receivers: tuple[str, ...] | None = None
    excluded: frozenset[str] = frozenset()

    delivery: ClassVar[Delivery] = Delivery.NEWEST_WINS


@dataclass(frozen=True, slots=True)
class AudioIn(Frame):
    """20 ms of the participant's voice, decoded from its RTP audio stream (IMS style).

    ``pcm`` is 16 kHz mono signed 16-bit little-endian (640 bytes); ``rtp_timestamp`` the
    timestamp of the RTP packet it came from, at ``clock_rate`` (the negotiated codec's RTP
    clock), so a stage can place it on the sender's timeline (gaps show as jumps of more than
    one frame). For the voice-driven animation stages; no stage takes it by default.
    """

    pcm: bytes = field(repr=False)
    rtp_timestamp: int = 0
    clock_rate: int = 16000

    delivery: ClassVar[Delivery] = Delivery.NEWEST_WINS


@dataclass(frozen=True, slots=True)
class VideoIn(Frame):
    """One picture of the participant's camera, decoded from its RTP video stream (IMS style).

    ``data`` is planar I420 (``yuv420p``: Y, then U and V at half width and height, rows
    packed), ``width`` x ``height``; ``rtp_timestamp`` the picture's RTP timestamp at
    ``clock_rate`` (90 kHz for every video payload format). ``keyframe``: decoded from a key
    frame (IDR). For the video-driven and photo-avatar stages; no stage takes it by default.
    """

    width: int = 0
    height: int = 0
    data: bytes = field(default=b"", repr=False)
    rtp_timestamp: int = 0
    clock_rate: int = 90000
    keyframe: bool = False

    delivery: ClassVar[Delivery] = Delivery.NEWEST_WINS


@dataclass(frozen=True, slots=True)
class AudioOut(Frame):
    """Speech the session's stages produced for its participant (text spoken by the MF),
    to be heard by the room's other participants.

    ``pcm`` is 16 kHz mono s16le, any length. ``media_time`` says where it starts on the
    utterance's timeline, in seconds after the frame is produced: the animation units of the
    same utterance are produced at their own media times on that timeline, so the audio
    plane plays the first sample at (time the frame came out) + ``media_time``.
    """

    pcm: bytes = field(repr=False)
    media_time: float = 0.0


@dataclass(frozen=True, slots=True)
class AvatarUpload(Frame):
    """A base avatar container the UE uploaded (a completed transfer), to be validated."""

    transfer_id: str
    name: str
    content_type: str
    data: bytes = field(repr=False)

    @property
    def request_id(self) -> str | None:
        return self.transfer_id


@dataclass(frozen=True, slots=True)
class GenerateAvatar(Frame):
    """The UE asks the network to build its base avatar (D.1 alternative 1)."""

    identity: str
    name: str = "avatar"
    seed: int = 0
    images: tuple[bytes, ...] = field(default=(), repr=False)
    message_id: str | None = None
    #: Per image, its depth image (16-bit PNG) or None; empty: none.
    depths: tuple[bytes | None, ...] = field(default=(), repr=False)
    #: ``source: video``: the last few pictures of the participant's RTP video stream the
    #: session kept (oldest first), to build from instead of photos.
    video: tuple[VideoIn, ...] = field(default=(), repr=False)

    @property
    def request_id(self) -> str | None:
        return self.message_id


@dataclass(frozen=True, slots=True)
class ScenePatchFrame(Frame):
    """A JSON Patch (RFC 6902) against a scene version, from a UE (C)."""

    base_version: int
    operations: tuple[dict[str, Any], ...] = field(hash=False)
    message_id: str | None = None

    @property
    def request_id(self) -> str | None:
        return self.message_id


@dataclass(frozen=True, slots=True)
class SceneQuery(Frame):
    """The UE asks for the scene description (B)."""

    message_id: str | None = None

    @property
    def request_id(self) -> str | None:
        return self.message_id


@dataclass(frozen=True, slots=True)
class ParticipantJoined(Frame):
    """The session's participant joined its room (the session pushes it first)."""

    display_name: str
    avatar_id: str | None = None


@dataclass(frozen=True, slots=True)
class AvatarInUse(Frame):
    """The avatar the session's participant uses changed: selected, generated and taken into
    use, or withdrawn (None) when the right to use it ended."""

    avatar_id: str | None


@dataclass(frozen=True, slots=True)
class ParticipantLeft(Frame):
    """The session's participant is leaving its room (the session pushes it last)."""


@dataclass(frozen=True, slots=True)
class ReceiverFormats(Frame):
    """What the participant accepts as a receiver (its hello, TR 26.813 A.1): animation
    profiles and base avatar formats, each empty for "anything"; for the converter stage."""

    identity: str
    profiles: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExpressionFilterFrame(Frame):
    """The participant (an avatar's owner) sets or clears the filter its expressions get on
    the way to an audience (TR 26.813 multi-party: per-audience filtering)."""

    #: Participant ids, identities, ``group:<name>`` or ``*``.
    audience: tuple[str, ...]
    #: The filter's JSON form (docs/protocol.md); None clears it.
    rule: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    message_id: str | None = None

    @property
    def request_id(self) -> str | None:
        return self.message_id


# -- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BaseAvatarFrame(Frame):
    """A base avatar container ready to store and deliver (D.1, D.2)."""

    name: str
    content_type: str
    data: bytes = field(repr=False)
    #: Where it came from: "upload" (validated) or "generated".
    source: str = "upload"
    #: The upload's transfer id, or the id of the message that asked for generation.
    origin_id: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationProgress(Frame):
    """How far a base-avatar generation is (issue 14): ``percent`` 0..100 and the step's name,
    for the UE that asked (``message_id``)."""

    percent: int
    stage: str
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class SceneFrame(Frame):
    """A change to the room's scene, as applied (C): fanned out to the whole room."""

    version: int
    operations: tuple[dict[str, Any], ...] = field(hash=False, compare=False)
    message_id: str | None = None
    #: What changed the scene: "update" (a UE's patch), "joined" or "left" (a participant's
    #: node), "avatar" (the avatar a participant uses). A participant's own "joined" change is
    #: not sent to it (it asks for the scene).
    reason: str = "update"

    @property
    def request_id(self) -> str | None:
        return self.message_id


@dataclass(frozen=True, slots=True)
class SceneSnapshot(Frame):
    """The room's scene description, for the participant that asked (B)."""

    version: int
    document: dict[str, Any] = field(hash=False, compare=False)
    message_id: str | None = None

    @property
    def request_id(self) -> str | None:
        return self.message_id


@dataclass(frozen=True, slots=True)
class ExpressionFilterApplied(Frame):
    """The converter stage applies the filter from now on (the reply to the owner)."""

    audience: tuple[str, ...]
    message_id: str | None = None

    @property
    def request_id(self) -> str | None:
        return self.message_id


@dataclass(frozen=True, slots=True)
class StageError(Frame):
    """A stage failed on one frame; the session tells the UE and goes on."""

    stage: str
    kind: str
    code: str
    message: str
    retryable: bool = False
    #: The request the failed frame came from (a message id, or a transfer id for uploads).
    message_id: str | None = None
    #: The class name of the frame the stage failed on.
    cause: str = ""

    @property
    def request_id(self) -> str | None:
        return self.message_id
