"""Realistic WebRTC offers (audio BUNDLEd with a data channel) for the SDP planner tests.

Written after what Chromium 12x and aiortc 1.16 put in their offers (``createOffer`` with an
audio transceiver and a data channel, all candidates gathered); fingerprints, ufrags and
SSRCs are made up.
"""

from __future__ import annotations

FP = (
    "sha-256 4F:D3:9B:1A:0C:77:21:5E:AA:10:36:C8:0D:F2:9E:11:"
    "5B:6E:70:2C:91:3D:4A:88:E0:7F:12:C5:69:B4:DE:03"
)


def _sdp(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


#: Chromium: audio mid 0 first (the offerer BUNDLE-tag), data channel mid 1, port 9 with
#: every candidate in each m-line, Opus/RED/G722/PCMU/PCMA/CN/telephone-event.
CHROMIUM_OFFER = _sdp(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS 5b3f",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1467250027 1 udp 2122260223 192.0.2.20 46243 typ host generation 0",
        "a=ice-ufrag:khLS",
        "a=ice-pwd:cxLzteJaJBou3DspNaPsJhlQ",
        "a=ice-options:trickle",
        f"a=fingerprint:{FP}",
        "a=setup:actpass",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendrecv",
        "a=msid:5b3f 9c1e",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
        "a=ssrc:3735928559 cname:Zx3lq0o5kvlE6x1n",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=candidate:1467250027 1 udp 2122260223 192.0.2.20 46243 typ host generation 0",
        "a=ice-ufrag:khLS",
        "a=ice-pwd:cxLzteJaJBou3DspNaPsJhlQ",
        "a=ice-options:trickle",
        f"a=fingerprint:{FP}",
        "a=setup:actpass",
        "a=mid:1",
        "a=sctp-port:5000",
        "a=max-message-size:262144",
        'a=dcmap:0 subprotocol="http"',
    ]
)

#: aiortc 1.16: real ports and candidates, sha-256/384/512 fingerprints (only one here),
#: Opus without fmtp, PCMU, PCMA; the data channel m-line second.
AIORTC_OFFER = _sdp(
    [
        "v=0",
        "o=- 3942261803 3942261803 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=msid-semantic:WMS *",
        "m=audio 50123 UDP/TLS/RTP/SAVPF 96 0 8",
        "c=IN IP4 192.0.2.30",
        "a=sendrecv",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=mid:0",
        "a=msid:8f0e 2c6a",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtcp-mux",
        "a=ssrc:2864950110 cname:0f4c3ac4",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=candidate:5e4b 1 udp 2130706431 192.0.2.30 50123 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:Qm1H",
        "a=ice-pwd:n4YqBlvV1wO0KsNzdmWgkP",
        f"a=fingerprint:{FP}",
        "a=setup:actpass",
        "m=application 50123 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 192.0.2.30",
        "a=mid:1",
        "a=sctp-port:5000",
        "a=max-message-size:65536",
        "a=candidate:5e4b 1 udp 2130706431 192.0.2.30 50123 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:Qm1H",
        "a=ice-pwd:n4YqBlvV1wO0KsNzdmWgkP",
        f"a=fingerprint:{FP}",
        "a=setup:actpass",
        'a=dcmap:0 subprotocol="http"',
    ]
)


