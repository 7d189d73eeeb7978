"""The test UE's SDP: its data channel offer, and what it reads back from the MF's answer.

Pure functions over the SDP model (:mod:`avatar_mf.sdp`) and the media parameters
(:mod:`avatar_mf.media.params`); no sockets.

The offer follows TS 26.114 clause 6.2.10 and RFC 8841/8864/8842/8122:

* optionally first an AMR-WB ``m=audio ... RTP/AVP`` line like a VoLTE UE's (the data channel
  m-line must not come before the first speech m-line); the test UE never sends RTP on it and
  the MF rejects it (port 0);
* ``m=application <port> UDP/DTLS/SCTP webrtc-datachannel`` with ``a=setup``,
  ``a=fingerprint``, ``a=tls-id``, ``a=sctp-port``, ``a=max-message-size``;
* ICE attributes (RFC 8839: ``ice-ufrag``, ``ice-pwd``, every host ``candidate``,
  ``end-of-candidates``) only when the UE runs ICE; an IMS-style UE offers none and runs DTLS
  straight to the ``c=``/``m=`` address;
* one ``a=dcmap`` per requested stream (RFC 8864 section 5.1), and ``a=dcsa`` lines.

Answering an offer (an incoming call, the MF's second leg): :func:`read_offer` finds the data
channel m-line and picks the streams the UE takes, :func:`build_answer` writes the answer with
the UE's parameters, every other m-line refused (port 0).

Reading the answer (RFC 3264 section 6, RFC 8864 section 6): the data channel m-line is at the
offer's index; port 0 means it was refused; the streams the MF accepted are the ``a=dcmap``
lines it repeats, every other offered stream was rejected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from avatar_mf.media.params import LocalParams, RemoteParams
from avatar_mf.media.sdp_params import remote_params
from avatar_mf.protocol.names import SUBPROTOCOL_ANIMATION
from avatar_mf.sdp.datachannel import (
    FORMAT,
    PROTO,
    DataChannelOffer,
    DcMap,
    DcSa,
    format_dcmap,
    format_dcsa,
    parse_datachannel_offer,
)
from avatar_mf.sdp.errors import SdpError
from avatar_mf.sdp.model import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
)

__all__ = [
    "AMR_WB_AUDIO_PORT",
    "ANSWER_STREAMS",
    "DEFAULT_STREAMS",
    "AnswerError",
    "AnswerInfo",
    "OfferInfo",
    "audio_media",
    "build_answer",
    "build_offer",
    "datachannel_index",
    "datachannel_media",
    "read_answer",
    "read_offer",
    "with_partial_reliability",
]

#: The streams a test UE offers by default: the local bootstrap channels 0 and 10 (HTTP,
#: TS 26.114 6.2.10), the avatar metadata and animation channels (TS 26.264, CR 0017).
DEFAULT_STREAMS: Final[tuple[DcMap, ...]] = (
    DcMap(0, subprotocol="http"),
    DcMap(10, subprotocol="http"),
    DcMap(1000, label="avatar-meta", subprotocol="3gpp-ar-metadata"),
    DcMap(1002, label="avatar-anim-1", subprotocol="3gpp-ar-animation"),
)


def with_partial_reliability(
    streams: Sequence[DcMap],
    *,
    max_time: int | None = None,
    max_retr: int | None = None,
    subprotocol: str = SUBPROTOCOL_ANIMATION,
) -> tuple[DcMap, ...]:
    """``streams`` with ``max-time`` (ms) or ``max-retr`` on those carrying ``subprotocol``
    (RFC 8864 5.1.1: at most one of the two; TS 26.264's animation example has
    ``max-time=150``). With neither, the streams come back reliable."""
    if max_time is not None and max_retr is not None:
        raise ValueError("max-time and max-retr are exclusive (RFC 8864 5.1.1)")
    return tuple(
        replace(s, max_time=max_time, max_retr=max_retr) if s.subprotocol == subprotocol else s
        for s in streams
    )


#: The streams a test UE takes from an offer it answers (an incoming call), by subprotocol:
#: its usual ones, and the ``avatar-mf-transfer`` channel its AvatarClient also speaks.
ANSWER_STREAMS: Final[tuple[DcMap, ...]] = (
    *DEFAULT_STREAMS,
    DcMap(1004, label="avatar-transfer", subprotocol="avatar-mf-transfer"),
)

#: The port written in the optional audio m-line (nothing listens there: no RTP is sent).
AMR_WB_AUDIO_PORT: Final = 49170


class AnswerError(ValueError):
    """The MF's answer cannot be used (no data channel m-line, refused, malformed)."""


