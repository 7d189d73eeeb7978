"""Negotiated placement of each avatar function (TR 26.813 A.1; TS 26.264 7.3.2; RFC 3840).

At session setup (TR 26.813 A.1) the UE and the MF agree where each function of the call flow
runs -- in the UE (``ue``) or in the network, i.e. this MF (``network``): D.1 base avatar
generation, D.3 animation data, D.4 animation, D.5 rendering -- and on the animation profiles
and avatar formats both sides use. Three inputs decide:

* ``tags``: the caller's ``+sip.3gpp-avatar-support`` Contact feature tag (TS 26.264):
  ``avatar-capable`` (the UE animates and renders itself), ``avatar-assisted`` (TS 26.264
  7.3.2: the UE needs the network to animate and render; it receives video), or unknown;
* ``hello``: the UE's asks (:class:`~avatar_mf.protocol.metadata.Hello`), each optional;
* ``network``: what this MF node can do (:class:`NetworkFunctions`, built from its stages).

:func:`negotiate` is pure: a new hello mid-call simply runs it again, and the new result
replaces the old one entirely (nothing of the previous hello carries over; the tags are those
of the call).

Rules (docs/protocol.md section 3 has the same table). ``T`` is the tag, ``H.x`` the hello's ask
for ``x`` (``-`` absent), ``N.x`` the MF's ability. A refusal is ``(function, requested, code)``.
The principle: an explicit hello ask beats the tag when both can be honoured; an ask the MF
cannot honour, or one that contradicts the tag, is refused with its reason -- never silently
answered ``ue`` -- and the function then falls back to the UE.

=====================  ==============================  ==========================================
function               inputs                          agreed placement / refusal
=====================  ==============================  ==========================================
D.4 animation          T=assisted, H.animation=ue      refuse (animation, ue, conflict); then as
                                                       if H.animation were absent
                       H.animation=network, N          network
                       H.animation=network, no N       ue; refuse (animation, network,
                                                       unsupported)
                       H.animation absent, T=assisted  network if N, else ue and refuse
                                                       (animation, network, unsupported)
                       H.animation=ue (T not assisted) ue
                       H.animation absent, T capable   ue
                       or unknown
D.5 rendering          --                              the same as animation (the animating side
                                                       renders; network = MF sends video)
D.1 base avatar        H=network, N                    network
generation             H=network, no N                 ue; refuse (baseAvatarGeneration,
                                                       network, unsupported)
                       H=ue or absent                  ue (the UE or the avatar storage)
D.3 inputs             H.animationData=ue and inputs   refuse (animationInputs, the list,
                                                       conflict); no inputs agreed
                       each input not in N.inputs      refuse (animationInputs, input,
                                                       unsupported)
                       agreed inputs                   the UE's inputs in N.inputs (UE order);
                                                       H=network with no inputs listed: all of
                                                       N.inputs
                       voice and video both agreed     video only (one face source per session:
                                                       the camera tracks face and head); voice
                                                       asked: refuse (animationInputs, voice,
                                                       conflict)
D.3 animation data     H=network, agreed inputs        network
                       H=network, none agreed          ue; refuse (animationData, network,
                                                       unsupported)
                       H absent                        network if any input agreed, else ue
                       H=ue                            ue
profiles               hello lists none                all of N.profiles
                       hello lists some                those also in N.profiles, in the UE's
                                                       order; none: refuse (animationProfiles,
                                                       the list, no-common-profile)
formats                hello lists none                all of N.formats
                       hello lists some                those also in N.formats, in the UE's
                                                       order; none: refuse (avatarFormats,
                                                       the list, no-common-format)
=====================  ==============================  ==========================================

The tag bears on animation and rendering only: an avatar-assisted UE still sends its own
animation data unless it asks otherwise. ``avatar-capable`` with ``H.animation=network`` is no
conflict: a UE able to animate may still offload it (the hello wins). The hello's ``role`` does
not change the placement: a sender's placement applies to the avatar it sends, a receiver's to
the avatars it receives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

from avatar_mf.avatar.check import COMMON_CONTENT_TYPE, COMMON_PROFILE
from avatar_mf.protocol.metadata import Capabilities, ConversionNote, Hello, Placement, Refused
from avatar_mf.protocol.names import AnimationInput, ErrorCode, NegotiatedFunction
from avatar_mf.sip.feature_tags import AvatarFeatureTags, AvatarSupport

__all__ = [
    "DCSA_FORMATS",
    "DCSA_PROFILES",
    "ConversionNote",
    "NetworkFunctions",
    "Negotiation",
    "Refusal",
    "capabilities",
    "conversion_notes",
    "negotiate",
    "sdp_asks",
    "with_fallback",
    "with_sdp_asks",
]

#: ``a=dcsa:<stream-id> 3gpp-avatar-profiles:<profile>,<profile>...`` (RFC 8864 dcsa; the
#: attribute names are this product's, 3GPP has none): the animation profiles the UE accepts.
DCSA_PROFILES: Final = "3gpp-avatar-profiles"
#: ``a=dcsa:<stream-id> 3gpp-avatar-formats:<media type>,...``: the base avatar formats.
DCSA_FORMATS: Final = "3gpp-avatar-formats"


@dataclass(frozen=True, slots=True)
class NetworkFunctions:
    """What this MF node can do for a call (the lead builds it from the configured stages).

    Attributes:
        base_avatar_generation: a D.1 stage builds base avatars from the UE's images.
        animation_data_inputs: the inputs D.3 stages derive animation data from
            (``{"text"}``, ``{"text", "voice"}`` ...; names of
            :class:`~avatar_mf.protocol.names.AnimationInput`).
        animation: D.4 network animation and D.5 rendering (the MF sends video).
        profiles: the ARF animation profiles the MF handles, in its order of preference.
        formats: the base avatar container media types the MF handles.
    """

    base_avatar_generation: bool = False
    animation_data_inputs: frozenset[str] = frozenset()
    animation: bool = False
    profiles: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """An ask the MF cannot honour.

    Attributes:
        function: the hello member asked (:class:`~avatar_mf.protocol.names.NegotiatedFunction`).
        requested: what was asked (``network``, ``ue``, an input, a comma-separated list).
        code: the :class:`~avatar_mf.protocol.names.ErrorCode`.
        reason: for people: what was asked, and why it cannot be.
    """

    function: NegotiatedFunction
    requested: str
    code: ErrorCode
    reason: str


@dataclass(frozen=True, slots=True)
class Negotiation:
    """The agreement: where each function runs, the common lists, and the refusals."""

    base_avatar_generation: Placement
    animation_data: Placement
    animation: Placement
    rendering: Placement
    #: The inputs the MF derives animation data from (empty unless animation_data is network).
    animation_inputs: tuple[str, ...]
    animation_profiles: tuple[str, ...]
    avatar_formats: tuple[str, ...]
    refused: tuple[Refusal, ...] = ()


def negotiate(tags: AvatarFeatureTags, hello: Hello, network: NetworkFunctions) -> Negotiation:
    """Agree the placement of each function from the tag, the hello and the MF's abilities."""
    refused: list[Refusal] = []
    animation = _animation(tags.avatar_support, hello.animation, network.animation, refused)
    base = _base_avatar_generation(hello.base_avatar_generation, network, refused)
    inputs, animation_data = _animation_data(hello, network.animation_data_inputs, refused)
    profiles = _common(
        hello.animation_profiles,
        network.profiles,
        NegotiatedFunction.ANIMATION_PROFILES,
        ErrorCode.NO_COMMON_PROFILE,
        "animation profile",
        refused,
    )
    formats = _common(
        hello.avatar_formats,
        network.formats,
        NegotiatedFunction.AVATAR_FORMATS,
        ErrorCode.NO_COMMON_FORMAT,
        "avatar format",
        refused,
    )
    return Negotiation(
        base_avatar_generation=base,
        animation_data=animation_data,
        animation=animation,
        rendering=animation,
        animation_inputs=inputs,
        animation_profiles=profiles,
        avatar_formats=formats,
        refused=tuple(refused),
    )


