"""SDP for WebRTC-style video m-lines: ``UDP/TLS/RTP/SAVPF`` BUNDLEd with the data channel.

What a browser (or aiortc) offers for a camera beside a data channel and audio (RFC 8829 JSEP
section 5.2): ``m=video 9 UDP/TLS/RTP/SAVPF 96 97 ...`` with ICE, ``a=fingerprint``,
``a=setup``, ``a=mid``, ``a=rtcp-mux``, ``a=rtcp-fb`` lines and a session-level
``a=group:BUNDLE`` naming it with the data channel's (and the audio's) mid.
:func:`plan_webrtc_video` decides the answer to one such m-line (pure). The MF runs it as it
runs WebRTC audio (:mod:`avatar_mf.sdp.webrtc_audio`): SRTP on the data channel's one ICE +
DTLS transport, keys from that handshake (RFC 5764), packets of the BUNDLE told apart by
payload type (RFC 8843 section 9.2; :mod:`avatar_mf.media.srtp_path`).

Rules applied (RFC clauses; the transport checks are those of every WebRTC m-line:
:func:`avatar_mf.sdp.bundle.bundle_refusal`):

* RFC 8843 section 7.3: served only in the BUNDLE group of the accepted data channel m-line
  (also when offered ``a=bundle-only`` at port 0); the answer repeats the BUNDLE address and
  transport attributes as for audio. Not bundled with it, or no data channel: port 0.
* RFC 8858 / RFC 8843 section 9: ``a=rtcp-mux`` required, else port 0.
* RFC 8843 section 9.2: a payload type is used by one bundled m-line only. The audio m-lines
  already answered in the group keep theirs; video formats whose payload type they use are
  not chosen; none left: port 0.
* RFC 3264 6.1 and the MF's preference order (H.264, then VP8) as for IMS video
  (:func:`avatar_mf.sdp.video.choose_video_codec`); H.264 only with ``packetization-mode=1``
  (RFC 7742 section 6.2: the mode WebRTC endpoints send), its ``profile-level-id`` answered
  by the codec layer (RFC 6184 8.2.2); VP8 with no fmtp (RFC 7741 6).
* RFC 4585 4.2 / RFC 5104 7.1: ``UDP/TLS/RTP/SAVPF`` is AVPF: the ``a=rtcp-fb`` values the MF
  supports (``nack``, ``nack pli``, ``ccm fir``) that the offer lists for the chosen payload
  type (or ``*``) are answered; ``transport-cc``, ``goog-remb`` are not.
* RFC 3264 section 6.1 for direction, and 8.3.1: a re-offer keeps the codec chosen before.
"""

from __future__ import annotations

from collections.abc import Set

from avatar_mf.sdp.audio import answer_direction, offered_formats
from avatar_mf.sdp.bundle import bundle_refusal
from avatar_mf.sdp.model import SessionDescription
from avatar_mf.sdp.video import (
    SUPPORTED_FEEDBACK,
    VideoCapabilities,
    VideoPlan,
    VideoRejection,
    choose_video_codec,
    offered_feedback,
)


def plan_webrtc_video(
    offer: SessionDescription,
    index: int,
    caps: VideoCapabilities,
    *,
    datachannel_mid: str | None,
    taken_payload_types: Set[int] = frozenset(),
    previous_codec: str | None = None,
) -> VideoPlan | VideoRejection:
    """The answer to the WebRTC video m-line ``index`` (see the module docstring).

    ``datachannel_mid``: the accepted data channel's mid (None: none accepted);
    ``taken_payload_types``: the payload types other m-lines of the BUNDLE answer with."""
    refusal = bundle_refusal(offer, index, "video", datachannel_mid)
    if refusal is not None:
        return VideoRejection(index, refusal)
    md = offer.media[index]
    mid = md.attribute_value("mid")
    offered = offered_formats(md)
    formats = [
        f
        for f in offered
        if f.payload_type not in taken_payload_types
        and (f.name.upper() != "H264" or f.params.get("packetization-mode") == "1")
    ]
    chosen = choose_video_codec(formats, caps, previous_codec)
    if chosen is None:
        listed = ", ".join(f"{f.name}/{f.clock_rate}" for f in offered) or "none"
        clash = sorted(f.payload_type for f in offered if f.payload_type in taken_payload_types)
        why = f" (payload types {clash} used by another bundled m-line, RFC 8843 9.2)"
        return VideoRejection(
            index,
            f"no video codec the MF can serve (offered: {listed})" + (why if clash else ""),
        )
    codec, answer_fmtp = chosen
    feedback: tuple[str, ...] = ()
    if md.proto.upper().endswith("AVPF"):
        wanted = offered_feedback(md, codec.payload_type)
        feedback = tuple(f for f in SUPPORTED_FEEDBACK if f in wanted)
    conn = offer.connection_for(index)
    return VideoPlan(
        index=index,
        mid=mid,
        proto=md.proto,
        codec=codec,
        answer_fmtp=tuple(answer_fmtp.items()),
        remote_address=conn.address if conn is not None else "0.0.0.0",
        remote_port=md.port,
        remote_rtcp_port=md.port,
        rtcp_mux=True,
        direction=answer_direction(offer, md),
        feedback=feedback,
        bundled=True,
    )
