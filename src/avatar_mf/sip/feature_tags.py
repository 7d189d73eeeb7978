"""Feature tags of a Contact header value (RFC 3840 section 9) and the caller's avatar support.

RFC 3840 carries a UA's capabilities as Contact header parameters, the *feature parameters*:

* ``feature-param = enc-feature-tag [EQUAL LDQUOT (tag-value-list / string-value) RDQUOT]``;
  ``enc-feature-tag`` is a base tag (``audio``, ``video``, ``methods``, ``isfocus`` ...,
  RFC 3840 section 10) or ``"+" ftag-name`` (``+sip.app-subtype``, ``+g.3gpp.icsi-ref`` ...).
* A feature parameter with no value is the boolean ``TRUE`` (RFC 3840 section 9: "the feature
  tag is boolean, and its value is TRUE").
* ``tag-value-list = tag-value *("," tag-value)``; ``tag-value = ["!"] (token-nobang / boolean
  / numeric)``; a ``string-value`` is ``"<" ... ">"``. Token values compare case-insensitively
  (kept lower-cased here), string values case-sensitively (kept as written, without the angle
  brackets). Parameter names are case-insensitive (RFC 3261 7.3.1; lower-cased here).
* Values should be quoted; unquoted values (``+sip.3gpp-avatar-support=avatar-capable``) are
  accepted too, since UEs send them.

The tags the avatar MF reads:

* ``+sip.3gpp-avatar-support="avatar-capable"`` or ``"avatar-assisted"`` (TS 26.264): the UE
  animates and renders avatars itself, or it needs the network to animate and render for it and
  receives video (TS 26.264 clause 7.3.2). Absent (or a value this MF does not know):
  :attr:`AvatarSupport.UNKNOWN`.
* ``+sip.app-subtype="webrtc-datachannel"`` (TS 24.186): the UE supports IMS data channels.

Parsing reuses :func:`avatar_mf.sip.headers.parse_name_addr` (the Contact's header parameters)
and is pure. A Contact that does not parse yields no tags: the user agent already accepted the
INVITE, and a caller with unreadable tags is simply a caller with unknown avatar support.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from avatar_mf.sip.errors import SipParseError
from avatar_mf.sip.headers import Params, parse_name_addr, unquote_string

__all__ = [
    "AVATAR_SUPPORT_TAG",
    "APP_SUBTYPE_TAG",
    "BASE_TAGS",
    "DATACHANNEL_SUBTYPE",
    "AvatarFeatureTags",
    "AvatarSupport",
    "FeatureTag",
    "avatar_feature_tags",
    "feature_tags",
    "feature_tags_of_params",
]

#: TS 26.264 avatar support feature tag (Contact parameter name, lower case).
AVATAR_SUPPORT_TAG: Final = "+sip.3gpp-avatar-support"
#: RFC 3840 / TS 24.186 application subtype feature tag.
APP_SUBTYPE_TAG: Final = "+sip.app-subtype"
#: The ``+sip.app-subtype`` value of a data channel capable UE (TS 24.186).
DATACHANNEL_SUBTYPE: Final = "webrtc-datachannel"

#: RFC 3840 section 9 ``base-tags`` (feature tags written without the leading ``+``).
BASE_TAGS: Final = frozenset(
    {
        "audio",
        "automata",
        "class",
        "duplex",
        "data",
        "control",
        "mobility",
        "description",
        "events",
        "priority",
        "methods",
        "schemes",
        "application",
        "video",
        "language",
        "type",
        "isfocus",
        "actor",
        "text",
        "extensions",
    }
)


class AvatarSupport(StrEnum):
    """What the caller said about avatars in its Contact (``+sip.3gpp-avatar-support``)."""

    #: The UE animates and renders avatars itself.
    CAPABLE = "avatar-capable"
    #: The UE needs the network to animate and render; it receives video (TS 26.264 7.3.2).
    ASSISTED = "avatar-assisted"
    #: No tag, or no value this MF knows.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class FeatureTag:
    """One feature parameter of a Contact.

    Attributes:
        name: the parameter name, lower-cased, with its ``+`` (``+sip.app-subtype``, ``video``).
        values: the tag values in wire order: tokens lower-cased (a negated one keeps its
            ``!``), string values without their ``<>``; empty for a tag written with no value,
            which is the boolean TRUE.
    """

    name: str
    values: tuple[str, ...] = ()

    @property
    def is_true(self) -> bool:
        """True for a boolean tag that is set: no value, or the value ``TRUE``."""
        return self.values in ((), ("true",))

    def has(self, value: str) -> bool:
        """True if ``value`` (a token, compared case-insensitively) is one of the values."""
        return value.lower() in self.values


@dataclass(frozen=True, slots=True)
class AvatarFeatureTags:
    """The caller's avatar-related feature tags, parsed once per call.

    Attributes:
        avatar_support: from ``+sip.3gpp-avatar-support``; a UE listing both values is
            ``CAPABLE`` (it can animate itself and may still ask the network to).
        datachannel: ``+sip.app-subtype`` lists ``webrtc-datachannel``.
    """

    avatar_support: AvatarSupport = AvatarSupport.UNKNOWN
    datachannel: bool = False


def _is_feature_name(name: str) -> bool:
    return name in BASE_TAGS or (len(name) > 1 and name[0] == "+")


def _values(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    text = unquote_string(raw) if raw.startswith('"') else raw
    text = text.strip(" \t")
    if text.startswith("<") and text.endswith(">"):
        return (text[1:-1],)  # string-value: one case-sensitive string
    return tuple(v.strip(" \t").lower() for v in text.split(",") if v.strip(" \t"))


def feature_tags_of_params(params: Params) -> tuple[FeatureTag, ...]:
    """The feature parameters among a Contact's header parameters, in wire order."""
    return tuple(
        FeatureTag(name, _values(value)) for name, value in params if _is_feature_name(name)
    )


def feature_tags(contact: str) -> tuple[FeatureTag, ...]:
    """Every feature tag of one Contact header value (``()`` if it does not parse)."""
    if not contact:
        return ()
    try:
        address = parse_name_addr(contact)
    except SipParseError:
        return ()
    return feature_tags_of_params(address.params)


def avatar_feature_tags(contact: str) -> AvatarFeatureTags:
    """The caller's avatar support and data channel capability from its Contact value."""
    support = AvatarSupport.UNKNOWN
    datachannel = False
    for tag in feature_tags(contact):
        if tag.name == AVATAR_SUPPORT_TAG and support is AvatarSupport.UNKNOWN:
            if tag.has(AvatarSupport.CAPABLE):
                support = AvatarSupport.CAPABLE
            elif tag.has(AvatarSupport.ASSISTED):
                support = AvatarSupport.ASSISTED
        elif tag.name == APP_SUBTYPE_TAG and tag.has(DATACHANNEL_SUBTYPE):
            datachannel = True
    return AvatarFeatureTags(support, datachannel)
