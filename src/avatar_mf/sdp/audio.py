"""SDP for IMS-style audio m-lines: ``RTP/AVP`` and ``RTP/AVPF`` with no ICE (pure).

What an IMS UE offers for speech (TS 26.114 clause 6.2, 3GPP "VoLTE" SDP) is plain RTP to
the address in ``c=``/``m=``: no ICE, no DTLS-SRTP, RTCP on the next port or multiplexed.
:func:`plan_audio` decides the answer to one such m-line from the offer alone (and, for a
re-offer, what the previous answer chose); :func:`render_audio_line` writes it once the call
layer has bound a real port. The codec knowledge is injected (:class:`AudioCapabilities`),
so this module stays a pure function of its inputs.

Rules applied (RFC clauses):

* RFC 3264 section 6.1: the answer lists, from the offer's formats, those the MF will
  receive, with the offer's payload type numbers; the MF lists exactly one speech codec (the
  first of its own preference order that the offer lists and the codec registry can serve)
  plus ``telephone-event`` at the same clock rate when offered (RFC 4733 section 7.1.1).
  Direction: ``sendonly`` is answered ``recvonly``, ``recvonly`` ``sendonly``, ``inactive``
  ``inactive``, ``sendrecv`` (or none) ``sendrecv``.
* RFC 3551 section 6: static payload types 0 (PCMU/8000) and 8 (PCMA/8000) need no
  ``a=rtpmap``; dynamic ones (96-127) without an ``a=rtpmap`` are unusable and skipped.
* RFC 4867 section 8.3 (AMR, AMR-WB): the answer's fmtp comes from the codec
  (:meth:`AudioCapabilities.answer_fmtp`: octet-align must match, mode-set honoured); a
  payload type whose parameters the MF cannot meet is skipped, never accepted silently.
* RFC 5761 section 5.1.1: ``a=rtcp-mux`` is answered only when offered; then RTCP shares the
  RTP port. Otherwise RTCP goes to the offer's ``a=rtcp`` port (RFC 3605) or RTP port + 1.
* RFC 3264 section 8.3.1: a re-offer keeps the codec chosen before when it still lists it
  (the call layer keeps the port).
* An m-line with nothing usable (no servable codec, a secure or ICE profile, a multicast or
  unspecified address) is answered with port 0 and the call goes on with its other streams.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from avatar_mf.sdp.addresses import ip_literal
from avatar_mf.sdp.model import Attribute, Connection, MediaDescription, SessionDescription

#: The profiles answered here (RFC 3551, RFC 4585); secure and ICE profiles are not (yet).
AUDIO_PROTOS: Final = frozenset({"RTP/AVP", "RTP/AVPF"})
#: RFC 3551 table 4: static payload types the MF can understand without an rtpmap.
STATIC_PAYLOAD_TYPES: Final[Mapping[int, tuple[str, int]]] = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
#: The packet time the MF sends (one 20 ms speech frame per packet).
PTIME_MS: Final = 20

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_ANSWER_DIRECTION: Final[Mapping[str, Direction]] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


class AudioCapabilities(Protocol):
    """What the codec layer can serve (injected: ``media.audio_caps`` adapts the registry)."""

    def preference(self) -> Sequence[tuple[str, int]]:
        """(encoding name, clock rate) of the speech codecs the MF can serve, best first."""
        ...

    def answer_fmtp(
        self, name: str, clock_rate: int, fmtp: Mapping[str, str]
    ) -> Mapping[str, str] | None:
        """The fmtp the MF answers for this offered format, or None when it cannot serve it."""
        ...


@dataclass(frozen=True, slots=True)
class OfferedFormat:
    """One payload type of an m-line: its rtpmap and fmtp (parameters as offered)."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: tuple[tuple[str, str], ...] = ()

    @property
    def params(self) -> dict[str, str]:
        return dict(self.fmtp)

    def same_codec(self, name: str, clock_rate: int) -> bool:
        return self.name.upper() == name.upper() and self.clock_rate == clock_rate


