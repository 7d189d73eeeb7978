"""SDP for WebRTC-style audio m-lines: ``UDP/TLS/RTP/SAVPF`` BUNDLEd with the data channel.

What a browser (or aiortc) offers for speech beside a data channel (RFC 8829 JSEP section 5.2):
``m=audio 9 UDP/TLS/RTP/SAVPF 111 ...`` with ICE, ``a=fingerprint``, ``a=setup``, ``a=mid``,
``a=rtcp-mux`` and a session-level ``a=group:BUNDLE`` naming it together with the data
channel's mid. :func:`plan_webrtc_audio` decides the answer to one such m-line (pure); the
MF runs the audio on the data channel's one transport (ICE + DTLS), SRTP keyed by that DTLS
handshake (RFC 5764), demultiplexed from DTLS and STUN by the first byte (RFC 7983).

Rules applied (RFC clauses; the transport checks, port 0 / ``a=bundle-only``, the DTLS-SRTP
profile, the BUNDLE group and ``a=rtcp-mux``, are those every WebRTC m-line passes:
:func:`avatar_mf.sdp.bundle.bundle_refusal`):

* RFC 8843 section 7.3: the audio m-line is served only when it is in the same BUNDLE group
  as the accepted data channel m-line; the answer's group lists the accepted mids in the
  offer's order (the offerer BUNDLE-tag, its first mid, stays the tag: Chromium puts audio
  first). The audio m-line repeats the BUNDLE address (port) and the transport attributes
  (ICE, fingerprint, setup), as JSEP implementations write every bundled m-section (RFC 8829
  5.3.1; Chromium takes the transport from the tag's m-section). An offered
  ``a=bundle-only`` m-line (port 0) is accepted the same way.
* WebRTC audio on a transport of its own (not bundled with the data channel, or no data
  channel accepted) is not served: port 0 (one transport per call is all the MF runs).
* RFC 8858 / RFC 8843 section 9: ``a=rtcp-mux`` is required (RTP and RTCP share the BUNDLE
  transport); an offer without it gets port 0.
* RFC 7587 section 7: Opus (``opus/48000/2``) is chosen when offered, with the codec's
  answer fmtp (mono, 16 kHz capture: :mod:`avatar_mf.codecs.opus`); otherwise PCMU or PCMA
  (RFC 3551) in the operator's order; ``telephone-event`` at the codec's clock rate when
  offered (RFC 4733). Nothing usable: port 0, the call goes on with its other m-lines.
* RFC 3264 section 6.1 for direction, and 8.3.1: a re-offer keeps the codec chosen before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from avatar_mf.sdp.audio import (
    AudioCapabilities,
    AudioPlan,
    AudioRejection,
    OfferedFormat,
    answer_direction,
    offered_formats,
)
from avatar_mf.sdp.bundle import DTLS_SRTP_PROTOS, bundle_refusal, is_dtls_srtp
from avatar_mf.sdp.bundle import bundle_group as bundle_group  # re-exported (its old home)
from avatar_mf.sdp.model import SessionDescription

#: The secure profiles a browser offers for RTP (RFC 5764 section 8, RFC 5124).
WEBRTC_AUDIO_PROTOS: Final = DTLS_SRTP_PROTOS
#: The codecs answered on a WebRTC audio m-line, best first (Opus, then G.711).
WEBRTC_CODECS: Final = ("OPUS", "PCMU", "PCMA")


def is_webrtc_audio(proto: str) -> bool:
    """Whether ``proto`` is one of the DTLS-SRTP profiles planned here."""
    return is_dtls_srtp(proto)


def _choose(
    formats: list[OfferedFormat],
    caps: AudioCapabilities,
    previous_codec: tuple[str, int] | None,
) -> tuple[OfferedFormat, Mapping[str, str]] | None:
    served = [(n, r) for n, r in caps.preference() if n.upper() in WEBRTC_CODECS]
    served.sort(key=lambda item: WEBRTC_CODECS.index(item[0].upper()))
    if previous_codec is not None:
        served.insert(0, previous_codec)
    for name, rate in served:
        for fmt in formats:
            if not fmt.same_codec(name, rate):
                continue
            # RFC 7587 section 7: Opus is always opus/48000/2; other speech codecs are mono.
            if fmt.channels != (2 if fmt.name.upper() == "OPUS" else 1):
                continue
            answer = caps.answer_fmtp(fmt.name, fmt.clock_rate, fmt.params)
            if answer is not None:
                return fmt, answer
    return None


def plan_webrtc_audio(
    offer: SessionDescription,
    index: int,
    caps: AudioCapabilities,
    *,
    datachannel_mid: str | None,
    previous_codec: tuple[str, int] | None = None,
) -> AudioPlan | AudioRejection:
    """The answer to the WebRTC audio m-line ``index`` (see the module docstring).

    ``datachannel_mid`` is the mid of the accepted data channel m-line (None: no data channel
    accepted, or it has no mid): the audio is served only when BUNDLEd with it.
    """
    refusal = bundle_refusal(offer, index, "audio", datachannel_mid)
    if refusal is not None:
        return AudioRejection(index, refusal)
    md = offer.media[index]
    mid = md.attribute_value("mid")
    formats = offered_formats(md)
    speech = [f for f in formats if f.name.lower() != "telephone-event"]
    chosen = _choose(speech, caps, previous_codec)
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
    conn = offer.connection_for(index)
    return AudioPlan(
        index=index,
        mid=mid,
        proto=md.proto,
        codec=codec,
        answer_fmtp=tuple(answer_fmtp.items()),
        telephone_event=event,
        remote_address=conn.address if conn is not None else "0.0.0.0",
        remote_port=md.port,
        remote_rtcp_port=md.port,
        rtcp_mux=True,
        direction=answer_direction(offer, md),
        ptime=int(ptime_text) if ptime_text and ptime_text.strip().isdigit() else None,
        bundled=True,
    )