def _addrtype(address: str) -> str:
    return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"


def audio_media(port: int = AMR_WB_AUDIO_PORT) -> MediaDescription:
    """An AMR-WB speech m-line like a VoLTE UE's (RFC 4867 payload formats)."""
    return MediaDescription(
        media="audio",
        port=port,
        proto="RTP/AVP",
        formats=("97", "98", "100"),
        attrs=(
            Attribute("rtpmap", "97 AMR-WB/16000/1"),
            Attribute("fmtp", "97 mode-change-capability=2;max-red=0"),
            Attribute("rtpmap", "98 AMR-WB/16000/1"),
            Attribute("fmtp", "98 octet-align=1;mode-change-capability=2;max-red=0"),
            Attribute("rtpmap", "100 telephone-event/16000"),
            Attribute("ptime", "20"),
            Attribute("maxptime", "240"),
            Attribute("sendrecv"),
        ),
    )


def datachannel_media(
    local: LocalParams, streams: Sequence[DcMap], dcsas: Sequence[DcSa] = ()
) -> MediaDescription:
    """The ``m=application`` data channel line for ``local`` carrying ``streams``."""
    attrs: list[Attribute] = [Attribute("setup", local.setup)]
    attrs.extend(Attribute("fingerprint", f"{name} {value}") for name, value in local.fingerprints)
    attrs.append(Attribute("tls-id", local.tls_id))
    attrs.append(Attribute("sctp-port", str(local.sctp_port)))
    attrs.append(Attribute("max-message-size", str(local.max_message_size)))
    if local.ice is not None:
        attrs.append(Attribute("ice-ufrag", local.ice.ufrag))
        attrs.append(Attribute("ice-pwd", local.ice.pwd))
        attrs.extend(Attribute("candidate", c) for c in local.ice.candidates)
        attrs.append(Attribute("end-of-candidates"))
    attrs.extend(Attribute("dcmap", format_dcmap(d)) for d in streams)
    attrs.extend(Attribute("dcsa", format_dcsa(s)) for s in dcsas)
    return MediaDescription(
        media="application",
        port=local.port,
        proto=PROTO,
        formats=(FORMAT,),
        connections=(Connection("IN", _addrtype(local.address), local.address),),
        attrs=tuple(attrs),
    )


def build_offer(
    local: LocalParams,
    streams: Sequence[DcMap] = DEFAULT_STREAMS,
    *,
    session_id: int,
    session_version: int,
    audio_port: int | None = None,
    dcsas: Sequence[DcSa] = (),
    username: str = "ue",
    audio: MediaDescription | None = None,
    video: MediaDescription | None = None,
) -> SessionDescription:
    """The UE's offer: an optional audio m-line (``audio``, else an AMR-WB line at
    ``audio_port`` when not None), then the data
    channel m-line built from ``local`` (the UE session's parameters) with ``streams``.

    A re-offer keeps ``session_id``, increments ``session_version`` (RFC 3264 section 8) and
    keeps ``local`` (same tls-id, so the MF keeps the DTLS association, RFC 8842 section 5).
    """
    ids = [d.stream_id for d in streams]
    if len(set(ids)) != len(ids):
        raise ValueError(f"stream ids offered twice: {ids}")
    addrtype = _addrtype(local.address)
    media: list[MediaDescription] = []
    dc_line = datachannel_media(local, streams, dcsas)
    session_attrs: tuple[Attribute, ...] = ()
    bundled = [
        m for m in (audio, video) if m is not None and m.proto.upper().startswith("UDP/TLS/RTP/")
    ]
    if bundled:
        lines, dc_line, session_attrs = _bundle(bundled, dc_line)
        audio = lines[0] if audio is not None and audio in bundled else audio
        video = lines[-1] if video is not None and video in bundled else video
    if audio is not None:
        media.append(audio)
    elif audio_port is not None:
        media.append(audio_media(audio_port))
    if video is not None:
        media.append(video)
    media.append(dc_line)
    return SessionDescription(
        origin=Origin(
            username, str(session_id), str(session_version), "IN", addrtype, local.address
        ),
        session_name="-",
        connection=Connection("IN", addrtype, local.address),
        attrs=session_attrs,
        media=tuple(media),
    )


