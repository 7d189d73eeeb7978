"""Every wire name of the avatar data channel protocols, in one place.

**Unsettled.** The data channel subprotocol names come from TS 26.264 CR 0017 (Feb 2026), which
was still moving; the ``urn:3gpp:avatar:v1:`` message type URNs follow the pattern of the two
names that CR gives (``urn:3gpp:avatar:v1:animation:control:stopped`` / ``...:resumed``), and
the other URNs, the transfer subprotocol, the chunk magic and the error codes are this
product's own until 3GPP names them. Change a name here and nowhere else; docs/protocol.md
lists each one with its status.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# --- data channel subprotocols (RFC 8864 dcmap ``subprotocol``) ------------------------------

#: UTF-8 JSON text messages: control, avatar ids, scene, status (TS 26.264 CR 0017, unsettled).
SUBPROTOCOL_METADATA: Final = "3gpp-ar-metadata"
#: Binary, one ARF animation unit per message (TS 26.264 CR 0017, unsettled).
SUBPROTOCOL_ANIMATION: Final = "3gpp-ar-animation"
#: Binary chunk messages of base avatar transfers (this product's name, not 3GPP's).
SUBPROTOCOL_TRANSFER: Final = "avatar-mf-transfer"
#: Binary raw audio messages, a UE's microphone without RTP (this product's name, not 3GPP's).
SUBPROTOCOL_AUDIO: Final = "avatar-mf-audio"

# --- metadata message types --------------------------------------------------------------------

#: Prefix of every message type URN (unsettled).
URN_PREFIX: Final = "urn:3gpp:avatar:v1:"


class MessageType(StrEnum):
    """The ``type`` of each ``3gpp-ar-metadata`` message.

    Only ``ANIMATION_STOPPED`` and ``ANIMATION_RESUMED`` are names from TS 26.264 CR 0017; the
    rest follow their pattern (``urn:3gpp:avatar:v1:<area>:<event>``) and are this product's.
    """

    HELLO = URN_PREFIX + "session:hello"
    CAPABILITIES = URN_PREFIX + "session:capabilities"
    AVATAR_SELECT = URN_PREFIX + "avatar:select"
    AVATAR_GENERATE = URN_PREFIX + "avatar:generate"
    AVATAR_GENERATE_PROGRESS = URN_PREFIX + "avatar:generate:progress"
    AVATAR_SELECTED = URN_PREFIX + "avatar:selected"
    AVATAR_REFUSED = URN_PREFIX + "avatar:refused"
    TRANSFER_OFFER = URN_PREFIX + "avatar:transfer:offer"
    TRANSFER_ACCEPT = URN_PREFIX + "avatar:transfer:accept"
    TRANSFER_COMPLETE = URN_PREFIX + "avatar:transfer:complete"
    TRANSFER_FAILED = URN_PREFIX + "avatar:transfer:failed"
    ANIMATION_START = URN_PREFIX + "animation:control:start"
    ANIMATION_STOP = URN_PREFIX + "animation:control:stop"
    ANIMATION_STOPPED = URN_PREFIX + "animation:control:stopped"  # TS 26.264 CR 0017
    ANIMATION_RESUMED = URN_PREFIX + "animation:control:resumed"  # TS 26.264 CR 0017
    ANIMATION_TEXT = URN_PREFIX + "animation:text"
    ANIMATION_IMAGE = URN_PREFIX + "animation:image"
    SCENE_GET = URN_PREFIX + "scene:get"
    SCENE = URN_PREFIX + "scene:description"
    SCENE_UPDATE = URN_PREFIX + "scene:update"
    SCENE_UPDATED = URN_PREFIX + "scene:updated"
    PARTICIPANT_JOINED = URN_PREFIX + "participant:joined"
    PARTICIPANT_LEFT = URN_PREFIX + "participant:left"
    ERROR = URN_PREFIX + "error"
    EXPRESSION_FILTER = URN_PREFIX + "expression:filter"
    EXPRESSION_FILTER_APPLIED = URN_PREFIX + "expression:filter:applied"


# --- error codes -------------------------------------------------------------------------------


class ErrorCode(StrEnum):
    """``code`` values of error, avatar refused and transfer failed messages.

    Receivers must accept codes not listed here (treat them like ``internal``).
    """

    # A received metadata message could not be used (MetadataError codes).
    BAD_ENCODING = "bad-encoding"  # not UTF-8
    BAD_JSON = "bad-json"  # not JSON, or nested deeper than the parser allows
    NOT_AN_OBJECT = "not-an-object"  # JSON, but not an object
    MISSING_TYPE = "missing-type"  # no "type" string
    UNKNOWN_TYPE = "unknown-type"  # a "type" this MF does not know
    BAD_MESSAGE = "bad-message"  # schema violation: missing/extra/ill-typed field
    TOO_LARGE = "too-large"  # message or declared transfer size over the limit
    # The message was valid but cannot be acted on.
    UNEXPECTED_MESSAGE = "unexpected-message"  # not allowed in the current state
    UNSUPPORTED = "unsupported"  # a profile, format or function the MF does not offer
    UNKNOWN_AVATAR = "unknown-avatar"
    NOT_AUTHORIZED = "not-authorized"  # TS 22.156: no right to use this avatar
    VERSION_CONFLICT = "version-conflict"  # scene update against an old base version
    BAD_PATCH = "bad-patch"  # a JSON Patch that cannot be applied
    BUSY = "busy"
    INTERNAL = "internal"
    STAGE_FAILED = "stage-failed"  # a pipeline stage failed for this request
    BAD_UNIT = "bad-unit"  # an animation channel message that is not one valid unit
    BAD_AUDIO = "bad-audio"  # an audio channel message that is not one valid audio message
    NO_VIDEO = "no-video"  # avatar generate from video: no picture of the call's video yet
    # Negotiation refusals (capabilities ``refused``, TR 26.813 A.1).
    CONFLICT = "conflict"  # the hello contradicts the Contact feature tag or itself
    NO_COMMON_PROFILE = "no-common-profile"  # none of the UE's animation profiles is offered
    NO_COMMON_FORMAT = "no-common-format"  # none of the UE's avatar formats is offered
    # Avatar refused (TS 22.156 authorization, detailed).
    NOT_OWNER = "not-owner"
    GRANT_EXPIRED = "grant-expired"
    GRANT_NOT_YET_VALID = "grant-not-yet-valid"
    GRANT_REVOKED = "grant-revoked"
    PARTY_NOT_ALLOWED = "party-not-allowed"
    # Transfers (avatar:transfer:failed).
    DIGEST_MISMATCH = "digest-mismatch"
    OVERFLOW = "overflow"  # a chunk past the declared total size
    CHUNK_TOO_LARGE = "chunk-too-large"  # a chunk larger than the offered chunk size
    GAP = "gap"  # a chunk beyond the next expected offset
    BAD_CHUNK = "bad-chunk"  # a binary message that is not a chunk message
    BAD_RESUME = "bad-resume"  # an accept whose resumeFrom is past the end
    UNKNOWN_TRANSFER = "unknown-transfer"  # an accept or chunk of no open transfer
    BAD_AVATAR = "bad-avatar"  # an uploaded container that is not a valid base avatar
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


# --- negotiation (hello / capabilities) ---------------------------------------------------------


class NegotiatedFunction(StrEnum):
    """``function`` of a capabilities ``refused`` entry: the hello member whose ask is refused
    (the functions of TR 26.813 D.1-D.5 and the lists negotiated with them)."""

    BASE_AVATAR_GENERATION = "baseAvatarGeneration"  # D.1
    ANIMATION_DATA = "animationData"  # D.3
    ANIMATION_INPUTS = "animationInputs"  # D.3 network-centric: what the MF derives data from
    ANIMATION = "animation"  # D.4 (and D.5 rendering, which follows it)
    ANIMATION_PROFILES = "animationProfiles"
    AVATAR_FORMATS = "avatarFormats"


class AnimationInput(StrEnum):
    """Media a UE sends for network-centric animation data (TR 26.813 D.3 alternative 1)."""

    TEXT = "text"
    VOICE = "voice"
    VIDEO = "video"
    IMAGES = "images"


# --- transfer chunk messages -------------------------------------------------------------------

#: First 4 bytes of every transfer chunk message: "AVT1" (avatar transfer, format 1).
CHUNK_MAGIC: Final = b"AVT1"

# --- values used in messages -------------------------------------------------------------------

#: ARF animation profiles (arf.json ``preamble.supportedAnimations``).
PROFILE_ARF_FACE: Final = "arf-face-v1"
PROFILE_ARF_BODY: Final = "arf-body-v1"
#: Base avatar container media types.
CONTENT_TYPE_GLB: Final = "model/gltf-binary"
CONTENT_TYPE_ARF_ZIP: Final = "application/vnd.arf+zip"
