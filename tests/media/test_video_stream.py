"""The sans-IO video stream (media/video_stream.py): units out of RTP, key frames, feedback."""

from __future__ import annotations

import random
import struct

import av

from avatar_mf.media.audio_stream import StreamFormat
from avatar_mf.media.video_stream import (
    FMT_FIR,
    FMT_NACK,
    FMT_PLI,
    PSFB,
    RTPFB,
    EncodedUnit,
    VideoStream,
)
from avatar_mf.rtp.h264 import H264Packetizer
from avatar_mf.rtp.packet import RtpPacket
from avatar_mf.rtp.rtcp import ReceiverReport, RtcpOther, parse_rtcp, serialize_rtcp
from avatar_mf.rtp.vp8 import Vp8Packetizer
from tests.rtp.video_streams import h264_units, vp8_frames

UE = ("192.0.2.1", 40000)
UE_SSRC = 0x5151
H264 = StreamFormat(
    payload_type=98,
    codec_name="H264",
    clock_rate=90000,
    fmtp=(("profile-level-id", "42e01f"), ("packetization-mode", "1")),
    samples_per_frame=3600,
)
VP8 = StreamFormat(payload_type=100, codec_name="VP8", clock_rate=90000, samples_per_frame=3600)


class Wire:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def __call__(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)


def make(
    fmt: StreamFormat = H264, feedback: tuple[str, ...] = ("nack", "nack pli", "ccm fir")
) -> tuple[VideoStream, list[EncodedUnit], Wire]:
    units: list[EncodedUnit] = []
    rtcp = Wire()
    stream = VideoStream(
        fmt,
        feedback=feedback,
        on_unit=units.append,
        remote=UE,
        remote_rtcp=(UE[0], UE[1] + 1),
        rtcp_mux=False,
        send=Wire(),
        send_rtcp=rtcp,
        now=0.0,
        rng=random.Random(3),
    )
    return stream, units, rtcp


def packets(payload_lists: list[list[bytes]], pt: int) -> list[bytes]:
    out: list[bytes] = []
    seq = 100
    for n, payloads in enumerate(payload_lists):
        for i, payload in enumerate(payloads):
            marker = i == len(payloads) - 1
            out.append(RtpPacket(pt, seq, n * 3600, UE_SSRC, payload, marker).serialize())
            seq += 1
    return out


def h264_packets() -> list[bytes]:
    packetizer = H264Packetizer(mtu=200)
    return packets([packetizer.packetize(u) for u in h264_units()], 98)


def test_h264_units_come_out_in_order_and_decode() -> None:
    stream, units, _ = make()
    for i, data in enumerate(h264_packets()):
        stream.receive(data, UE, i * 0.001)
    assert [u.keyframe for u in units] == [True] + [False] * (len(h264_units()) - 1)
    assert [u.timestamp for u in units] == [n * 3600 for n in range(len(h264_units()))]
    decoder = av.CodecContext.create("h264", "r")
    assert sum(len(decoder.decode(av.Packet(u.data))) for u in units) == len(units)
    assert stream.video.units == len(units) and stream.video.keyframes == 1


def test_units_before_a_keyframe_are_held_back_and_a_pli_goes_out() -> None:
    stream, units, rtcp = make()
    wire = h264_packets()
    first_unit = sum(1 for p in wire if timestamp_of(p) == 0)
    for i, data in enumerate(wire[first_unit:]):  # the key frame never arrives
        stream.receive(data, UE, 0.1 * i)
    assert units == []
    assert stream.video.skipped == len(h264_units()) - 1
    assert stream.video.pli_out >= 1  # rate limited: at most one a second
    assert stream.video.pli_out <= 1 + int(0.1 * len(wire))
    compound = parse_rtcp(rtcp.sent[0], reduced_size=True)
    assert isinstance(compound[0], ReceiverReport)
    pli = compound[-1]
    assert isinstance(pli, RtcpOther) and (pli.packet_type, pli.count) == (PSFB, FMT_PLI)
    assert struct.unpack("!II", pli.payload) == (stream.ssrc, UE_SSRC)


def timestamp_of(data: bytes) -> int:
    return int.from_bytes(data[4:8], "big")


def test_fir_when_only_ccm_fir_and_nothing_without_feedback() -> None:
    stream, _, rtcp = make(feedback=("ccm fir",))
    stream.receive(h264_packets()[-1], UE, 0.0)  # a non-key unit first
    assert stream.video.fir_out == 1
    fir = parse_rtcp(rtcp.sent[0], reduced_size=True)[-1]
    assert isinstance(fir, RtcpOther) and (fir.packet_type, fir.count) == (PSFB, FMT_FIR)
    assert fir.payload[8:12] == UE_SSRC.to_bytes(4, "big")
    plain, _, wire = make(feedback=())
    plain.receive(h264_packets()[-1], UE, 0.0)
    assert wire.sent == [] and not plain.request_keyframe(5.0)


def test_feedback_received_is_counted_for_the_sender() -> None:
    stream, _, _ = make()
    stream.receive(h264_packets()[0], UE, 0.0)  # latch
    ours, other = stream.ssrc, 0x9999

    def compound(*extra: RtcpOther) -> bytes:
        return serialize_rtcp((ReceiverReport(UE_SSRC, ()), *extra))

    stream.receive_rtcp(
        compound(RtcpOther(PSFB, FMT_PLI, struct.pack("!II", UE_SSRC, ours))), UE, 1
    )
    stream.receive_rtcp(
        compound(RtcpOther(PSFB, FMT_PLI, struct.pack("!II", UE_SSRC, other))), UE, 1
    )
    fir = struct.pack("!II", UE_SSRC, 0) + struct.pack("!IB3x", ours, 1)
    stream.receive_rtcp(compound(RtcpOther(PSFB, FMT_FIR, fir)), UE, 1)
    nack = struct.pack("!IIHH", UE_SSRC, ours, 5, 0)
    stream.receive_rtcp(compound(RtcpOther(RTPFB, FMT_NACK, nack)), UE, 1)
    assert (stream.video.pli_in, stream.video.fir_in, stream.video.nack_in) == (1, 1, 1)
    assert stream.video.keyframe_requests == 2


def test_bad_payload_is_dropped_and_counted() -> None:
    stream, units, _ = make()
    bad = RtpPacket(98, 1, 0, UE_SSRC, bytes([25, 0, 1]), True).serialize()  # STAP-B
    assert stream.receive(bad, UE, 0.0) is not None
    assert stream.drops["payload"] == 1 and units == []
    wrong_pt = RtpPacket(97, 2, 0, UE_SSRC, bytes([0x65, 1]), True).serialize()
    assert stream.receive(wrong_pt, UE, 0.0) is None
    assert stream.drops["payload_type"] == 1


def test_vp8_lost_frame_waits_for_the_next_keyframe() -> None:
    stream, units, _ = make(VP8, feedback=("nack pli",))
    packetizer = Vp8Packetizer(mtu=30)
    wire = packets([packetizer.packetize(f) for f in vp8_frames()], 100)
    frame_2 = [i for i, p in enumerate(wire) if timestamp_of(p) == 2 * 3600]
    for i, data in enumerate(wire):
        if i != frame_2[0]:
            stream.receive(data, UE, 0.01 * i)
    assert [u.timestamp for u in units] == [0, 3600]  # after the loss: held until a key frame
    assert stream.video.incomplete == 1 and stream.video.pli_out == 1
    assert stream.video.skipped == len(vp8_frames()) - 3