#: The mid of the test UE's data channel m-line when it BUNDLEs audio with it.
DATACHANNEL_MID = "dc"

_TRANSPORT_ATTRIBUTES = frozenset(
    {"setup", "fingerprint", "ice-ufrag", "ice-pwd", "candidate", "end-of-candidates"}
)


def _bundle(
    lines: Sequence[MediaDescription], dc_line: MediaDescription
) -> tuple[list[MediaDescription], MediaDescription, tuple[Attribute, ...]]:
    """WebRTC audio/video m-lines BUNDLEd with the data channel m-line (RFC 8843 section 7.2,
    as JSEP offers do): each gets the data channel's port, ``c=`` and transport attributes,
    the data channel m-line a mid, the session ``a=group:BUNDLE`` (their mids in m-line
    order, the data channel last)."""
    transport = tuple(a for a in dc_line.attrs if a.name in _TRANSPORT_ATTRIBUTES)
    out = [
        replace(
            line,
            port=dc_line.port,
            connections=dc_line.connections,
            attrs=(*line.attrs, *transport),
        )
        for line in lines
    ]
    mids = [line.attribute_value("mid") or line.media for line in lines]
    dc_line = replace(dc_line, attrs=(Attribute("mid", DATACHANNEL_MID), *dc_line.attrs))
    group = Attribute("group", "BUNDLE " + " ".join([*mids, DATACHANNEL_MID]))
    return out, dc_line, (group,)


def datachannel_index(offer: SessionDescription) -> int:
    """The index of the (first) data channel m-line of ``offer``."""
    for index, md in enumerate(offer.media):
        if md.media.lower() == "application" and md.proto.upper() == PROTO:
            return index
    raise ValueError("the offer has no data channel m-line")


@dataclass(frozen=True, slots=True)
class AnswerInfo:
    """What the UE learns from the MF's answer.

    Attributes:
        remote: the MF's transport parameters, for ``DataChannelSession.set_remote``.
        accepted: the accepted streams, as the answer's ``a=dcmap`` lines state them.
        rejected: offered streams the answer left out (RFC 8864 section 6).
        datachannel: the answer's data channel m-line, parsed.
    """

    remote: RemoteParams
    accepted: tuple[DcMap, ...]
    rejected: tuple[DcMap, ...]
    datachannel: DataChannelOffer


def read_answer(
    offer: SessionDescription, answer: SessionDescription, offered: Sequence[DcMap]
) -> AnswerInfo:
    """Check ``answer`` against ``offer`` and extract the data channel parameters.

    Raises :class:`AnswerError` when the answer is unusable: fewer m-lines than the offer, the
    data channel line refused (port 0) or malformed, ``a=setup:actpass`` or ``holdconn``, a
    stream the UE did not offer.
    """
    index = datachannel_index(offer)
    if len(answer.media) != len(offer.media):
        raise AnswerError(
            f"the answer has {len(answer.media)} m-lines, the offer {len(offer.media)} "
            "(RFC 3264 section 6)"
        )
    md = answer.media[index]
    if md.port == 0:
        raise AnswerError("the MF refused the data channel m-line (port 0)")
    try:
        dc = parse_datachannel_offer(answer, index)
    except SdpError as exc:
        raise AnswerError(f"bad data channel m-line in the answer: {exc}") from exc
    if dc.setup not in ("active", "passive"):
        raise AnswerError(f"a=setup:{dc.setup} in an answer (RFC 4145 section 4.1)")
    offered_ids = {d.stream_id: d for d in offered}
    unknown = [d.stream_id for d in dc.dcmaps if d.stream_id not in offered_ids]
    if unknown:
        raise AnswerError(f"the answer accepts streams that were not offered: {unknown}")
    accepted_ids = {d.stream_id for d in dc.dcmaps}
    try:
        remote = remote_params(dc)
    except ValueError as exc:  # MediaParamsError: an unusable address, port or fingerprint
        raise AnswerError(f"unusable data channel parameters in the answer: {exc}") from exc
    return AnswerInfo(
        remote=remote,
        accepted=dc.dcmaps,
        rejected=tuple(d for d in offered if d.stream_id not in accepted_ids),
        datachannel=dc,
    )


