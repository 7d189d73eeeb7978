"""Opus (RFC 7587) through libopus: quality, packet durations, offer/answer, bad packets."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_mf.codecs import CodecError, audio_codec
from avatar_mf.codecs.opus import OpusCodec
from tests.codecs.signals import (
    aligned,
    best_lag,
    correlation,
    frames,
    from_pcm,
    sine,
    snr_db,
    speech_like,
    to_pcm,
)


def opus(fmtp: dict[str, str] | None = None) -> OpusCodec:
    codec = audio_codec("opus", 48000, fmtp or {})
    assert isinstance(codec, OpusCodec)
    return codec


@pytest.mark.parametrize("signal", ["speech", "sine"])
def test_round_trip_correlates(signal: str) -> None:
    codec = opus()
    assert codec.spec.channels == 2 and codec.spec.samples_per_frame_rtp == 960
    ref = speech_like(2.0) if signal == "speech" else sine(1000.0, 1.0)
    enc, dec = codec.encoder(), codec.decoder()
    payloads = [enc.encode(f) for f in frames(to_pcm(ref))]
    out = from_pcm(b"".join(dec.decode(p) for p in payloads))
    assert len(out) == len(ref)
    lag = best_lag(ref, out)
    r, o = aligned(ref, out, lag)
    corr = correlation(r, o)
    bitrate = sum(len(p) for p in payloads) * 8 / (len(ref) / 16000)
    print(
        f"Opus {signal}: corr {corr:.3f}, SNR {snr_db(r, o):.1f} dB, lag {lag}, {bitrate:.0f} bit/s"
    )
    assert corr > 0.9
    assert bitrate < 1.5 * codec.bitrate  # VBR: a pure tone takes more than speech


def test_maxaveragebitrate_caps_the_rate() -> None:
    low = opus({"maxaveragebitrate": "8000", "cbr": "1"})
    assert low.bitrate == 8000 and low.cbr
    enc = low.encoder()
    sizes = [len(enc.encode(f)) for f in frames(to_pcm(speech_like(1.0)))]
    assert np.mean(sizes) * 8 * 50 < 10000
    assert opus({"maxaveragebitrate": "100"}).bitrate == 6000
    assert audio_codec("opus", 48000, {"maxaveragebitrate": "lots"}) is None
    assert audio_codec("opus", 16000, {}) is None


def test_answer() -> None:
    assert opus().answer_fmtp({"useinbandfec": "1", "stereo": "1"}) == {
        "maxplaybackrate": "16000",
        "sprop-maxcapturerate": "16000",
        "stereo": "0",
        "sprop-stereo": "0",
    }


def test_short_packets_give_whole_frames() -> None:
    dec = opus().decoder()
    # TOC 0x00: SILK NB 10 ms, one frame; a zero-length frame body is a valid "DTX" frame.
    assert dec.decode(b"\x00") == b""
    assert len(dec.decode(b"\x00")) == 640
    assert len(dec.conceal()) == 640


def test_bad_packets_raise_codec_error() -> None:
    dec = opus().decoder()
    for bad in (b"", b"\xff", bytes(1500)):
        with pytest.raises(CodecError):
            dec.decode(bad)
    rng = np.random.default_rng(5)
    for _ in range(50):
        try:
            out = dec.decode(bytes(rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8)))
        except CodecError:
            continue
        assert len(out) % 640 == 0
    with pytest.raises(CodecError):
        opus().encoder().encode(bytes(10))
