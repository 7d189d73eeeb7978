"""SDP for WebRTC media m-lines BUNDLEd with the data channel: the checks every kind shares.

The MF serves a browser's audio (:mod:`avatar_mf.sdp.webrtc_audio`) and video
(:mod:`avatar_mf.sdp.webrtc_video`) only on the data channel's one ICE + DTLS transport, so an
m-line of either kind must pass the same checks before its codec is chosen
(:func:`bundle_refusal`):

* RFC 3264 section 6: port 0 disables the m-line, unless it is offered ``a=bundle-only``
  (RFC 8843 section 6), which a BUNDLEd m-line may be.
* RFC 5764 section 8, RFC 5124: its profile is a DTLS-SRTP one (``UDP/TLS/RTP/SAVPF``,
  ``UDP/TLS/RTP/SAVP``).
* RFC 8843 section 7.3: it has a mid in the same ``a=group:BUNDLE`` as the accepted data channel
  m-line (:func:`bundle_group`); WebRTC media on a transport of its own is not served.
* RFC 8858 / RFC 8843 section 9: ``a=rtcp-mux`` is required (RTP and RTCP share the BUNDLE
  transport).
"""

from __future__ import annotations

from typing import Final

from avatar_mf.sdp.model import SessionDescription

#: The secure profiles a browser offers for RTP (RFC 5764 section 8, RFC 5124).
DTLS_SRTP_PROTOS: Final = frozenset({"UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP"})


def is_dtls_srtp(proto: str) -> bool:
    """Whether ``proto`` is one of the DTLS-SRTP profiles the MF serves bundled."""
    return proto.upper() in DTLS_SRTP_PROTOS


def bundle_group(offer: SessionDescription, mid: str | None) -> tuple[str, ...] | None:
    """Every mid of the offer's ``a=group:BUNDLE`` that contains ``mid`` (RFC 8843 section
    7.1), in the offer's order; None when ``mid`` is in no BUNDLE group."""
    if mid is None:
        return None
    for attr in offer.attributes("group"):
        fields = (attr.value or "").split()
        if len(fields) > 1 and fields[0].upper() == "BUNDLE" and mid in fields[1:]:
            return tuple(fields[1:])
    return None


def bundle_refusal(
    offer: SessionDescription, index: int, kind: str, datachannel_mid: str | None
) -> str | None:
    """Why the WebRTC ``kind`` ("audio", "video") m-line ``index`` cannot run BUNDLEd with the
    data channel whose accepted m-line has ``datachannel_mid`` (None: no data channel
    accepted), the reason its answer gives with port 0; None when it can."""
    md = offer.media[index]
    if md.port == 0 and not md.has_attribute("bundle-only"):
        return "disabled by the offer (port 0)"
    if not is_dtls_srtp(md.proto):
        return f"{kind} profile {md.proto} is not a DTLS-SRTP profile"
    mid = md.attribute_value("mid")
    group = bundle_group(offer, datachannel_mid)
    if mid is None or group is None or mid not in group:
        return (
            f"WebRTC {kind} is served only BUNDLEd with the data channel (RFC 8843), "
            "not on a transport of its own"
        )
    if not md.has_attribute("rtcp-mux"):
        return f"a BUNDLEd {kind} m-line needs a=rtcp-mux (RFC 8858)"
    return None
