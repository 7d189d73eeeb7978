"""Video codecs through PyAV: H.264 (x264 Constrained Baseline) and VP8 (libvpx realtime)
encode a test pattern that FFmpeg decodes back; the registry serves what loads."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatar_mf.codecs import CodecError, Fmtp
from avatar_mf.codecs.video import (
    VIDEO_CLOCK,
    H264Codec,
    Picture,
    VideoCodecRegistry,
    Vp8Codec,
    build_video_registry,
    supported_video,
    video_codec,
)
from avatar_mf.rtp.h264 import NAL_IDR, NAL_SPS, ProfileLevelId, nal_type, split_annexb
from avatar_mf.rtp.vp8 import is_keyframe
from tests.rtp.video_streams import pattern

WIDTH, HEIGHT = 160, 120


def _pictures(count: int) -> list[Picture]:
    return [Picture.from_rgb(pattern(i, WIDTH, HEIGHT)) for i in range(count)]


def _psnr(a: Picture, b: Picture) -> float:
    diff = a.luma().astype(np.float64) - b.luma().astype(np.float64)
    mse = float(np.mean(diff**2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def test_picture_checks_its_size() -> None:
    with pytest.raises(CodecError):
        Picture(4, 4, bytes(10))
    with pytest.raises(CodecError):
        Picture(3, 4, bytes(18))
    picture = Picture.from_rgb(pattern(0, 16, 8))
    assert (picture.width, picture.height, len(picture.data)) == (16, 8, 16 * 8 * 3 // 2)
    assert Picture.from_frame(picture.to_frame()) == picture


@pytest.mark.parametrize("codec", [H264Codec(Fmtp({"packetization-mode": "1"})), Vp8Codec(Fmtp())])
def test_encode_decode_roundtrip(codec: H264Codec | Vp8Codec) -> None:
    encoder = codec.encoder(WIDTH, HEIGHT, bitrate=800_000)
    decoder = codec.decoder()
    sources = _pictures(10)
    decoded: list[Picture] = []
    for picture in sources:
        units = encoder.encode(picture)
        assert len(units) == 1  # no lag: one picture in, its unit out
        decoded.extend(decoder.decode(units[0]))
    assert len(decoded) == len(sources)
    assert all((p.width, p.height) == (WIDTH, HEIGHT) for p in decoded)
    assert min(_psnr(a, b) for a, b in zip(sources, decoded, strict=True)) > 28


def test_h264_is_constrained_baseline_with_parameter_sets_before_each_idr() -> None:
    encoder = H264Codec(Fmtp({"packetization-mode": "1"})).encoder(WIDTH, HEIGHT)
    units = [encoder.encode(p, keyframe=i == 4)[0] for i, p in enumerate(_pictures(6))]
    kinds = [[nal_type(n) for n in split_annexb(u)] for u in units]
    idrs = [i for i, k in enumerate(kinds) if NAL_IDR in k]
    assert idrs == [0, 4]
    for i in idrs:
        assert NAL_SPS in kinds[i]
    sps = next(n for n in split_annexb(units[0]) if nal_type(n) == NAL_SPS)
    assert ProfileLevelId.parse(sps[1:4].hex()).profile == "constrained-baseline"


def test_h264_mode_0_cuts_slices_to_fit_a_packet() -> None:
    encoder = H264Codec(Fmtp({"packetization-mode": "0"})).encoder(320, 240, bitrate=2_000_000)
    unit = encoder.encode(Picture.from_rgb(pattern(0, 320, 240)), keyframe=True)[0]
    nals = split_annexb(unit)
    assert len([n for n in nals if nal_type(n) == NAL_IDR]) > 1
    assert max(len(n) for n in nals) <= 1200


def test_vp8_keyframe_on_request() -> None:
    encoder = Vp8Codec(Fmtp()).encoder(WIDTH, HEIGHT)
    frames = [encoder.encode(p, keyframe=i == 3)[0] for i, p in enumerate(_pictures(5))]
    assert [is_keyframe(f) for f in frames] == [True, False, False, True, False]


def test_encoder_refuses_another_size() -> None:
    encoder = Vp8Codec(Fmtp()).encoder(WIDTH, HEIGHT)
    with pytest.raises(CodecError):
        encoder.encode(Picture.from_rgb(pattern(0, 32, 32)))


def test_decoder_refuses_empty_units() -> None:
    with pytest.raises(CodecError):
        H264Codec(Fmtp()).decoder().decode(b"")


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.sampled_from(["h264", "vp8"]))
def test_garbage_raises_only_codec_error(data: bytes, name: str) -> None:
    codec = H264Codec(Fmtp()) if name == "h264" else Vp8Codec(Fmtp())
    try:
        pictures = codec.decoder().decode(data)
    except CodecError:
        return
    assert all(isinstance(p, Picture) for p in pictures)


def test_registry_order_and_lookups() -> None:
    assert [s.name for s in supported_video()] == ["H264", "VP8"]
    assert all(s.clock_rate == VIDEO_CLOCK for s in supported_video())
    h264 = video_codec("h264", 90000, {"packetization-mode": "1"})
    assert h264 is not None and h264.spec.name == "H264"
    assert video_codec("H264", 90000, {"packetization-mode": "2"}) is None
    assert video_codec("VP8", 8000, {}) is None
    assert video_codec("H265", 90000, {}) is None
    assert build_video_registry().unavailable() == {}


def test_missing_video_codec_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    registry = VideoCodecRegistry({}, {"VP8": "PyAV/FFmpeg has no libvpx encoder"})
    with caplog.at_level(logging.WARNING):
        assert registry.codec("VP8", 90000, {}) is None
        assert registry.codec("vp8", 90000, {}) is None
    assert [r.getMessage() for r in caplog.records] == [
        "video codec VP8 not offered: PyAV/FFmpeg has no libvpx encoder"
    ]
