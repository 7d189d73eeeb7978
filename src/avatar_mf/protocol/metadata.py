"""The ``3gpp-ar-metadata`` message set: UTF-8 JSON text messages on an avatar data channel.

Implements the metadata channel of TS 26.264 (Rel-19) as changed by CR 0017 (Feb 2026,
unsettled): "UTF-8 JSON text messages (control, avatar ids, scene, status)", with control
messages such as ``urn:3gpp:avatar:v1:animation:control:stopped`` / ``...:resumed``. The
messages serve the TR 26.813 call flow: A.1 session setup and capabilities (hello,
capabilities), B/C scene description retrieval and update (scene get, scene, scene update with
RFC 6902 JSON Patch operations, scene updated), D.1/D.2 avatar acquisition and delivery
(avatar select/selected/refused, base avatar transfer offer/accept/complete/failed), D.3/D.4
animation control (start, stop, stopped, resumed, text) and multi-party rooms (participant
joined/left). Every name is a constant in :mod:`avatar_mf.protocol.names`.

Wire rules (docs/protocol.md has an example of each message):

* One JSON object per message, UTF-8 (RFC 8259 section 8.1), at most ``max_size`` bytes
  (default 65536, the RFC 8841 default ``a=max-message-size``).
* Every message has ``type`` (a URN, the discriminator) and ``id`` (1-128 printable ASCII
  characters, unique per sender and session). Replies carry ``inReplyTo``.
* Member names are lowerCamelCase (as in 3GPP JSON APIs and ``arf.json``); Python attributes
  are their snake_case forms. Unknown members, wrong JSON types (no "1" for 1, no 1.0 for an
  integer), NaN and infinities are rejected. Optional members may be absent; those whose
  default is "absent" (ids, reasons) may also be ``null``. :func:`dump_message` leaves absent
  optional members out.
* :func:`parse_message` raises :class:`MetadataError` -- and nothing else -- carrying the
  error code to answer with and the offending message's ``id`` when it could be read;
  :func:`error_for` turns it into the :class:`ErrorMessage` reply.

Requires pydantic >= 2.11 (``validate_by_name`` / ``serialize_by_alias``, ``by_name=False`` at
parse time so that snake_case member names are refused on the wire).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, TypeAlias

import pydantic_core
from pydantic import (
    AfterValidator,
    Base64Bytes,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from avatar_mf.protocol.names import URN_PREFIX, ErrorCode, MessageType

#: Largest message :func:`parse_message` accepts by default (RFC 8841 default max-message-size).
DEFAULT_MAX_MESSAGE_SIZE: Final = 65536
#: Most operations in one scene update.
MAX_PATCH_OPERATIONS: Final = 1024

_UINT32_MAX: Final = 0xFFFFFFFF
_JSON_SAFE_MAX: Final = 2**53 - 1  # largest integer every JSON implementation keeps exact

# --- field types -------------------------------------------------------------------------------

_PRINTABLE = r"^[\x21-\x7e]+$"
#: Message ids and other opaque identifiers: 1-128 printable ASCII characters, no spaces.
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_PRINTABLE)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_PRINTABLE)]
ProfileName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
#: RFC 6838 media type ``type/subtype`` (restricted-name characters).
MediaType = Annotated[
    str,
    StringConstraints(
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$",
    ),
]
#: BCP 47 language tag (syntax only: language, then subtags).
LanguageTag = Annotated[
    str, StringConstraints(max_length=64, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
]
#: An error code: lower-case letters, digits and hyphens (see :class:`ErrorCode`).
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
ShortText = Annotated[str, StringConstraints(max_length=1024)]
#: SHA-256 digest as 64 hex digits; either case is accepted, it is kept in lower case.
Sha256Hex = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$"), AfterValidator(str.lower)
]
#: RFC 6901 JSON Pointer: empty (the whole document) or starting with "/".
JsonPointer = Annotated[str, StringConstraints(max_length=1024, pattern=r"^(/[\s\S]*)?$")]


def _finite_json(value: JsonValue) -> JsonValue:
    """Refuse NaN and infinities anywhere in a JSON value (RFC 8259 has no such numbers)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("NaN and Infinity are not JSON numbers")
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


