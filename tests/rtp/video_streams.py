"""Real H.264 and VP8 streams for the payload-format tests: a moving test pattern encoded by
PyAV (x264 / libvpx), a few small frames (milliseconds to make)."""

from __future__ import annotations

from functools import cache

import av
import numpy as np


def pattern(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """An RGB test picture that moves with ``index`` (bars plus a sliding square)."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    for bar in range(8):
        img[:, bar * width // 8 : (bar + 1) * width // 8] = (
            255 * (bar & 1),
            255 * ((bar >> 1) & 1),
            255 * ((bar >> 2) & 1),
        )
    x = (index * 4) % (width - 8)
    img[height // 2 - 4 : height // 2 + 4, x : x + 8] = 128
    return img


@cache
def h264_units(count: int = 6, width: int = 64, height: int = 48) -> tuple[bytes, ...]:
    """``count`` H.264 access units (Annex B), the first an IDR with SPS/PPS in-band."""
    from fractions import Fraction

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
    out: list[bytes] = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        out.extend(bytes(p) for p in ctx.encode(frame))
    out.extend(bytes(p) for p in ctx.encode(None))
    return tuple(out)


@cache
def vp8_frames(count: int = 6, width: int = 64, height: int = 48) -> tuple[bytes, ...]:
    """``count`` VP8 frames, the first a key frame."""
    from fractions import Fraction

    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out: list[bytes] = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        out.extend(bytes(p) for p in ctx.encode(frame))
    out.extend(bytes(p) for p in ctx.encode(None))
    return tuple(out)
