"""Opus for RTP (RFC 7587), through PyAV's libopus, for WebRTC UEs.

RFC 7587 section 4.1 / 7: the rtpmap is always ``opus/48000/2`` and the RTP clock always
48 kHz (960 per 20 ms), whatever the audio bandwidth or channel count actually used. The MF
sends mono, 20 ms frames, encoding its 16 kHz PCM directly (libopus accepts 16 kHz input, a
wideband stream); it decodes at 48 kHz (FFmpeg's libopus decoder output) and resamples to
16 kHz (:mod:`avatar_mf.codecs.resample`). One packet may carry 2.5-120 ms: the decoder keeps
what does not fill a 20 ms frame for the next call. Loss concealment: silence.

Offer/answer (RFC 7587 section 7.1): the answer says what the MF wants to receive and sends:
``maxplaybackrate=16000`` and ``sprop-maxcapturerate=16000`` (the MF's PCM is 16 kHz),
``stereo=0`` and ``sprop-stereo=0`` (mono). ``maxaveragebitrate`` from the offer (6000 to
510000) caps the MF's sending bit rate (default 24 kbit/s); ``cbr=1`` makes it constant;
``useinbandfec`` and ``usedtx`` are not used.
"""

from __future__ import annotations

from collections.abc import Mapping

import av
import numpy as np

from avatar_mf.codecs.base import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    PCM_RATE,
    AudioCodecSpec,
    CodecError,
    Fmtp,
    check_frame,
)
from avatar_mf.codecs.resample import Downsampler

OPUS_RATE = 48000
DEFAULT_BITRATE = 24000
MIN_BITRATE = 6000
MAX_BITRATE = 510000


class OpusCodec:
    """Opus as RFC 7587 names it: ``opus/48000/2``."""

    def __init__(self, fmtp: Fmtp) -> None:
        self._spec = AudioCodecSpec("opus", OPUS_RATE, 2, fmtp)
        bitrate = DEFAULT_BITRATE
        if "maxaveragebitrate" in fmtp:
            bitrate = max(MIN_BITRATE, min(MAX_BITRATE, int(fmtp["maxaveragebitrate"])))
        self.bitrate = min(bitrate, DEFAULT_BITRATE)
        self.cbr = fmtp.get("cbr", "0") == "1"

    @classmethod
    def from_offer(cls, clock_rate: int, fmtp: Fmtp) -> OpusCodec | None:
        if clock_rate != OPUS_RATE:
            return None
        value = fmtp.get("maxaveragebitrate")
        if value is not None and not value.isdigit():
            return None
        return cls(fmtp)

    @property
    def spec(self) -> AudioCodecSpec:
        return self._spec

    def answer_fmtp(self, offered: Mapping[str, str]) -> dict[str, str]:
        return {
            "maxplaybackrate": str(PCM_RATE),
            "sprop-maxcapturerate": str(PCM_RATE),
            "stereo": "0",
            "sprop-stereo": "0",
        }

    def encoder(self) -> OpusEncoder:
        return OpusEncoder(self.bitrate, self.cbr)

    def decoder(self) -> OpusDecoder:
        return OpusDecoder()


class OpusEncoder:
    """16 kHz PCM frames -> one 20 ms Opus packet each."""

    def __init__(self, bitrate: int, cbr: bool) -> None:
        ctx = av.CodecContext.create("libopus", "w")
        ctx.sample_rate = PCM_RATE
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = bitrate
        ctx.options = {
            "application": "voip",
            "frame_duration": "20",
            "vbr": "off" if cbr else "on",
        }
        ctx.open()
        self._ctx = ctx
        self._pts = 0

    def encode(self, pcm20ms: bytes) -> bytes:
        check_frame(pcm20ms)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.sample_rate = PCM_RATE
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        frame.planes[0].update(pcm20ms)
        packets = [bytes(p) for p in self._ctx.encode(frame)]
        if len(packets) != 1:
            raise CodecError("encoder", f"libopus gave {len(packets)} packets for one frame")
        return packets[0]


class OpusDecoder:
    """Opus packets -> 16 kHz PCM in whole 20 ms frames."""

    def __init__(self) -> None:
        ctx = av.CodecContext.create("libopus", "r")
        ctx.sample_rate = OPUS_RATE
        ctx.layout = "mono"
        self._ctx = ctx
        self._down = Downsampler(OPUS_RATE // PCM_RATE)
        self._pending = b""

    def decode(self, payload: bytes) -> bytes:
        if not payload:
            raise CodecError("empty", "an Opus packet has at least the TOC octet")
        try:
            frames = list(self._ctx.decode(av.Packet(payload)))
        except (av.FFmpegError, ValueError) as exc:
            raise CodecError("decoder", str(exc)) from exc
        pcm48 = b""
        for frame in frames:
            samples = frame.to_ndarray()
            if samples.dtype != np.int16:
                samples = np.clip(np.rint(samples * 32768.0), -32768, 32767)
            mono = samples.reshape(samples.shape[0], -1)[0] if samples.ndim > 1 else samples
            pcm48 += mono.astype("<i2").tobytes()
        pcm = self._pending + self._down.process(pcm48)
        whole = len(pcm) - len(pcm) % FRAME_BYTES
        self._pending = pcm[whole:]
        return pcm[:whole]

    def conceal(self) -> bytes:
        pcm = self._pending + self._down.process(bytes(FRAME_BYTES * 3))
        self._pending = pcm[FRAME_BYTES:]
        return pcm[:FRAME_BYTES]
