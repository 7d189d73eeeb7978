"""SDP for IMS-style video m-lines: ``RTP/AVP`` and ``RTP/AVPF`` with no ICE (pure).

What an IMS UE offers for video (TS 26.114 clause 6.2.3: H.264 Constrained Baseline, RTP/AVPF
with ``nack``, ``nack pli``, ``ccm fir``) is plain RTP to the address in ``c=``/``m=``, as for
audio (:mod:`avatar_mf.sdp.audio`, whose helpers this module shares). :func:`plan_video`
decides the answer to one video m-line from the offer; :func:`render_video_line` writes it
once the call layer has bound a port. The codec knowledge is injected
(:class:`VideoCapabilities`: the calls layer joins the codec registry with the H.264 answer
rules of :mod:`avatar_mf.rtp.h264`).

Rules applied (RFC clauses):

* RFC 3264 section 6.1: the answer lists one video format, with the offer's payload type: the
  first of the MF's preference order (H.264, then VP8) that the offer lists and the MF can
  serve; among several offered H.264 formats, the first in offer order that it can serve.
* RFC 6184 section 8.2.2 (H.264): the answer's fmtp comes from the capabilities (profile and
  ``packetization-mode`` echoed, the level no higher than offered); an H.264 format the MF
  cannot serve (packetization-mode 2, a 10-bit or 4:2:2 profile) is skipped.
* RFC 7741 section 6 (VP8): no fmtp is needed; ``max-fr`` and ``max-fs`` are receiver limits
  the MF does not state.
* RFC 4585 section 4.2, RFC 5104 section 7.1: with ``RTP/AVPF`` the answer repeats the
  ``a=rtcp-fb`` values the MF supports (``nack``, ``nack pli``, ``ccm fir``) that the offer
  lists for the chosen payload type or for ``*``; with ``RTP/AVP`` none (rtcp-fb is an AVPF
  attribute).
* RFC 5761 (rtcp-mux), direction, c= handling and re-offers as for audio.
* An m-line with nothing usable gets port 0; the call goes on with its other streams.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from avatar_mf.sdp.audio import (
    _ANSWER_DIRECTION,
    AUDIO_PROTOS,
    Direction,
    OfferedFormat,
    _direction,
    _rtcp_port,
    _usable_address,
    format_fmtp,
    offered_formats,
)
from avatar_mf.sdp.model import Attribute, Connection, MediaDescription, SessionDescription

#: The profiles answered (the same as audio: plain RTP, no ICE).
VIDEO_PROTOS: Final = AUDIO_PROTOS
#: The feedback messages the MF understands (RFC 4585 6.2.1 NACK, 6.3.1 PLI; RFC 5104 3.5.1
#: FIR), as ``a=rtcp-fb`` values.
SUPPORTED_FEEDBACK: Final = ("nack", "nack pli", "ccm fir")


class VideoCapabilities(Protocol):
    """What the codec layer can serve for video (injected)."""

    def preference(self) -> Sequence[str]:
        """Encoding names of the video codecs the MF serves, best first (``H264``, ``VP8``)."""
        ...

    def answer_fmtp(
        self, name: str, clock_rate: int, fmtp: Mapping[str, str]
    ) -> Mapping[str, str] | None:
        """The fmtp the MF answers this offered format with, or None when it cannot."""
        ...


@dataclass(frozen=True, slots=True)
class VideoPlan:
    """The accepted video m-line: what the call layer executes (fields as :class:`AudioPlan`);
    ``feedback`` lists the ``a=rtcp-fb`` values answered (empty with RTP/AVP)."""

    index: int
    mid: str | None
    proto: str
    codec: OfferedFormat
    answer_fmtp: tuple[tuple[str, str], ...]
    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    rtcp_mux: bool
    direction: Direction
    feedback: tuple[str, ...] = ()
    #: BUNDLEd with the data channel (WebRTC, :mod:`avatar_mf.sdp.webrtc_video`): SRTP on
    #: the data channel's DTLS transport, no port of its own.
    bundled: bool = False

    @property
    def sends(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")

    @property
    def payload_types(self) -> frozenset[int]:
        return frozenset({self.codec.payload_type})

    @property
    def fmtp(self) -> dict[str, str]:
        """The negotiated parameters (the answer's, which the MF's decoder honours)."""
        return dict(self.answer_fmtp)


@dataclass(frozen=True, slots=True)
class VideoRejection:
    """Why a video m-line is answered with port 0."""

    index: int
    reason: str


def offered_feedback(md: MediaDescription, payload_type: int) -> tuple[str, ...]:
    """The ``a=rtcp-fb`` values of ``md`` that apply to ``payload_type`` (or ``*``),
    normalised (lower case, single spaces), in offer order."""
    out: list[str] = []
    for attr in md.attributes("rtcp-fb"):
        pt, _, value = (attr.value or "").strip().partition(" ")
        if pt != "*" and pt != str(payload_type):
            continue
        normal = " ".join(value.lower().split())
        if normal and normal not in out:
            out.append(normal)
    return tuple(out)


def choose_video_codec(
    formats: Sequence[OfferedFormat],
    caps: VideoCapabilities,
    previous_codec: str | None = None,
) -> tuple[OfferedFormat, Mapping[str, str]] | None:
    """The format answered among ``formats`` and its answer fmtp (RFC 3264 6.1: the MF's
    preference order, ``previous_codec`` first; within a codec, offer order), or None."""
    order = list(caps.preference())
    if previous_codec is not None:
        order.insert(0, previous_codec)
    for name in order:
        for fmt in formats:
            if fmt.name.upper() != name.upper():
                continue
            answer = caps.answer_fmtp(fmt.name, fmt.clock_rate, fmt.params)
            if answer is not None:
                return fmt, answer
    return None


def plan_video(
    offer: SessionDescription,
    index: int,
    caps: VideoCapabilities,
    *,
    previous_codec: str | None = None,
) -> VideoPlan | VideoRejection:
    """The answer to the video m-line ``index`` of ``offer`` (see the module docstring).

    ``previous_codec`` is the encoding name the previous answer chose: a re-offer that still
    lists it keeps it."""
    md = offer.media[index]
    if md.port == 0:
        return VideoRejection(index, "disabled by the offer (port 0)")
    if md.proto.upper() not in VIDEO_PROTOS:
        return VideoRejection(
            index, f"video profile {md.proto} is not served yet (only RTP/AVP, RTP/AVPF)"
        )
    if md.has_attribute("ice-ufrag") or md.has_attribute("candidate"):
        return VideoRejection(index, "video with ICE is not served yet")
    address = _usable_address(offer.connection_for(index))
    if address is None:
        return VideoRejection(index, "no usable unicast IP address in c=")
    formats = offered_formats(md)
    chosen = choose_video_codec(formats, caps, previous_codec)
    if chosen is None:
        listed = ", ".join(f"{f.name}/{f.clock_rate}" for f in formats) or "none"
        return VideoRejection(index, f"no video codec the MF can serve (offered: {listed})")
    codec, answer_fmtp = chosen
    feedback: tuple[str, ...] = ()
    if md.proto.upper() == "RTP/AVPF":
        offered = offered_feedback(md, codec.payload_type)
        feedback = tuple(f for f in SUPPORTED_FEEDBACK if f in offered)
    rtcp_mux = md.has_attribute("rtcp-mux")
    return VideoPlan(
        index=index,
        mid=md.attribute_value("mid"),
        proto=md.proto,
        codec=codec,
        answer_fmtp=tuple(answer_fmtp.items()),
        remote_address=address,
        remote_port=md.port,
        remote_rtcp_port=md.port if rtcp_mux else _rtcp_port(md),
        rtcp_mux=rtcp_mux,
        direction=_ANSWER_DIRECTION[_direction(offer, md)],
        feedback=feedback,
    )


def previous_video_codec(answer: SessionDescription, index: int) -> str | None:
    """The video codec an earlier answer accepted on m-line ``index`` (for re-offers)."""
    if index >= len(answer.media):
        return None
    md = answer.media[index]
    if md.port == 0 or md.media.lower() != "video":
        return None
    formats = offered_formats(md)
    return formats[0].name if formats else None


def render_video_line(
    plan: VideoPlan, *, port: int, address: str | None = None, addrtype: str = "IP4"
) -> MediaDescription:
    """The answer's m-line for ``plan`` with the MF's RTP ``port`` (and a media-level ``c=``
    when ``address`` is given)."""
    if not 0 < port <= 65535:
        raise ValueError(f"bad RTP port {port}")
    codec = plan.codec
    pt = codec.payload_type
    attrs: list[Attribute] = []
    if plan.mid is not None:
        attrs.append(Attribute("mid", plan.mid))
    attrs.append(Attribute("rtpmap", f"{pt} {codec.name}/{codec.clock_rate}"))
    if plan.answer_fmtp:
        attrs.append(Attribute("fmtp", f"{pt} {format_fmtp(plan.answer_fmtp)}"))
    attrs.extend(Attribute("rtcp-fb", f"{pt} {value}") for value in plan.feedback)
    if plan.rtcp_mux:
        attrs.append(Attribute("rtcp-mux"))
    attrs.append(Attribute(plan.direction))
    return MediaDescription(
        media="video",
        port=port,
        proto=plan.proto,
        formats=(str(pt),),
        connections=(Connection("IN", addrtype, address),) if address is not None else (),
        attrs=tuple(attrs),
    )