#: Any JSON value (RFC 8259: no NaN or Infinity).
Json = Annotated[JsonValue, AfterValidator(_finite_json)]
StreamId = Annotated[int, Field(ge=0, le=65534)]
Size = Annotated[int, Field(ge=0, le=_UINT32_MAX)]
Version = Annotated[int, Field(ge=0, le=_JSON_SAFE_MAX)]
ProfileList = Annotated[tuple[ProfileName, ...], Field(max_length=32)]
MediaTypeList = Annotated[tuple[MediaType, ...], Field(max_length=32)]
#: An animation input name (see :class:`~avatar_mf.protocol.names.AnimationInput`).
InputName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
InputList = Annotated[tuple[InputName, ...], Field(max_length=16)]
#: A refused function's name: a hello member name (lowerCamelCase).
FunctionName = Annotated[str, StringConstraints(pattern=r"^[a-z][A-Za-z0-9]{0,63}$")]

#: Where a function of the call flow runs: in the network (the MF) or in the UE.
Placement = Literal["network", "ue"]
#: What a UE does with avatar media in this session.
Role = Literal["sender", "receiver", "both"]

_ID_RE: Final = re.compile(r"[\x21-\x7e]{1,128}")

# --- errors ------------------------------------------------------------------------------------


class MetadataError(ValueError):
    """A metadata message that cannot be used, with the answer to send.

    ``code`` is the :class:`ErrorCode` for the error reply, ``message`` a short human readable
    reason, ``in_reply_to`` the offending message's ``id`` when it could be read. Services also
    raise it for valid messages they cannot act on (``unexpected-message``, ``unsupported`` ...);
    :func:`error_for` builds the reply either way.
    """

    code: str
    message: str
    in_reply_to: str | None

    def __init__(self, code: str, message: str, in_reply_to: str | None = None) -> None:
        self.code = str(code)
        self.message = message
        self.in_reply_to = in_reply_to
        super().__init__(f"{self.code}: {message}")


# --- messages ----------------------------------------------------------------------------------