def capabilities(
    negotiation: Negotiation,
    *,
    message_id: str,
    in_reply_to: str | None,
    session_id: str,
    max_message_size: int,
    max_transfer_size: int,
    conversions: Sequence[ConversionNote] = (),
) -> Capabilities:
    """The capabilities message that carries ``negotiation`` to the UE (``conversions``: the
    lossy conversions the MF makes for this session, TR 26.813 section 4)."""
    return Capabilities(
        id=message_id,
        in_reply_to=in_reply_to,
        session_id=session_id,
        base_avatar_generation=negotiation.base_avatar_generation,
        animation_data=negotiation.animation_data,
        animation=negotiation.animation,
        rendering=negotiation.rendering,
        animation_inputs=negotiation.animation_inputs,
        animation_profiles=negotiation.animation_profiles,
        avatar_formats=negotiation.avatar_formats,
        max_message_size=max_message_size,
        max_transfer_size=max_transfer_size,
        refused=tuple(
            Refused(
                function=r.function.value,
                requested=r.requested[:1024],
                code=r.code.value,
                reason=r.reason[:1024],
            )
            for r in negotiation.refused
        ),
        conversions=tuple(conversions[:32]) or None,
    )


# --- the rules, one function each --------------------------------------------------------------


def _animation(
    support: AvatarSupport,
    ask: Placement | None,
    available: bool,
    refused: list[Refusal],
) -> Placement:
    if support is AvatarSupport.ASSISTED and ask == "ue":
        refused.append(
            Refusal(
                NegotiatedFunction.ANIMATION,
                "ue",
                ErrorCode.CONFLICT,
                "the Contact says +sip.3gpp-avatar-support=avatar-assisted (the UE needs the "
                "network to animate and render, TS 26.264 7.3.2), but the hello asks the UE "
                "to animate",
            )
        )
        ask = None
    if ask is None:
        ask = "network" if support is AvatarSupport.ASSISTED else "ue"
        why = "the UE is avatar-assisted (Contact) and needs network animation and rendering"
    else:
        why = "the hello asks for network animation and rendering"
    if ask == "network" and not available:
        refused.append(
            Refusal(
                NegotiatedFunction.ANIMATION,
                "network",
                ErrorCode.UNSUPPORTED,
                f"{why}; this MF has no animation and rendering stage",
            )
        )
        return "ue"
    return ask