# --------------------------------------------------------------------------- answering an offer


@dataclass(frozen=True, slots=True)
class OfferInfo:
    """What the UE reads from an offer it received (an incoming call: the MF's second leg).

    Attributes:
        index: the data channel m-line's index in the offer.
        remote: the offerer's transport parameters (for the UE's answering session).
        offered: every stream the offer maps.
        accepted: those the UE takes (see :func:`read_offer`).
        datachannel: the data channel m-line, parsed.
    """

    index: int
    remote: RemoteParams
    offered: tuple[DcMap, ...]
    accepted: tuple[DcMap, ...]
    datachannel: DataChannelOffer


def read_offer(offer: SessionDescription, wanted: Sequence[DcMap] | None = None) -> OfferInfo:
    """Find the data channel m-line of ``offer`` (RFC 8841) and decide what to accept.

    ``wanted`` None accepts every offered stream; otherwise the offered streams whose
    subprotocol is among ``wanted``'s (the UE's usual streams, :data:`ANSWER_STREAMS`: http,
    3gpp-ar-metadata, 3gpp-ar-animation, avatar-mf-transfer), as the offer maps them (RFC
    8864 section 6: the answerer repeats the dcmap lines it accepts). Raises
    :class:`AnswerError` when the offer has no usable data channel m-line.
    """
    try:
        index = datachannel_index(offer)
    except ValueError as exc:
        raise AnswerError(str(exc)) from None
    if offer.media[index].port == 0:
        raise AnswerError("the offered data channel m-line is disabled (port 0)")
    try:
        dc = parse_datachannel_offer(offer, index)
        remote = remote_params(dc)
    except (SdpError, ValueError) as exc:
        raise AnswerError(f"unusable data channel m-line in the offer: {exc}") from exc
    if wanted is None:
        accepted = dc.dcmaps
    else:
        kinds = {(d.subprotocol or "").lower() for d in wanted}
        accepted = tuple(d for d in dc.dcmaps if (d.subprotocol or "").lower() in kinds)
    return OfferInfo(index, remote, dc.dcmaps, accepted, dc)


def build_answer(
    offer: SessionDescription,
    info: OfferInfo,
    local: LocalParams,
    *,
    session_id: int,
    username: str = "ue",
    audio: Mapping[int, MediaDescription] | None = None,
) -> SessionDescription:
    """The UE's answer to ``offer`` (RFC 3264 section 6): one m-line per offered m-line, in
    order; the data channel line carries ``local`` (its ``a=setup`` active or passive, RFC 8842
    section 5.3) and the accepted dcmap lines; ``audio`` gives the answer's audio m-lines by
    index; every other m-line is refused with port 0."""
    addrtype = _addrtype(local.address)
    media: list[MediaDescription] = []
    for index, md in enumerate(offer.media):
        if index == info.index:
            media.append(datachannel_media(local, info.accepted))
        elif audio is not None and index in audio:
            media.append(audio[index])
        else:
            media.append(MediaDescription(md.media, 0, md.proto, md.formats[:1]))
    return SessionDescription(
        origin=Origin(username, str(session_id), "1", "IN", addrtype, local.address),
        session_name="-",
        connection=Connection("IN", addrtype, local.address),
        media=tuple(media),
    )
