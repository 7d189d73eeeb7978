"""Sending the rendered avatar (media/video_sender.py): pacing, skipping, key frames on PLI
and FIR, RTP timestamps from the frame's time, SR lip-sync mapping, H.264 levels; sans-IO on
the fake clock, with real encoders whose output is decoded back."""

from __future__ import annotations

import asyncio
import random
import struct
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.codecs.video import Picture, video_codec
from avatar_mf.media.audio_stream import StreamFormat
from avatar_mf.media.video_sender import (
    MAX_AGE_PERIODS,
    EncodeJob,
    SendPacer,
    VideoSender,
    fit_to_level,
)
from avatar_mf.media.video_stream import FMT_FIR, FMT_PLI, PSFB, EncodedUnit, VideoStream, unit_of
from avatar_mf.rtp.h264 import H264Depacketizer
from avatar_mf.rtp.packet import RtpPacket, parse_rtp
from avatar_mf.rtp.rtcp import RtcpOther, SenderReport, parse_rtcp, serialize_rtcp
from avatar_mf.rtp.vp8 import Vp8Depacketizer
from avatar_mf.stages.animation.video import VideoFrameOut, VideoSource
from avatar_mf.testing.clock import FakeClock

UE = ("192.0.2.1", 40000)
H264 = StreamFormat(98, "H264", 90000, (("profile-level-id", "42e01f"),
                                        ("packetization-mode", "1")), samples_per_frame=3600)
PERIOD = 0.04


# --- the pacer --------------------------------------------------------------------------


def test_first_frame_is_a_key_frame_then_deltas() -> None:
    pacer = SendPacer(25)
    assert pacer.decide(0.0, 0.0) is not None and pacer.decide(0.0, 0.0) is None  # rate
    decisions = [pacer.decide(i * PERIOD, i * PERIOD + 0.005) for i in range(1, 5)]
    assert [d.keyframe for d in decisions if d is not None] == [False] * 4
    assert pacer.stats.skipped_rate == 1


def test_pli_and_fir_make_the_next_frame_a_key_frame_once() -> None:
    pacer = SendPacer(25)
    first = pacer.decide(0.0, 0.0)
    assert first is not None and first.keyframe
    pacer.request_keyframe()
    pacer.request_keyframe()  # two requests before the next frame: one key frame
    second = pacer.decide(PERIOD, PERIOD)
    third = pacer.decide(2 * PERIOD, 2 * PERIOD)
    assert second is not None and second.keyframe
    assert third is not None and not third.keyframe
    assert pacer.stats.keyframe_requests == 2


def test_frames_faster_than_the_rate_are_skipped_not_queued() -> None:
    pacer = SendPacer(12.5)  # half the renderer's 25 fps
    sent = [pacer.decide(i * PERIOD, i * PERIOD) is not None for i in range(10)]
    assert sent == [True, False] * 5
    assert pacer.stats.skipped_rate == 5


def test_a_frame_too_old_when_its_turn_comes_is_skipped() -> None:
    pacer = SendPacer(25)
    assert pacer.decide(1.0, 1.0 + MAX_AGE_PERIODS * PERIOD + 0.001) is None
    assert pacer.stats.skipped_late == 1
    assert pacer.decide(1.2, 1.2) is not None


def test_an_encoder_failure_restarts_from_a_key_frame() -> None:
    pacer = SendPacer(25)
    pacer.decide(0.0, 0.0)
    pacer.failed()
    decision = pacer.decide(PERIOD, PERIOD)
    assert decision is not None and decision.keyframe and pacer.stats.encode_errors == 1


# --- H.264 levels ------------------------------------------------------------------------


