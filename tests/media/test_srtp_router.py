"""The BUNDLE router of media/srtp_path.py: decrypted RTP by payload type, RTCP by SSRC (sender
SSRC of SR/SDES/BYE, media SSRC of feedback and report blocks), the rest dropped and counted.
Pure: paths not attached to a transport, packets built with the project's RTP/RTCP writers."""

from __future__ import annotations

import struct
from collections import Counter

from avatar_mf.media.srtp_path import SrtpPath, SrtpRouter, rtcp_ssrcs
from avatar_mf.rtp.packet import RtpPacket
from avatar_mf.rtp.rtcp import (
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpOther,
    SdesChunk,
    SenderReport,
    SourceDescription,
    serialize_rtcp,
)

UE_AUDIO, UE_VIDEO = 0x1111, 0x2222  # the remote's SSRCs
MF_AUDIO, MF_VIDEO = 0xA0A0, 0xB0B0  # the MF's


class _Path:
    def __init__(self, router: SrtpRouter, pts: frozenset[int], node: Counter[str]) -> None:
        self.path = SrtpPath(node_drops=node, payload_types=pts)
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.path.on_rtp = lambda data, addr: self.rtp.append(data)
        self.path.on_rtcp = lambda data, addr: self.rtcp.append(data)
        router.add(self.path)


def _rtp(pt: int, ssrc: int, seq: int = 1) -> bytes:
    return RtpPacket(pt, seq, 3000 * seq, ssrc, b"payload").serialize()


def _block(ssrc: int) -> ReportBlock:
    return ReportBlock(ssrc, 0, 0, 10, 0)


def _setup() -> tuple[SrtpRouter, _Path, _Path, Counter[str]]:
    node: Counter[str] = Counter()
    router = SrtpRouter()
    audio = _Path(router, frozenset({111, 110}), node)
    video = _Path(router, frozenset({96}), node)
    return router, audio, video, node


def test_rtp_goes_to_the_path_of_its_payload_type_else_dropped() -> None:
    router, audio, video, node = _setup()
    router.received(_rtp(111, UE_AUDIO))
    router.received(_rtp(110, UE_AUDIO, 2))  # telephone-event: the audio m-line's too
    router.received(_rtp(96, UE_VIDEO))
    router.received(_rtp(97, UE_VIDEO))  # rtx, not answered: no path
    router.received(b"\x80\x60\x00")  # too short for an RTP header
    assert [p[1] & 0x7F for p in audio.rtp] == [111, 110]
    assert [p[1] & 0x7F for p in video.rtp] == [96]
    assert router.drops == Counter({"bundle_unknown_pt": 2}) == node
    assert not audio.path.drops and not video.path.drops


def test_rtcp_by_sender_ssrc_and_by_media_ssrc_of_feedback() -> None:
    router, audio, video, node = _setup()
    router.received(_rtp(111, UE_AUDIO))
    router.received(_rtp(96, UE_VIDEO))
    # The MF sends on each path: its SSRCs are learnt from what leaves.
    router.sent(audio.path, _rtp(111, MF_AUDIO))
    router.sent(video.path, _rtp(96, MF_VIDEO))

    audio_sr = serialize_rtcp(
        [
            SenderReport(UE_AUDIO, 1 << 32, 960, 1, 100),
            SourceDescription((SdesChunk(UE_AUDIO, ((1, b"ue"),)),)),
        ]
    )
    video_sr = serialize_rtcp([SenderReport(UE_VIDEO, 1 << 32, 9000, 1, 100)])
    pli = serialize_rtcp([RtcpOther(206, 1, struct.pack("!II", 1, MF_VIDEO))])
    fir = serialize_rtcp(
        [RtcpOther(206, 4, struct.pack("!II", 1, 0) + struct.pack("!IB3x", MF_VIDEO, 1))]
    )
    nack = serialize_rtcp([RtcpOther(205, 1, struct.pack("!IIHH", 1, MF_VIDEO, 5, 0))])
    # A receive-only peer's RR (sender SSRC 1) about the MF's audio.
    rr = serialize_rtcp([ReceiverReport(1, (_block(MF_AUDIO),))])
    for packet in (audio_sr, video_sr, pli, fir, nack, rr):
        router.received_rtcp(packet)
    assert audio.rtcp == [audio_sr, rr]
    assert video.rtcp == [video_sr, pli, fir, nack]
    assert not router.drops and not node


def test_rtcp_naming_both_reaches_both_and_unknown_is_dropped() -> None:
    router, audio, video, node = _setup()
    router.received(_rtp(111, UE_AUDIO))
    router.sent(video.path, _rtp(96, MF_VIDEO))
    both = serialize_rtcp([SenderReport(UE_AUDIO, 1, 2, 3, 4, (_block(MF_VIDEO),))])
    router.received_rtcp(both)
    assert audio.rtcp == [both] and video.rtcp == [both]
    stranger = serialize_rtcp([Goodbye((0x9999,))])
    router.received_rtcp(stranger)
    router.received_rtcp(b"\x80\xc8")  # truncated
    assert router.drops == Counter({"bundle_unknown_ssrc": 2}) == node


def test_a_path_with_no_payload_types_takes_the_rest_as_before_video() -> None:
    node: Counter[str] = Counter()
    router = SrtpRouter()
    only = _Path(router, frozenset(), node)
    router.received(_rtp(0, UE_AUDIO))
    router.received_rtcp(serialize_rtcp([ReceiverReport(0x4242)]))
    assert len(only.rtp) == 1 and len(only.rtcp) == 1 and not router.drops
    # Beside a video path it still takes every payload type the video does not claim.
    video = _Path(router, frozenset({96}), node)
    router.received(_rtp(96, UE_VIDEO))
    router.received(_rtp(8, UE_AUDIO, 2))
    assert len(video.rtp) == 1 and len(only.rtp) == 2


def test_removed_path_gets_nothing_and_its_ssrcs_are_forgotten() -> None:
    router, audio, video, node = _setup()
    router.received(_rtp(96, UE_VIDEO))
    router.remove(video.path)
    router.received(_rtp(96, UE_VIDEO, 2))
    router.received_rtcp(serialize_rtcp([SenderReport(UE_VIDEO, 1, 2, 3, 4)]))
    assert len(video.rtp) == 1 and not video.rtcp
    # The only path left takes RTCP of no known SSRC (audio alone, as before video).
    assert len(audio.rtcp) == 1
    assert router.drops == Counter({"bundle_unknown_pt": 1})


def test_transport_drops_are_counted_once_for_the_node_and_on_every_path() -> None:
    router, audio, video, node = _setup()
    router.drop("srtp_auth", paths=True)
    assert node == Counter({"srtp_auth": 1}) == router.drops
    assert audio.path.drops["srtp_auth"] == 1 == video.path.drops["srtp_auth"]


def test_rtcp_ssrcs_reads_every_packet_of_a_compound() -> None:
    compound = serialize_rtcp(
        [
            ReceiverReport(7, (_block(8), _block(9))),
            SourceDescription((SdesChunk(7, ((1, b"x"),)),)),
            RtcpOther(205, 1, struct.pack("!IIHH", 7, 10, 1, 0)),
            Goodbye((11,)),
        ]
    )
    assert rtcp_ssrcs(compound) == ({7, 11}, {8, 9, 10})
