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