def _chromium_video(mid: str) -> list[str]:
    """Chromium's camera m-line: VP8 (+rtx), VP9, H.264 in four profile/packetization-mode
    variants, red/ulpfec; rtcp-fb goog-remb, transport-cc, ccm fir, nack, nack pli per PT."""
    lines = [
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 102 103 104 106 107 112 113",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:khLS",
        "a=ice-pwd:cxLzteJaJBou3DspNaPsJhlQ",
        "a=ice-options:trickle",
        f"a=fingerprint:{FP}",
        "a=setup:actpass",
        f"a=mid:{mid}",
        "a=extmap:14 urn:ietf:params:rtp-hdrext:toffset",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendrecv",
        "a=msid:5b3f 7d20",
        "a=rtcp-mux",
        "a=rtcp-rsize",
    ]
    codecs = [
        (96, "VP8/90000", None),
        (98, "VP9/90000", "profile-id=0"),
        (
            102,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
        ),
        (
            104,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        ),
        (
            106,
            "H264/90000",
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
    ]
    for pt, rtpmap, fmtp in codecs:
        lines.append(f"a=rtpmap:{pt} {rtpmap}")
        for fb in ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"):
            lines.append(f"a=rtcp-fb:{pt} {fb}")
        if fmtp is not None:
            lines.append(f"a=fmtp:{pt} {fmtp}")
    lines += [
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtpmap:103 rtx/90000",
        "a=fmtp:103 apt=102",
        "a=rtpmap:107 rtx/90000",
        "a=fmtp:107 apt=106",
        "a=rtpmap:112 red/90000",
        "a=rtpmap:113 ulpfec/90000",
        "a=ssrc-group:FID 1711883301 2790143524",
        "a=ssrc:1711883301 cname:Zx3lq0o5kvlE6x1n",
        "a=ssrc:2790143524 cname:Zx3lq0o5kvlE6x1n",
    ]
    return lines


def _insert_before_application(offer: bytes, lines: list[str], group: str) -> bytes:
    text = offer.decode().replace("a=group:BUNDLE 0 1", f"a=group:BUNDLE {group}")
    head, app = text.split("m=application", 1)
    return (head + "\r\n".join(lines) + "\r\nm=application" + app).encode()


#: Chromium with a camera: audio mid 0, video mid 1, data channel mid 2 (``a=mid:1`` of the
#: data channel renamed), ``a=group:BUNDLE 0 1 2``.
CHROMIUM_AV_OFFER = _insert_before_application(
    CHROMIUM_OFFER.replace(b"a=mid:1\r\na=sctp-port", b"a=mid:2\r\na=sctp-port"),
    _chromium_video("1"),
    "0 1 2",
)

#: aiortc 1.16 with a video track: VP8 97 (+rtx 98), H.264 99 (mode 1, 42001f) and 101
#: (mode 0), rtcp-fb nack, nack pli, goog-remb; payload types unique across the session.
AIORTC_AV_OFFER = _insert_before_application(
    AIORTC_OFFER.replace(b"a=mid:1\r\na=sctp-port", b"a=mid:2\r\na=sctp-port"),
    [
        "m=video 50123 UDP/TLS/RTP/SAVPF 97 98 99 100 101 102",
        "c=IN IP4 192.0.2.30",
        "a=sendrecv",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=mid:1",
        "a=msid:8f0e 6a11",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtcp-mux",
        "a=ssrc-group:FID 1830391547 2119447382",
        "a=ssrc:1830391547 cname:0f4c3ac4",
        "a=ssrc:2119447382 cname:0f4c3ac4",
        "a=rtpmap:97 VP8/90000",
        "a=rtcp-fb:97 nack",
        "a=rtcp-fb:97 nack pli",
        "a=rtcp-fb:97 goog-remb",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "a=rtpmap:99 H264/90000",
        "a=rtcp-fb:99 nack",
        "a=rtcp-fb:99 nack pli",
        "a=rtcp-fb:99 goog-remb",
        "a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        "a=rtpmap:100 rtx/90000",
        "a=fmtp:100 apt=99",
        "a=rtpmap:101 H264/90000",
        "a=rtcp-fb:101 nack",
        "a=rtcp-fb:101 nack pli",
        "a=rtcp-fb:101 goog-remb",
        "a=fmtp:101 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
        "a=rtpmap:102 rtx/90000",
        "a=fmtp:102 apt=101",
        "a=candidate:5e4b 1 udp 2130706431 192.0.2.30 50123 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:Qm1H",
        "a=ice-pwd:n4YqBlvV1wO0KsNzdmWgkP",
        f"a=fingerprint:{FP}",
        "a=setup:actpass",
    ],
    "0 1 2",
)
