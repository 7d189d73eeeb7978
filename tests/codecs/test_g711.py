"""G.711 PCMU/PCMA (ITU-T G.711) and the 8 <-> 16 kHz resampling around it."""

from __future__ import annotations

import av
import numpy as np
import pytest

from avatar_mf.codecs import CodecError, audio_codec
from avatar_mf.codecs.g711 import (
    alaw_decode_table,
    alaw_encode_table,
    decode_samples,
    encode_samples,
    mulaw_decode_table,
    mulaw_encode_table,
)
from tests.codecs.signals import (
    aligned,
    best_lag,
    frames,
    from_pcm,
    sine,
    snr_db,
    speech_like,
    to_pcm,
)

ALL16 = np.arange(-32768, 32768, dtype="<i2").tobytes()


def pyav_encode(codec: str, pcm8k: bytes) -> bytes:
    """An independent reference: FFmpeg's G.711 encoder (8 kHz s16 mono)."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    ctx.format = "s16"
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm8k) // 2)
    frame.sample_rate = 8000
    frame.planes[0].update(pcm8k)
    return b"".join(bytes(p) for p in ctx.encode(frame))


def pyav_decode(codec: str, payload: bytes) -> bytes:
    ctx = av.CodecContext.create(codec, "r")
    ctx.sample_rate = 8000
    ctx.layout = "mono"
    out = b""
    for f in ctx.decode(av.Packet(payload)):
        out += bytes(f.to_ndarray().astype("<i2").tobytes())
    return out


@pytest.mark.parametrize(
    ("ffmpeg", "enc", "dec"),
    [
        ("pcm_mulaw", mulaw_encode_table, mulaw_decode_table),
        ("pcm_alaw", alaw_encode_table, alaw_decode_table),
    ],
)
def test_tables_match_ffmpeg_for_every_sample(ffmpeg: str, enc: object, dec: object) -> None:
    codes = bytes(range(256))
    decode = dec()  # type: ignore[operator]
    assert decode_samples(codes, decode) == pyav_decode(ffmpeg, codes)
    ours = np.frombuffer(encode_samples(ALL16, enc()), np.uint8)  # type: ignore[operator]
    ref = np.frombuffer(pyav_encode(ffmpeg, ALL16), np.uint8)
    # FFmpeg puts its decision thresholds midway between reconstruction values; G.711 (and
    # the ITU-T G.191 reference) at the interval edges. They differ only within a few samples
    # of an edge, by one quantisation step.
    differ = np.nonzero(ours != ref)[0]
    assert len(differ) < 0.02 * 65536
    levels = np.sort(decode.astype(int))
    for i in differ:
        a, b = sorted((int(decode[ours[i]]), int(decode[ref[i]])))
        assert np.searchsorted(levels, b) - np.searchsorted(levels, a) == 1


def test_silence_codes_and_symmetry() -> None:
    zero = b"\x00\x00"
    assert encode_samples(zero, mulaw_encode_table()) == b"\xff"
    assert encode_samples(zero, alaw_encode_table()) == b"\xd5"
    mu = mulaw_decode_table().astype(int)
    a = alaw_decode_table().astype(int)
    # Sign bit mirrors the value.
    assert all(mu[c] == -mu[c ^ 0x80] for c in range(256))
    assert all(a[c] == -a[c ^ 0x80] for c in range(256))
    # Decode then encode is the identity (except mu-law's two zeros 0x7f/0xff).
    for table_e, table_d in ((mulaw_encode_table(), mu), (alaw_encode_table(), a)):
        back = encode_samples(np.asarray(table_d, dtype="<i2").tobytes(), table_e)
        assert sum(x != y for x, y in zip(back, bytes(range(256)), strict=True)) <= 1


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_sine_snr_above_30_db(name: str) -> None:
    codec = audio_codec(name, 8000, {})
    assert codec is not None
    enc, dec = codec.encoder(), codec.decoder()
    ref = sine(1000.0, seconds=1.0)
    out = b""
    for frame in frames(to_pcm(ref)):
        payload = enc.encode(frame)
        assert len(payload) == 160
        out += dec.decode(payload)
    y = from_pcm(out)
    lag = best_lag(ref, y)
    r, o = aligned(ref, y, lag)
    snr = snr_db(r, o)
    print(f"{name} 1 kHz sine: SNR {snr:.1f} dB, delay {lag} samples")
    assert snr > 30.0


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_speech_like_snr(name: str) -> None:
    codec = audio_codec(name, 8000, {})
    assert codec is not None
    enc, dec = codec.encoder(), codec.decoder()
    ref = speech_like(1.0)
    out = b"".join(dec.decode(enc.encode(f)) for f in frames(to_pcm(ref)))
    y = from_pcm(out)
    lag = best_lag(ref, y)
    r, o = aligned(ref, y, lag)
    snr = snr_db(r, o)
    print(f"{name} speech-like: SNR {snr:.1f} dB, delay {lag} samples")
    assert lag == 64  # two filters, 32 samples (2 ms) of group delay each at 16 kHz
    assert (
        snr > 20.0
    )  # band-limited to 4 kHz: the formant at 3 kHz survives, harmonics above do not


def test_decoder_gives_whole_frames_for_any_ptime() -> None:
    codec = audio_codec("PCMU", 8000, {})
    assert codec is not None
    dec = codec.decoder()
    assert dec.decode(b"\xff" * 80) == b""  # 10 ms: waits for the next
    assert len(dec.decode(b"\xff" * 80)) == 640
    assert len(dec.decode(b"\xff" * 240)) == 640  # 30 ms: one frame, 10 ms kept
    assert len(dec.conceal()) == 640
    assert len(dec.decode(b"\xff" * 80)) == 640  # the kept 10 ms + 10 ms (+ conceal's rest)


def test_bad_input_raises_codec_error() -> None:
    codec = audio_codec("PCMA", 8000, {})
    assert codec is not None
    with pytest.raises(CodecError):
        codec.decoder().decode(b"")
    for size in (0, 638, 642, 1280):
        with pytest.raises(CodecError):
            codec.encoder().encode(bytes(size))


def test_conceal_is_silence() -> None:
    codec = audio_codec("PCMU", 8000, {})
    assert codec is not None
    assert codec.decoder().conceal() == bytes(640)