def _base_avatar_generation(
    ask: Placement | None, network: NetworkFunctions, refused: list[Refusal]
) -> Placement:
    if ask != "network":
        return "ue"
    if network.base_avatar_generation:
        return "network"
    refused.append(
        Refusal(
            NegotiatedFunction.BASE_AVATAR_GENERATION,
            "network",
            ErrorCode.UNSUPPORTED,
            "the hello asks the network to build the base avatar; this MF has no base avatar "
            "generation stage",
        )
    )
    return "ue"


def _animation_data(
    hello: Hello, available: frozenset[str], refused: list[Refusal]
) -> tuple[tuple[str, ...], Placement]:
    ask = hello.animation_data
    asked = tuple(dict.fromkeys(hello.animation_inputs))  # without repeats, in the UE's order
    if ask == "ue":
        if asked:
            refused.append(
                Refusal(
                    NegotiatedFunction.ANIMATION_INPUTS,
                    ",".join(asked),
                    ErrorCode.CONFLICT,
                    "the hello asks the UE to create animation data, so the MF takes no "
                    f"animation inputs (asked: {', '.join(asked)})",
                )
            )
        return (), "ue"
    have = ", ".join(sorted(available)) or "none"
    for name in asked:
        if name not in available:
            refused.append(
                Refusal(
                    NegotiatedFunction.ANIMATION_INPUTS,
                    name,
                    ErrorCode.UNSUPPORTED,
                    f"this MF has no stage deriving animation data from {name} (it takes: {have})",
                )
            )
    if asked:
        agreed = tuple(name for name in asked if name in available)
    elif ask == "network":
        agreed = tuple(sorted(available))
    else:
        agreed = ()
    if _VIDEO in agreed and _VOICE in agreed:  # one face source per session: video wins
        agreed = tuple(name for name in agreed if name != _VOICE)
        if _VOICE in asked:
            refused.append(
                Refusal(
                    NegotiatedFunction.ANIMATION_INPUTS,
                    _VOICE,
                    ErrorCode.CONFLICT,
                    "the hello asks for both voice and video; one source drives a session's "
                    "face, and video (the camera tracks face and head) is used",
                )
            )
    if agreed:
        return agreed, "network"
    if ask == "network":
        refused.append(
            Refusal(
                NegotiatedFunction.ANIMATION_DATA,
                "network",
                ErrorCode.UNSUPPORTED,
                "the hello asks the network to create animation data; this MF has no stage "
                f"for {'the inputs asked' if asked else 'any input'} (it takes: {have})",
            )
        )
    return (), "ue"


