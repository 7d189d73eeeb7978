"""Video codecs for the media plane: H.264 and VP8 through PyAV (FFmpeg, x264, libvpx).

Inside the MF a decoded picture is a :class:`Picture`: planar **I420** (``yuv420p``: the Y
plane, then U and V at half width and height, rows packed with no padding) in ``bytes``, with
its size. A codec converts between pictures and what its RTP payload format carries (an H.264
access unit as an Annex B byte stream, RFC 6184 via :mod:`avatar_mf.rtp.h264`; a VP8 frame,
RFC 7741 via :mod:`avatar_mf.rtp.vp8`):

* :class:`VideoDecoder` ``decode(unit) -> [Picture]`` (FFmpeg's ``h264`` and ``vp8``
  decoders; a unit that does not decode raises :class:`~avatar_mf.codecs.base.CodecError`);
* :class:`VideoEncoder` ``encode(picture, keyframe=False) -> [unit]``: x264 with
  ``preset=ultrafast``, ``tune=zerolatency`` and the Baseline profile with constraint_set1
  (Constrained Baseline, what every IMS/WebRTC H.264 receiver decodes; SPS and PPS repeated
  before every IDR), or libvpx with ``deadline=realtime``, ``cpu-used=8``, no lag. Neither
  buffers frames (zerolatency / lag-in-frames=0): one picture in, its unit out.
  ``max_nal_size`` makes x264 cut slices so that every NAL unit fits one packet (what
  packetization-mode 0 needs, RFC 6184 6.2).

:class:`VideoCodecRegistry` follows the audio registry's pattern
(:mod:`avatar_mf.codecs.registry`): the codecs this host serves in the MF's preference order
(H.264, VP8), ``codec(name, clock_rate, fmtp)`` returning ``None`` for what it cannot serve
(the format is left out of the answer, never accepted silently); a codec whose FFmpeg part is
missing is listed with the reason, logged once. The SDP answer rules (H.264 profile-level-id,
RFC 6184 8.2.2) live with the payload format in :mod:`avatar_mf.rtp.h264`; the calls layer
joins the two (the layer contract keeps ``codecs`` and ``rtp`` independent). Codec objects
are not thread-safe: one stream's encoder or decoder is used by one worker at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import Literal, Protocol, cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from avatar_mf.codecs.base import CodecError, Fmtp
from avatar_mf.codecs.registry import Registry, pyav_codecs_missing

log = logging.getLogger(__name__)

#: The RTP clock of every video payload format (RFC 6184 8.1, RFC 7741 6.1).
VIDEO_CLOCK = 90000
DEFAULT_FPS = 25
DEFAULT_BITRATE = 600_000


@dataclass(frozen=True, slots=True)
class Picture:
    """One decoded picture: I420 planes packed in ``data`` (``width * height * 3 // 2``)."""

    width: int
    height: int
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise CodecError("picture_size", f"{self.width}x{self.height}")
        if len(self.data) != self.width * self.height * 3 // 2:
            raise CodecError("picture_size", f"{len(self.data)} bytes for {self}")

    @classmethod
    def from_frame(cls, frame: av.VideoFrame) -> Picture:
        if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
            frame = frame.reformat(
                width=frame.width & ~1, height=frame.height & ~1, format="yuv420p"
            )
        array = frame.to_ndarray()  # (h * 3 / 2, w) for yuv420p, padding removed
        return cls(frame.width, frame.height, array.tobytes())

    @classmethod
    def from_rgb(cls, rgb: np.ndarray) -> Picture:
        """A picture from an (height, width, 3) uint8 RGB array."""
        return cls.from_frame(av.VideoFrame.from_ndarray(rgb, format="rgb24"))

    def to_frame(self) -> av.VideoFrame:
        array = np.frombuffer(self.data, dtype=np.uint8).reshape(self.height * 3 // 2, self.width)
        return av.VideoFrame.from_ndarray(array, format="yuv420p")

    def luma(self) -> np.ndarray:
        """The Y plane as a (height, width) array (tests compare pictures by it)."""
        size = self.width * self.height
        return np.frombuffer(self.data[:size], dtype=np.uint8).reshape(self.height, self.width)


@dataclass(frozen=True, slots=True)
class VideoCodecSpec:
    """One video format as SDP names it (``a=rtpmap:<pt> H264/90000`` + fmtp)."""

    name: str
    clock_rate: int = VIDEO_CLOCK
    fmtp: Fmtp = field(default_factory=Fmtp)


class VideoDecoder(Protocol):
    def decode(self, unit: bytes) -> list[Picture]:
        """The pictures one access unit / frame gives (usually one; none while it waits for
        a keyframe); :class:`CodecError` when it does not decode."""
        ...


class VideoEncoder(Protocol):
    def encode(self, picture: Picture, *, keyframe: bool = False) -> list[bytes]:
        """The encoded unit(s) for one picture (Annex B for H.264, a frame for VP8)."""
        ...


class VideoCodec(Protocol):
    @property
    def spec(self) -> VideoCodecSpec: ...

    def decoder(self) -> VideoDecoder: ...

    def encoder(
        self, width: int, height: int, *, fps: int = DEFAULT_FPS, bitrate: int = DEFAULT_BITRATE
    ) -> VideoEncoder: ...


class PyAvVideoDecoder:
    """FFmpeg's decoder for one stream (``h264`` or ``vp8``)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._ctx = cast(VideoCodecContext, av.CodecContext.create(name, "r"))
        self.decoded = 0
        self.errors = 0

    def decode(self, unit: bytes) -> list[Picture]:
        if not unit:
            raise CodecError("empty", f"empty {self._name} unit")
        try:
            frames = self._ctx.decode(av.Packet(unit))
        except (av.FFmpegError, ValueError) as exc:
            self.errors += 1
            raise CodecError("decode", f"{self._name}: {exc}") from exc
        pictures = [Picture.from_frame(f) for f in frames if isinstance(f, av.VideoFrame)]
        self.decoded += len(pictures)
        return pictures


class PyAvVideoEncoder:
    """x264 or libvpx for one outgoing stream, real-time settings (see the module doc)."""

    def __init__(
        self,
        name: str,
        width: int,
        height: int,
        *,
        fps: int,
        bitrate: int,
        options: Mapping[str, str],
    ) -> None:
        ctx = av.CodecContext.create(name, "w")
        if not isinstance(ctx, VideoCodecContext):
            raise CodecError("encoder", f"{name} is not a video encoder")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = Fraction(1, fps)
        ctx.framerate = Fraction(fps, 1)
        ctx.bit_rate = bitrate
        ctx.gop_size = fps * 10
        ctx.options = dict(options)
        self._ctx = ctx
        self._pts = 0
        self.width, self.height = width, height

    def encode(self, picture: Picture, *, keyframe: bool = False) -> list[bytes]:
        if (picture.width, picture.height) != (self.width, self.height):
            raise CodecError("picture_size", f"{picture.width}x{picture.height}")
        frame = picture.to_frame()
        frame.pts = self._pts
        self._pts += 1
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        try:
            return [bytes(p) for p in self._ctx.encode(frame)]
        except (av.FFmpegError, ValueError) as exc:
            raise CodecError("encode", str(exc)) from exc


class H264Codec:
    """H.264 (RFC 6184): FFmpeg decodes, x264 encodes Constrained Baseline."""

    def __init__(self, fmtp: Fmtp) -> None:
        self._spec = VideoCodecSpec("H264", VIDEO_CLOCK, fmtp)

    @classmethod
    def from_offer(cls, clock_rate: int, fmtp: Fmtp) -> H264Codec | None:
        """The codec for an offered format; the profile and level rules of RFC 6184 8.2.2
        are the SDP layer's (:func:`avatar_mf.rtp.h264.answer_h264_fmtp`)."""
        if clock_rate != VIDEO_CLOCK or fmtp.get("packetization-mode", "0") not in ("0", "1"):
            return None
        return cls(fmtp)

    @property
    def spec(self) -> VideoCodecSpec:
        return self._spec

    def decoder(self) -> PyAvVideoDecoder:
        return PyAvVideoDecoder("h264")

    def encoder(
        self,
        width: int,
        height: int,
        *,
        fps: int = DEFAULT_FPS,
        bitrate: int = DEFAULT_BITRATE,
        max_nal_size: int | None = None,
        level: str | None = None,
    ) -> PyAvVideoEncoder:
        """``level``: the H.264 level the stream declares ("3.1", "1b"; the caller keeps the
        picture within it, RFC 6184 profile-level-id)."""
        params = "repeat-headers=1:aud=0"
        if level is not None:
            params += f":level={level}"
        if max_nal_size is not None:
            params += f":slice-max-size={max_nal_size}"
        if self._spec.fmtp.get("packetization-mode", "0") == "0" and max_nal_size is None:
            params += ":slice-max-size=1200"
        options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "x264-params": params,
        }
        return PyAvVideoEncoder("libx264", width, height, fps=fps, bitrate=bitrate, options=options)


class Vp8Codec:
    """VP8 (RFC 7741): FFmpeg's ``vp8`` decodes, libvpx encodes in real-time mode."""

    def __init__(self, fmtp: Fmtp) -> None:
        self._spec = VideoCodecSpec("VP8", VIDEO_CLOCK, fmtp)

    @classmethod
    def from_offer(cls, clock_rate: int, fmtp: Fmtp) -> Vp8Codec | None:
        return cls(fmtp) if clock_rate == VIDEO_CLOCK else None

    @property
    def spec(self) -> VideoCodecSpec:
        return self._spec

    def decoder(self) -> PyAvVideoDecoder:
        return PyAvVideoDecoder("vp8")

    def encoder(
        self, width: int, height: int, *, fps: int = DEFAULT_FPS, bitrate: int = DEFAULT_BITRATE
    ) -> PyAvVideoEncoder:
        options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        return PyAvVideoEncoder("libvpx", width, height, fps=fps, bitrate=bitrate, options=options)


#: A factory for one codec name: (clock_rate, fmtp) -> codec or None.
VideoFactory = Callable[[int, Fmtp], VideoCodec | None]


class VideoCodecRegistry(Registry[VideoCodecSpec, VideoCodec]):
    """The video codecs available on this host, in preference order (as the audio one)."""

    kind = "video"


def build_video_registry() -> VideoCodecRegistry:
    """The video registry for this host: every codec whose FFmpeg parts load."""
    factories: dict[str, tuple[VideoCodecSpec, VideoFactory]] = {}
    unavailable: dict[str, str] = {}
    candidates: tuple[
        tuple[str, tuple[tuple[str, Literal["r", "w"]], ...], VideoCodecSpec, VideoFactory], ...
    ] = (
        (
            "H264",
            (("h264", "r"), ("libx264", "w")),
            VideoCodecSpec("H264", VIDEO_CLOCK, Fmtp({"profile-level-id": "42e01f"})),
            H264Codec.from_offer,
        ),
        (
            "VP8",
            (("vp8", "r"), ("libvpx", "w")),
            VideoCodecSpec("VP8"),
            Vp8Codec.from_offer,
        ),
    )
    for name, parts, spec, factory in candidates:
        missing = pyav_codecs_missing(*parts)
        if missing:
            unavailable[name] = missing
        else:
            factories[name] = (spec, factory)
    return VideoCodecRegistry(factories, unavailable)


@cache
def default_video_registry() -> VideoCodecRegistry:
    """The process's video registry, built on first use."""
    return build_video_registry()


def supported_video() -> tuple[VideoCodecSpec, ...]:
    """The video formats the MF serves, in its preference order."""
    return default_video_registry().supported()


def video_codec(name: str, clock_rate: int, fmtp: Mapping[str, str]) -> VideoCodec | None:
    """The codec for one offered video format, or ``None`` when the MF cannot serve it."""
    return default_video_registry().codec(name, clock_rate, fmtp)