class MessageBase(BaseModel):
    """Members and rules every metadata message shares (use :data:`Message` in signatures)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    #: The message type URN (each subclass narrows it to its own).
    type: MessageType
    #: Unique per sender and session; replies name it in ``in_reply_to``.
    id: MessageId

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Optional members that are None are left out of the JSON (a receiver treats an absent
        # member and null alike).
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}


class Hello(MessageBase):
    """UE -> MF, first message on the channel: what the UE can do and wants (TR 26.813 A.1).

    Every placement ask is optional: an absent one leaves the choice to the MF (the
    negotiation rules of :mod:`avatar_mf.avatar_session.negotiation`, docs/protocol.md). A
    new hello mid-call re-runs the negotiation from scratch.
    """

    type: Literal[MessageType.HELLO] = MessageType.HELLO
    role: Role
    #: ARF animation profiles the UE can produce or consume, e.g. ``arf-face-v1``.
    animation_profiles: ProfileList = ()
    #: Base avatar container media types the UE can use (``model/gltf-binary`` ...).
    avatar_formats: MediaTypeList = ()
    #: Largest message the UE accepts on this channel (0: no limit); at most its SDP
    #: ``a=max-message-size``.
    max_message_size: Size = 0
    #: D.4: ``ue``: the UE animates avatars itself (UE-centric); ``network``: it wants the MF to
    #: animate, render and send the result (network-centric, e.g. as 2D video).
    animation: Placement | None = None
    #: D.1: ``network``: the MF builds the base avatar from the UE's images; ``ue``: the UE
    #: provides it (or it comes from the avatar storage).
    base_avatar_generation: Placement | None = None
    #: D.3: ``network``: the MF creates animation data from ``animation_inputs``; ``ue``: the
    #: UE sends animation units.
    animation_data: Placement | None = None
    #: D.3 network-centric: the media the UE will send for the MF to derive animation data
    #: from (``text``, ``voice``, ``video``, ``images``; see :class:`AnimationInput`).
    animation_inputs: InputList = ()
    #: Free text naming the UE software, for logs.
    user_agent: ShortText | None = None


class Refused(BaseModel):
    """One ask of a hello the MF cannot honour (an entry of capabilities ``refused``)."""

    model_config = MessageBase.model_config

    #: The hello member whose ask is refused (:class:`NegotiatedFunction`; receivers accept
    #: names they do not know).
    function: FunctionName
    #: What was asked (``network``, an input, the listed formats ...), when it is one value.
    requested: ShortText | None = None
    #: :class:`ErrorCode`: ``unsupported``, ``conflict``, ``no-common-format`` ...
    code: Code
    #: Why, for people: names what was asked and what the MF has.
    reason: ShortText

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}


RefusedList = Annotated[tuple[Refused, ...], Field(max_length=32)]


class ConversionNote(BaseModel):
    """A conversion the MF makes for this session and what it loses (capabilities
    ``conversions``; TR 26.813 section 4)."""

    model_config = MessageBase.model_config

    #: ``animation`` (a stream's profile) or ``avatar`` (a base avatar's format).
    kind: Literal["animation", "avatar"]
    #: The profile or media type converted from, and to.
    source: ProfileName | MediaType
    target: ProfileName | MediaType
    #: What the conversion loses, for people.
    loses: ShortText


ConversionList = Annotated[tuple[ConversionNote, ...], Field(max_length=32)]


class Capabilities(MessageBase):
    """MF -> UE, answer to hello: the session and the agreed placement of each function of the
    call (TR 26.813 A.1), with what the MF refused of the hello's asks."""

    type: Literal[MessageType.CAPABILITIES] = MessageType.CAPABILITIES
    in_reply_to: MessageId | None = None
    session_id: Identifier
    #: D.1: who builds the base avatar (``network``: the MF from the UE's images; ``ue``: the
    #: UE provides it, or it comes from the avatar storage).
    base_avatar_generation: Placement
    #: D.3: who creates animation data (``network``: the MF from the UE's media or text;
    #: ``ue``: the UE sends animation units, the MF relays them).
    animation_data: Placement
    #: D.4: who animates the avatar (``network``: the MF renders; ``ue``: the UE does).
    animation: Placement
    #: D.5: who renders (``network``: the MF sends the rendered avatar as video). Follows
    #: ``animation``; absent in older answers, which meant ``ue``.
    rendering: Placement = "ue"
    #: The inputs the MF derives animation data from (when ``animation_data`` is ``network``).
    animation_inputs: InputList = ()
    animation_profiles: ProfileList = ()
    avatar_formats: MediaTypeList = ()
    #: Largest message the MF accepts on this channel (0: no limit).
    max_message_size: Size = 0
    #: Largest base avatar the MF accepts in a transfer.
    max_transfer_size: Size = 0
    #: The hello's asks the MF cannot honour, each with its reason (empty: all agreed).
    refused: RefusedList = ()
    #: Lossy conversions the MF makes for this session (empty: none, or an older MF).
    conversions: ConversionList | None = None


class AvatarSelect(MessageBase):
    """UE -> MF: use this avatar (from the avatar storage / BAR) for the sender."""

    type: Literal[MessageType.AVATAR_SELECT] = MessageType.AVATAR_SELECT
    avatar_id: Identifier


class AvatarGenerate(MessageBase):
    """UE -> MF: build a base avatar for the sender in the network (D.1 alternative 1).

    The MF's base-avatar stage makes it, stores it with the sender as owner, and answers
    ``avatar selected`` (in reply to this message) before delivering it to the others.
    """

    type: Literal[MessageType.AVATAR_GENERATE] = MessageType.AVATAR_GENERATE
    name: Identifier | None = None
    #: Varies a procedural avatar; the same seed gives the same avatar.
    seed: Annotated[int, Field(ge=0, le=_UINT32_MAX)] = 0
    #: Photos (JPEG/PNG) the sender uploaded in this call with the transfer protocol, by
    #: ``transferId``, to build the avatar from (front, left, right: up to 4).
    photos: Annotated[tuple[Identifier, ...], Field(max_length=4)] = ()
    #: Depth images (16-bit greyscale PNG, millimetres, 0 unknown) uploaded like the photos,
    #: one entry per photo, in the same order: a ``transferId`` or null (that photo has none);
    #: absent: no depth (issue 14).
    depths: Annotated[tuple[Identifier | None, ...], Field(max_length=4)] = ()
    #: What to build from: ``photos`` (the default: the photos named, or none for a
    #: procedural avatar) or ``video``: a few pictures of the sender's own RTP video stream
    #: in this call (issue 14; no ``photos`` then; ``no-video`` when the call has none).
    source: Literal["photos", "video"] = "photos"

    @model_validator(mode="after")
    def _video_without_photos(self) -> AvatarGenerate:
        if self.source == "video" and self.photos:
            raise ValueError("source video takes no photos")
        if self.depths and len(self.depths) != len(self.photos):
            raise ValueError("depths has one entry per photo")
        return self