#: The two animation inputs that drive the same face continuously (video wins).
_VOICE: Final = AnimationInput.VOICE.value
_VIDEO: Final = AnimationInput.VIDEO.value


def _common(
    asked: tuple[str, ...],
    offered: tuple[str, ...],
    function: NegotiatedFunction,
    code: ErrorCode,
    what: str,
    refused: list[Refusal],
) -> tuple[str, ...]:
    if not asked:
        return offered
    common = tuple(dict.fromkeys(name for name in asked if name in offered))
    if not common:
        refused.append(
            Refusal(
                function,
                ",".join(asked),
                code,
                f"no common {what}: the UE lists {', '.join(asked)}; this MF offers "
                f"{', '.join(offered) or 'none'}",
            )
        )
    return common


# --- the common fallback and conversion (TR 26.813 section 4) ----------------------------------


def with_fallback(
    network: NetworkFunctions, profiles: tuple[str, ...] = (), formats: tuple[str, ...] = ()
) -> NetworkFunctions:
    """The MF's offer with the common fallback always in it (first when it converts), and
    what its converters write (``profiles``, ``formats``) after the node's own."""

    def merged(common: str, own: tuple[str, ...], converted: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys((common, *own, *converted)))

    return replace(
        network,
        profiles=merged(COMMON_PROFILE, network.profiles, profiles),
        formats=merged(COMMON_CONTENT_TYPE, network.formats, formats),
    )


def sdp_asks(dcsa: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The animation profiles and avatar formats a UE lists in ``a=dcsa`` attributes
    (:data:`DCSA_PROFILES`, :data:`DCSA_FORMATS`; comma-separated, in the UE's order)."""
    profiles: list[str] = []
    formats: list[str] = []
    for attribute in dcsa:
        name, _, value = attribute.partition(":")
        target = {DCSA_PROFILES: profiles, DCSA_FORMATS: formats}.get(name.strip().lower())
        if target is not None:
            target += [v.strip() for v in value.split(",") if v.strip()]
    return tuple(dict.fromkeys(profiles))[:32], tuple(dict.fromkeys(formats))[:32]


class _HasDcsa(Protocol):
    @property
    def dcsa(self) -> tuple[str, ...]: ...


def with_sdp_asks(hello: Hello, info: object) -> Hello:
    """``hello`` with the SDP's lists where it gives none (the hello wins when it lists
    some). ``info``: the call's channel info; its ``dcsa`` attributes, if it has any."""
    dcsa = getattr(info, "dcsa", ())
    if not dcsa or (hello.animation_profiles and hello.avatar_formats):
        return hello
    profiles, formats = sdp_asks(dcsa)
    return hello.model_copy(
        update={
            "animation_profiles": hello.animation_profiles or profiles,
            "avatar_formats": hello.avatar_formats or formats,
        }
    )


def conversion_notes(notes: Iterable[tuple[str, str, str, str]]) -> tuple[ConversionNote, ...]:
    """Capabilities ``conversions`` entries from (kind, from, to, what is lost)."""
    return tuple(
        ConversionNote(kind=kind, source=source, target=target, loses=loses[:1024])  # type: ignore[arg-type]
        for kind, source, target, loses in notes
    )