@dataclass(frozen=True, slots=True)
class AudioPlan:
    """The accepted audio m-line: what the call layer executes.

    ``codec`` is the chosen speech format (offer's payload type), ``answer_fmtp`` the
    parameters the MF answers for it; ``telephone_event`` the offered RFC 4733 format at the
    same clock rate, if any. ``remote_*`` is where to send RTP and RTCP until symmetric RTP
    latches. ``direction`` is the MF's (the answer's) direction.
    """

    index: int
    mid: str | None
    proto: str
    codec: OfferedFormat
    answer_fmtp: tuple[tuple[str, str], ...]
    telephone_event: OfferedFormat | None
    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    rtcp_mux: bool
    direction: Direction
    ptime: int | None = None
    #: WebRTC style (``sdp.webrtc_audio``): SRTP over the data channel's DTLS transport
    #: (RFC 8843 BUNDLE), no socket of its own; ``remote_*`` are then not used.
    bundled: bool = False

    @property
    def sends(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")

    @property
    def payload_types(self) -> frozenset[int]:
        types = {self.codec.payload_type}
        if self.telephone_event is not None:
            types.add(self.telephone_event.payload_type)
        return frozenset(types)


@dataclass(frozen=True, slots=True)
class AudioRejection:
    """Why an audio m-line is answered with port 0."""

    index: int
    reason: str


def _split_fmtp(value: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        out.append((key.strip().lower(), val.strip() if eq else ""))
    return tuple(out)


def offered_formats(md: MediaDescription) -> list[OfferedFormat]:
    """The payload types of ``md`` in offer order, with their rtpmap and fmtp; formats that
    are not numbers or have no rtpmap (dynamic) are left out."""
    rtpmaps: dict[int, tuple[str, int, int]] = {}
    for attr in md.attributes("rtpmap"):
        pt_text, _, encoding = (attr.value or "").partition(" ")
        if not pt_text.isdigit():
            continue
        parts = encoding.strip().split("/")
        if len(parts) < 2 or not parts[0] or not parts[1].isdigit():
            continue
        channels = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
        rtpmaps.setdefault(int(pt_text), (parts[0], int(parts[1]), channels))
    fmtps: dict[int, tuple[tuple[str, str], ...]] = {}
    for attr in md.attributes("fmtp"):
        pt_text, _, params = (attr.value or "").partition(" ")
        if pt_text.isdigit():
            fmtps.setdefault(int(pt_text), _split_fmtp(params))
    out: list[OfferedFormat] = []
    for fmt in md.formats:
        if not fmt.isdigit() or int(fmt) > 127:
            continue
        pt = int(fmt)
        if pt in rtpmaps:
            name, rate, channels = rtpmaps[pt]
        elif pt in STATIC_PAYLOAD_TYPES:
            name, rate = STATIC_PAYLOAD_TYPES[pt]
            channels = 1
        else:
            continue
        out.append(OfferedFormat(pt, name, rate, channels, fmtps.get(pt, ())))
    return out


def _direction(offer: SessionDescription, md: MediaDescription) -> str:
    for holder in (md, offer):
        for name in ("sendrecv", "sendonly", "recvonly", "inactive"):
            if holder.has_attribute(name):
                return name
    return "sendrecv"


def answer_direction(offer: SessionDescription, md: MediaDescription) -> Direction:
    """The answer's direction for ``md`` (RFC 3264 6.1: sendonly -> recvonly ...)."""
    return _ANSWER_DIRECTION[_direction(offer, md)]


def _usable_address(conn: Connection | None) -> str | None:
    if conn is None or conn.nettype.upper() != "IN":
        return None
    ip = ip_literal(conn.address.split("/")[0])
    if ip is None:
        return None  # a name: the MF never resolves SDP addresses
    if ip.is_multicast:
        return None
    return str(ip)


def _rtcp_port(md: MediaDescription) -> int:
    value = md.attribute_value("rtcp")
    if value:
        first = value.split()[0]
        if first.isdigit() and 0 < int(first) <= 65535:
            return int(first)
    return md.port + 1


def plan_audio(
    offer: SessionDescription,
    index: int,
    caps: AudioCapabilities,
    *,
    previous_codec: tuple[str, int] | None = None,
) -> AudioPlan | AudioRejection:
    """The answer to the audio m-line ``index`` of ``offer`` (see the module docstring).

    ``previous_codec`` (name, clock rate) is what the previous answer chose for this m-line:
    a re-offer that still lists it keeps it.
    """
    md = offer.media[index]
    if md.port == 0:
        return AudioRejection(index, "disabled by the offer (port 0)")
    proto = md.proto.upper()
    if proto not in AUDIO_PROTOS:
        return AudioRejection(
            index, f"audio profile {md.proto} is not served yet (only RTP/AVP, RTP/AVPF)"
        )
    if md.has_attribute("ice-ufrag") or md.has_attribute("candidate"):
        return AudioRejection(index, "audio with ICE is not served yet")
    conn = offer.connection_for(index)
    address = _usable_address(conn)
    if address is None:
        return AudioRejection(index, "no usable unicast IP address in c=")
    formats = offered_formats(md)
    speech = [f for f in formats if f.name.lower() != "telephone-event"]
    order = list(caps.preference())
    if previous_codec is not None:
        order.insert(0, previous_codec)
    chosen: tuple[OfferedFormat, Mapping[str, str]] | None = None
    for name, rate in order:
        for fmt in speech:
            if not fmt.same_codec(name, rate) or fmt.channels != 1:
                continue
            answer = caps.answer_fmtp(fmt.name, fmt.clock_rate, fmt.params)
            if answer is not None:
                chosen = (fmt, answer)
                break
        if chosen is not None:
            break
    if chosen is None:
        listed = ", ".join(f"{f.name}/{f.clock_rate}" for f in speech) or "none"
        return AudioRejection(index, f"no audio codec the MF can serve (offered: {listed})")
    codec, answer_fmtp = chosen
    event = next(
        (
            f
            for f in formats
            if f.name.lower() == "telephone-event" and f.clock_rate == codec.clock_rate
        ),
        None,
    )
    ptime_text = md.attribute_value("ptime")
    ptime = int(ptime_text) if ptime_text and ptime_text.strip().isdigit() else None
    rtcp_mux = md.has_attribute("rtcp-mux")
    return AudioPlan(
        index=index,
        mid=md.attribute_value("mid"),
        proto=md.proto,
        codec=codec,
        answer_fmtp=tuple(answer_fmtp.items()),
        telephone_event=event,
        remote_address=address,
        remote_port=md.port,
        remote_rtcp_port=md.port if rtcp_mux else _rtcp_port(md),
        rtcp_mux=rtcp_mux,
        direction=answer_direction(offer, md),
        ptime=ptime,
    )


def previous_codec(answer: SessionDescription, index: int) -> tuple[str, int] | None:
    """The speech codec an earlier answer accepted on m-line ``index`` (for re-offers)."""
    if index >= len(answer.media):
        return None
    md = answer.media[index]
    if md.port == 0 or md.media.lower() != "audio":
        return None
    for fmt in offered_formats(md):
        if fmt.name.lower() != "telephone-event":
            return fmt.name, fmt.clock_rate
    return None


def format_fmtp(params: Sequence[tuple[str, str]]) -> str:
    return ";".join(f"{k}={v}" if v != "" else k for k, v in params)


def render_audio_line(
    plan: AudioPlan, *, port: int, address: str | None = None, addrtype: str = "IP4"
) -> MediaDescription:
    """The answer's m-line for ``plan`` with the MF's RTP ``port`` (and a media-level ``c=``
    when ``address`` is given, the advertised media address)."""
    if not 0 < port <= 65535:
        raise ValueError(f"bad RTP port {port}")
    codec = plan.codec
    formats = [str(codec.payload_type)]
    attrs: list[Attribute] = []
    if plan.mid is not None:
        attrs.append(Attribute("mid", plan.mid))
    encoding = f"{codec.name}/{codec.clock_rate}"
    if codec.channels != 1:
        encoding += f"/{codec.channels}"
    attrs.append(Attribute("rtpmap", f"{codec.payload_type} {encoding}"))
    if plan.answer_fmtp:
        attrs.append(Attribute("fmtp", f"{codec.payload_type} {format_fmtp(plan.answer_fmtp)}"))
    event = plan.telephone_event
    if event is not None:
        formats.append(str(event.payload_type))
        attrs.append(
            Attribute("rtpmap", f"{event.payload_type} telephone-event/{event.clock_rate}")
        )
        attrs.append(Attribute("fmtp", f"{event.payload_type} 0-15"))
    attrs.append(Attribute("ptime", str(PTIME_MS)))
    if plan.rtcp_mux:
        attrs.append(Attribute("rtcp-mux"))
    attrs.append(Attribute(plan.direction))
    return MediaDescription(
        media="audio",
        port=port,
        proto=plan.proto,
        formats=tuple(formats),
        connections=(
            (Connection("IN", addrtype, address),)
            if address is not None and not plan.bundled
            else ()
        ),
        attrs=tuple(attrs),
    )