class AvatarGenerateProgress(MessageBase):
    """MF -> UE: how far the generation asked for by ``in_reply_to`` is (it takes seconds):
    ``percent`` 0..100 and the ``stage`` it is in (``landmarks``, ``fit``, ``shape``,
    ``texture``, ``container``, ``done``)."""

    type: Literal[MessageType.AVATAR_GENERATE_PROGRESS] = MessageType.AVATAR_GENERATE_PROGRESS
    in_reply_to: MessageId
    percent: Annotated[int, Field(ge=0, le=100)]
    stage: Identifier


class AvatarSelected(MessageBase):
    """MF -> UE: the avatar is in use; ``transfer_id`` names the transfer that delivers it."""

    type: Literal[MessageType.AVATAR_SELECTED] = MessageType.AVATAR_SELECTED
    in_reply_to: MessageId | None = None
    avatar_id: Identifier
    transfer_id: Identifier | None = None


class AvatarRefused(MessageBase):
    """MF -> UE: the avatar cannot be used (``unknown-avatar``, ``not-authorized`` ...)."""

    type: Literal[MessageType.AVATAR_REFUSED] = MessageType.AVATAR_REFUSED
    in_reply_to: MessageId | None = None
    avatar_id: Identifier
    code: Code
    reason: ShortText | None = None


class TransferOffer(MessageBase):
    """Sender -> receiver (either way): a base avatar follows as chunk messages.

    The chunks arrive as binary messages on data channel stream ``stream_id``; each carries at
    most ``chunk_size`` payload bytes (see :mod:`avatar_mf.protocol.transfer`).
    """

    type: Literal[MessageType.TRANSFER_OFFER] = MessageType.TRANSFER_OFFER
    transfer_id: Identifier
    avatar_id: Identifier
    #: ``model/gltf-binary``, ``application/vnd.arf+zip`` ...
    content_type: MediaType
    total_size: Annotated[int, Field(ge=1, le=_UINT32_MAX)]
    #: SHA-256 of the whole payload, 64 hex digits.
    sha256: Sha256Hex
    chunk_size: Annotated[int, Field(ge=1, le=_UINT32_MAX)]
    stream_id: StreamId


class TransferAccept(MessageBase):
    """Receiver -> sender: send the chunks from ``resume_from`` (0, or where an interrupted
    transfer stopped)."""

    type: Literal[MessageType.TRANSFER_ACCEPT] = MessageType.TRANSFER_ACCEPT
    in_reply_to: MessageId | None = None
    transfer_id: Identifier
    resume_from: Size = 0


class TransferComplete(MessageBase):
    """Receiver -> sender: every byte arrived and the SHA-256 digest matched."""

    type: Literal[MessageType.TRANSFER_COMPLETE] = MessageType.TRANSFER_COMPLETE
    transfer_id: Identifier
    sha256: Sha256Hex


class TransferFailed(MessageBase):
    """Either side: the transfer is abandoned (``too-large``, ``digest-mismatch`` ...)."""

    type: Literal[MessageType.TRANSFER_FAILED] = MessageType.TRANSFER_FAILED
    transfer_id: Identifier
    code: Code
    reason: ShortText | None = None


class AnimationStart(MessageBase):
    """UE -> MF: animation data of ``profile`` starts (sender) or is wanted (receiver) on the
    ``3gpp-ar-animation`` channel ``stream_id`` (the UE's only one when absent)."""

    type: Literal[MessageType.ANIMATION_START] = MessageType.ANIMATION_START
    profile: ProfileName
    stream_id: StreamId | None = None