def test_the_picture_fits_the_answered_level() -> None:
    assert fit_to_level(512, 512, 25, 31) == (512, 512)  # 1024 MBs, 25600 MB/s: fits 3.1
    assert fit_to_level(512, 512, 25, 30) == (512, 512)  # 40500 MB/s
    w, h = fit_to_level(512, 512, 25, 21)  # MaxFS 792, MaxMBPS 19800 -> 792 MBs
    assert w == h and -(-w // 16) * -(-h // 16) <= 792 and w >= 400
    w, h = fit_to_level(512, 512, 25, 10)  # 99 MBs, 1485/25 = 59 MBs a frame
    assert -(-w // 16) * -(-h // 16) <= 59 and w % 2 == 0


# --- encode jobs: decoded back ------------------------------------------------------------


def face(value: int, size: int = 64) -> NDArray[np.uint8]:
    rgba = np.full((size, size, 4), 255, np.uint8)
    rgba[:, :, :3] = 40
    rgba[size // 2 :, size // 4 : 3 * size // 4, :3] = value  # a "mouth" block
    return rgba


@pytest.mark.parametrize("name", ["H264", "VP8"])
@pytest.mark.parametrize("mode", ["0", "1"])
def test_encode_job_payloads_decode_to_the_picture(name: str, mode: str) -> None:
    if name == "VP8" and mode == "0":
        pytest.skip("packetization-mode is H.264's")
    fmtp = {"profile-level-id": "42e01f", "packetization-mode": mode} if name == "H264" else {}
    codec = video_codec(name, 90000, fmtp)
    assert codec is not None
    job = EncodeJob(codec, fmtp, rate=25, bitrate=400_000)
    depack = H264Depacketizer(mode=int(mode)) if name == "H264" else Vp8Depacketizer()  # type: ignore[arg-type]
    decoder = codec.decoder()
    lumas: list[float] = []
    for i, value in enumerate((40, 40, 220, 220)):
        encoded = job(face(value), keyframe=False)
        assert encoded.keyframe == (i == 0)  # the first frame of a stream is a key frame
        assert all(len(p) <= 1200 for p in encoded.payloads)
        units: list[EncodedUnit] = []
        for n, payload in enumerate(encoded.payloads):
            last = n == len(encoded.payloads) - 1
            units += [unit_of(u) for u in depack.push(n + i * 100, i * 3600, last, payload)]
        assert len(units) == 1
        pictures = decoder.decode(units[0].data)
        assert len(pictures) == 1 and (pictures[0].width, pictures[0].height) == (64, 64)
        lumas.append(float(pictures[0].luma()[40:60, 20:44].mean()))
    assert abs(lumas[1] - lumas[0]) < 4 and lumas[2] - lumas[1] > 100  # the block shows


# --- the sender on a fake clock -----------------------------------------------------------


@dataclass
class Job:
    """An encode job that records what it was asked (stands in for the codec)."""

    calls: list[bool]

    def __call__(self, rgba: NDArray[np.uint8], keyframe: bool) -> object:
        from avatar_mf.media.video_sender import EncodedFrame

        first = not self.calls
        self.calls.append(keyframe or first)
        return EncodedFrame([b"\x00" * 500, b"\x01" * 300], keyframe or first)


class Wire:
    def __init__(self) -> None:
        self.rtp: list[RtpPacket] = []
        self.rtcp: list[bytes] = []

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.rtp.append(parse_rtp(data))

    def send_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        self.rtcp.append(data)


def stream(wire: Wire, clock: FakeClock, wall_offset: float = 1.7e9) -> VideoStream:
    return VideoStream(
        H264, feedback=("nack pli", "ccm fir"), remote=UE, remote_rtcp=(UE[0], UE[1] + 1),
        rtcp_mux=False, send=wire.send, send_rtcp=wire.send_rtcp, now=clock.now(),
        rng=random.Random(3), wallclock=lambda t: t + wall_offset,
    )


def frame(index: int, at: float) -> VideoFrameOut:
    return VideoFrameOut("p", index=index, time=at, rgba=np.zeros((16, 16, 4), np.uint8))


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_sender_sends_each_frame_with_its_time_as_rtp_timestamp() -> None:
    clock = FakeClock(10.0)
    wire = Wire()
    s = stream(wire, clock)
    source = VideoSource()
    calls: list[bool] = []
    sender = VideoSender(s, Job(calls), source.reader, clock=clock, rate=25, runner=None,  # type: ignore[arg-type]
                         rtp_base=1000)
    s.on_keyframe_request = sender.request_keyframe  # as calls/video.py wires it
    sender.start()
    await settle()
    for i in range(5):
        source.offer(frame(i, 10.0 + i * PERIOD))
        await settle()
        clock.advance(PERIOD)
    assert calls == [True, False, False, False, False]
    stamps = sorted({p.timestamp for p in wire.rtp})
    assert stamps == [(1000 + round((10.0 + i * PERIOD) * 90000)) & 0xFFFFFFFF for i in range(5)]
    assert [p.marker for p in wire.rtp[:2]] == [False, True]  # the marker ends each frame
    assert s.video.frames_out == 5 and s.video.keyframes_out == 1
    # The SR pairs the shared wall clock with the frames' RTP time (lip-sync).
    now = clock.now()
    sr = parse_rtcp(s.report(now))[0]
    assert isinstance(sr, SenderReport)
    assert sr.rtp_timestamp == (1000 + round(now * 90000)) & 0xFFFFFFFF
    ntp_seconds = (sr.ntp_timestamp >> 32) - 2208988800 + (sr.ntp_timestamp & 0xFFFFFFFF) / 2**32
    assert ntp_seconds == pytest.approx(now + 1.7e9, abs=1e-6)
    # A PLI naming the MF's SSRC: the next frame is a key frame.
    pli = RtcpOther(PSFB, FMT_PLI, struct.pack("!II", 0x51, s.ssrc))
    s.receive_rtcp(serialize_rtcp((pli,)), UE, clock.now())
    source.offer(frame(5, clock.now()))
    await settle()
    assert calls[-1] is True and s.video.pli_in == 1
    # A FIR: a key frame; the same FIR repeated (same sequence number) is the same request.
    fir = RtcpOther(PSFB, FMT_FIR, struct.pack("!II", 0x51, 0) + struct.pack("!IB3x", s.ssrc, 7))
    for _ in range(2):
        s.receive_rtcp(serialize_rtcp((fir,)), UE, clock.now())
    clock.advance(PERIOD)
    source.offer(frame(6, clock.now()))
    await settle()
    clock.advance(PERIOD)
    source.offer(frame(7, clock.now()))
    await settle()
    assert calls[-2:] == [True, False] and s.video.fir_in == 2
    assert sender.stats.keyframe_requests == 2
    await sender.close()
    assert source.readers == 0


async def test_a_slow_encode_skips_frames_and_never_holds_another_receiver() -> None:
    clock = FakeClock(0.0)
    source = VideoSource()
    release = asyncio.Event()

    async def slow(job: object) -> object:
        await release.wait()  # this receiver's pool job does not finish
        return job()  # type: ignore[operator]

    fast_wire, slow_wire = Wire(), Wire()
    fast_calls: list[bool] = []
    slow_calls: list[bool] = []
    fast = VideoSender(stream(fast_wire, clock), Job(fast_calls), source.reader, clock=clock,  # type: ignore[arg-type]
                       rate=25, runner=None, rtp_base=0)
    slow_sender = VideoSender(stream(slow_wire, clock), Job(slow_calls), source.reader,  # type: ignore[arg-type]
                              clock=clock, rate=25, runner=slow, rtp_base=0)
    fast.start()
    slow_sender.start()
    await settle()
    for i in range(25):
        source.offer(frame(i, clock.now()))
        await settle()
        clock.advance(PERIOD)
    assert len(fast_calls) == 25  # every frame reached the fast receiver
    assert slow_calls == []  # the slow one is still in its first encode
    assert slow_sender.replaced_total >= 23  # newer frames replaced each other: no queue
    release.set()
    await settle()
    assert len(slow_calls) <= 2
    await fast.close()
    await slow_sender.close()


async def test_no_source_sends_nothing_and_a_closed_source_is_replaced() -> None:
    clock = FakeClock(0.0)
    wire = Wire()
    sources = [VideoSource(), VideoSource()]
    picks: list[int] = []

    def pick() -> object:
        for n, src in enumerate(sources):
            if not src.closed:
                picks.append(n)
                return src.reader()
        return None

    calls: list[bool] = []
    sender = VideoSender(stream(wire, clock), Job(calls), pick, clock=clock, rate=25,  # type: ignore[arg-type]
                         runner=None, rtp_base=0, poll=0.2)
    sender.start()
    await settle()
    sources[0].offer(frame(0, 0.0))
    await settle()
    sources[0].close()  # that participant left: the next one is shown
    await settle()
    clock.advance(0.2)
    await settle()
    sources[1].offer(frame(1, clock.now()))
    await settle()
    assert picks[:2] == [0, 1] and len(calls) == 2
    assert calls == [True, False]  # one encoder per stream: the stream goes on
    await sender.close()


def test_picture_from_encode_job_matches_level_size() -> None:
    codec = video_codec("H264", 90000, {"profile-level-id": "42e00a"})  # level 1
    assert codec is not None
    job = EncodeJob(codec, {"profile-level-id": "42e00a"}, rate=25, bitrate=100_000)
    encoded = job(face(90, size=512), keyframe=True)
    assert job.size is not None and job.size[0] < 512
    decoder = codec.decoder()
    depack = H264Depacketizer(mode=0)
    units = []
    for n, p in enumerate(encoded.payloads):
        units += depack.push(n, 0, n == len(encoded.payloads) - 1, p)
    pictures: list[Picture] = decoder.decode(units[0].annexb())
    assert (pictures[0].width, pictures[0].height) == job.size


async def test_a_congested_socket_skips_frames_until_it_drains() -> None:
    clock = FakeClock(0.0)
    wire = Wire()
    backlog = [0]
    calls: list[bool] = []
    sender = VideoSender(stream(wire, clock), Job(calls), VideoSource().reader, clock=clock,  # type: ignore[arg-type]
                         rate=25, runner=None, rtp_base=0, backlog=lambda: backlog[0])
    assert await sender.send(frame(0, 0.0))
    backlog[0] = 200_000  # the OS has not sent the last key frame yet
    clock.advance(PERIOD)
    assert not await sender.send(frame(1, PERIOD))
    backlog[0] = 0
    clock.advance(PERIOD)
    assert await sender.send(frame(2, 2 * PERIOD))
    assert sender.stats.skipped_congested == 1 and sender.skipped == 1 and len(calls) == 2


async def test_a_hold_sends_nothing_and_resumes_with_a_key_frame() -> None:
    clock = FakeClock(0.0)
    wire = Wire()
    s = stream(wire, clock)
    calls: list[bool] = []
    sender = VideoSender(s, Job(calls), VideoSource().reader, clock=clock, rate=25,  # type: ignore[arg-type]
                         runner=None, rtp_base=0)
    assert await sender.send(frame(0, 0.0)) and await sender.send(frame(1, PERIOD))
    s.sends = False  # a re-offer put the line on hold
    assert not await sender.send(frame(2, 2 * PERIOD))
    s.sends = True
    assert await sender.send(frame(3, 3 * PERIOD))
    assert calls == [True, False, True] and s.video.keyframes_out == 2