class AnimationStop(MessageBase):
    """UE -> MF: stop the animation data on ``stream_id`` (all when absent)."""

    type: Literal[MessageType.ANIMATION_STOP] = MessageType.ANIMATION_STOP
    stream_id: StreamId | None = None
    reason: ShortText | None = None


class AnimationStopped(MessageBase):
    """Notification (TS 26.264 CR 0017): the animation stream was stopped (paused)."""

    type: Literal[MessageType.ANIMATION_STOPPED] = MessageType.ANIMATION_STOPPED
    stream_id: StreamId | None = None
    #: Whose animation stopped, in a room (absent in a 1-to-1 call).
    participant_id: Identifier | None = None
    reason: ShortText | None = None


class AnimationResumed(MessageBase):
    """Notification (TS 26.264 CR 0017): the animation stream resumed."""

    type: Literal[MessageType.ANIMATION_RESUMED] = MessageType.ANIMATION_RESUMED
    stream_id: StreamId | None = None
    participant_id: Identifier | None = None


class AnimationText(MessageBase):
    """UE1 -> MF: text for text-driven animation (TR 26.813 D.3 alternative 1)."""

    type: Literal[MessageType.ANIMATION_TEXT] = MessageType.ANIMATION_TEXT
    text: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    #: BCP 47 tag, e.g. ``en-US``.
    language: LanguageTag


class AnimationImage(MessageBase):
    """UE1 -> MF: one camera picture for camera-driven animation (TR 26.813 D.3 alternative
    1, the ``images`` input): a JPEG or PNG, base64 in ``data`` (the whole message within the
    metadata channel's message size)."""

    type: Literal[MessageType.ANIMATION_IMAGE] = MessageType.ANIMATION_IMAGE
    content_type: Literal["image/jpeg", "image/png"]
    data: Annotated[Base64Bytes, Field(min_length=1)]
    #: Seconds on the sender's timeline (increasing); absent: the MF's arrival time.
    media_time: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class SceneGet(MessageBase):
    """UE -> MF: send the current scene description (TR 26.813 B)."""

    type: Literal[MessageType.SCENE_GET] = MessageType.SCENE_GET


class Scene(MessageBase):
    """MF -> UE: the full scene description document and its version."""

    type: Literal[MessageType.SCENE] = MessageType.SCENE
    in_reply_to: MessageId | None = None
    version: Version
    document: dict[str, Json]


_PATCH_NEEDS_VALUE: Final = frozenset({"add", "replace", "test"})
_PATCH_NEEDS_FROM: Final = frozenset({"move", "copy"})


class PatchOperation(BaseModel):
    """One RFC 6902 JSON Patch operation (section 4), with RFC 6901 pointers.

    Stricter than RFC 6902 section 4, which says members an operation does not use are
    ignored: here ``value`` is allowed only for add/replace/test (and required there, ``null``
    included) and ``from`` only for move/copy (required there); other members are refused.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        validate_by_name=True,  # from_="/a" in Python; "from" on the wire
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: JsonPointer
    value: Json = None
    from_: Annotated[JsonPointer | None, Field(alias="from")] = None

    @model_validator(mode="after")
    def _members_for_op(self) -> PatchOperation:
        has_value = "value" in self.model_fields_set
        if (self.op in _PATCH_NEEDS_VALUE) != has_value:
            need = "needs" if self.op in _PATCH_NEEDS_VALUE else "takes no"
            raise ValueError(f"{self.op} {need} value")
        if (self.op in _PATCH_NEEDS_FROM) != (self.from_ is not None):
            need = "needs" if self.op in _PATCH_NEEDS_FROM else "takes no"
            raise ValueError(f"{self.op} {need} from")
        return self

    @model_serializer(mode="plain")
    def _members(self) -> dict[str, JsonValue]:
        data: dict[str, JsonValue] = {"op": self.op, "path": self.path}
        if self.op in _PATCH_NEEDS_FROM:
            data["from"] = self.from_
        if self.op in _PATCH_NEEDS_VALUE:
            data["value"] = self.value
        return data


PatchOperations = Annotated[
    tuple[PatchOperation, ...], Field(min_length=1, max_length=MAX_PATCH_OPERATIONS)
]


class SceneUpdate(MessageBase):
    """UE -> MF: change the scene (TR 26.813 C) by JSON Patch against ``base_version``.

    The MF answers ``scene updated`` (to every UE) or an error ``version-conflict`` (the UE
    then gets the scene and retries) or ``bad-patch``.
    """

    type: Literal[MessageType.SCENE_UPDATE] = MessageType.SCENE_UPDATE
    base_version: Version
    operations: PatchOperations


class SceneUpdated(MessageBase):
    """MF -> UEs: the scene changed to ``version`` by ``operations`` (applied to the previous
    version); a UE not at the previous version sends scene get."""

    type: Literal[MessageType.SCENE_UPDATED] = MessageType.SCENE_UPDATED
    in_reply_to: MessageId | None = None
    version: Version
    operations: PatchOperations


class ParticipantJoined(MessageBase):
    """MF -> UEs (rooms): a participant joined."""

    type: Literal[MessageType.PARTICIPANT_JOINED] = MessageType.PARTICIPANT_JOINED
    #: Opaque to UEs (the MF may use the SIP identity).
    participant_id: Identifier
    display_name: ShortText | None = None
    avatar_id: Identifier | None = None


class ParticipantLeft(MessageBase):
    """MF -> UEs (rooms): a participant left."""

    type: Literal[MessageType.PARTICIPANT_LEFT] = MessageType.PARTICIPANT_LEFT
    participant_id: Identifier
    reason: ShortText | None = None


AudienceKey = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_PRINTABLE)]


class ExpressionFilter(MessageBase):
    """UE -> MF: filter the sender's expressions for an audience (TR 26.813 multi-party:
    network-based filtering or replacing of expressions for selected audiences).

    ``audience``: participant ids, subscriber identities, ``group:<name>`` (operator groups)
    or ``*``. ``filter``: the filter (docs/protocol.md); absent or ``null`` clears the owner's
    filter for that audience.
    """

    type: Literal[MessageType.EXPRESSION_FILTER] = MessageType.EXPRESSION_FILTER
    audience: Annotated[tuple[AudienceKey, ...], Field(min_length=1, max_length=32)]
    filter: dict[str, Json] | None = None


class ExpressionFilterApplied(MessageBase):
    """MF -> UE: the filter applies from the next animation unit on."""

    type: Literal[MessageType.EXPRESSION_FILTER_APPLIED] = MessageType.EXPRESSION_FILTER_APPLIED
    in_reply_to: MessageId | None = None
    audience: Annotated[tuple[AudienceKey, ...], Field(min_length=1, max_length=32)]


class ErrorMessage(MessageBase):
    """Either side: a message could not be used; ``in_reply_to`` names it when known."""

    type: Literal[MessageType.ERROR] = MessageType.ERROR
    code: Code
    message: ShortText
    in_reply_to: MessageId | None = None


#: Any metadata message.
Message: TypeAlias = (
    Hello
    | Capabilities
    | AvatarSelect
    | AvatarGenerate
    | AvatarGenerateProgress
    | AvatarSelected
    | AvatarRefused
    | TransferOffer
    | TransferAccept
    | TransferComplete
    | TransferFailed
    | AnimationStart
    | AnimationStop
    | AnimationStopped
    | AnimationResumed
    | AnimationText
    | AnimationImage
    | SceneGet
    | Scene
    | SceneUpdate
    | SceneUpdated
    | ParticipantJoined
    | ParticipantLeft
    | ErrorMessage
    | ExpressionFilter
    | ExpressionFilterApplied
)

_ADAPTER: Final[TypeAdapter[Message]] = TypeAdapter(Annotated[Message, Field(discriminator="type")])

#: The message class of each type.
MESSAGE_CLASSES: Final[Mapping[MessageType, type[MessageBase]]] = MappingProxyType(
    {
        cls.model_fields["type"].default: cls
        for cls in (
            Hello,
            Capabilities,
            AvatarSelect,
            AvatarGenerate,
            AvatarGenerateProgress,
            AvatarSelected,
            AvatarRefused,
            TransferOffer,
            TransferAccept,
            TransferComplete,
            TransferFailed,
            AnimationStart,
            AnimationStop,
            AnimationStopped,
            AnimationResumed,
            AnimationText,
            AnimationImage,
            SceneGet,
            Scene,
            SceneUpdate,
            SceneUpdated,
            ParticipantJoined,
            ParticipantLeft,
            ErrorMessage,
            ExpressionFilter,
            ExpressionFilterApplied,
        )
    }
)

# --- parse / dump ------------------------------------------------------------------------------


def new_message_id() -> str:
    """A fresh random message id (32 hex digits)."""
    return uuid.uuid4().hex


def parse_message(data: str | bytes, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Message:
    """Parse one ``3gpp-ar-metadata`` message (a text message's string, or its UTF-8 bytes).

    Raises :class:`MetadataError` -- and no other exception -- with code ``too-large``,
    ``bad-encoding``, ``bad-json``, ``not-an-object``, ``missing-type``, ``unknown-type`` or
    ``bad-message``.
    """
    if isinstance(data, str):
        if len(data) > max_size:  # every character is at least one byte
            raise _too_large(len(data), max_size)
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise MetadataError(
                ErrorCode.BAD_ENCODING, "text holds unpaired surrogates, it is not UTF-8"
            ) from None
    else:
        raw = bytes(data)
    if len(raw) > max_size:
        raise _too_large(len(raw), max_size)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetadataError(
            ErrorCode.BAD_ENCODING, f"not UTF-8 (invalid byte at {exc.start})"
        ) from None
    try:
        return _ADAPTER.validate_json(raw, by_name=False)
    except ValidationError as exc:
        raise _classify(exc, raw) from None
    except (ValueError, RecursionError) as exc:  # defensive: pydantic reports via ValidationError
        raise MetadataError(ErrorCode.BAD_JSON, f"cannot parse: {type(exc).__name__}") from None


def _too_large(size: int, limit: int) -> MetadataError:
    return MetadataError(ErrorCode.TOO_LARGE, f"message of {size} bytes, the limit is {limit}")


def _classify(exc: ValidationError, raw: bytes) -> MetadataError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if errors and errors[0]["type"] == "json_invalid":
        return MetadataError(ErrorCode.BAD_JSON, _short(errors[0]["msg"]))
    try:
        document = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as json_error:
        return MetadataError(ErrorCode.BAD_JSON, _short(str(json_error)))
    if not isinstance(document, dict):
        return MetadataError(
            ErrorCode.NOT_AN_OBJECT, f"a message is a JSON object, not {_json_kind(document)}"
        )
    message_id = document.get("id")
    in_reply_to = (
        message_id
        if isinstance(message_id, str) and _ID_RE.fullmatch(message_id) is not None
        else None
    )
    message_type = document.get("type")
    if not isinstance(message_type, str):
        return MetadataError(
            ErrorCode.MISSING_TYPE, 'the message has no "type" string', in_reply_to
        )
    if message_type not in MESSAGE_CLASSES:
        return MetadataError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {_short(message_type, 160)!r}",
            in_reply_to,
        )
    problems = []
    for error in errors[:3]:
        location = [str(part) for part in error["loc"]]
        if location and location[0] == message_type:
            location = location[1:]
        where = ".".join(location) or "message"
        problems.append(f"{where}: {error['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    name = message_type.removeprefix(URN_PREFIX)
    return MetadataError(
        ErrorCode.BAD_MESSAGE, _short(f"{name}: {'; '.join(problems)}{more}"), in_reply_to
    )


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dump_message(message: Message) -> str:
    """The compact JSON text of a message (send it as a text message, UTF-8)."""
    return message.model_dump_json()


def error_for(exc: MetadataError, *, message_id: str | None = None) -> ErrorMessage:
    """The in-protocol error reply to the message that raised ``exc``."""
    return ErrorMessage(
        id=message_id or new_message_id(),
        code=exc.code,
        message=_short(exc.message, 1024),
        in_reply_to=exc.in_reply_to,
    )
