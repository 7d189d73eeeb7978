"""Sending video to one receiver: pace, encode in the worker pool, packetize, RTP (RFC 3550).

The network-rendered avatar (TR 26.813 D.4 alternative 1, for TS 26.264 ``avatar-assisted``
receivers) reaches a call's video stream through a :class:`VideoSender`: it reads rendered
frames (:class:`FrameReader`, newest wins: the renderer never waits for a receiver), and for
each frame it keeps (:class:`SendPacer`) it converts RGBA to I420, encodes in the codec the
receiver negotiated and packetizes (:class:`EncodeJob`, **in the worker pool**, never on the
event loop: ~2-3 ms per 512x512 frame), then sends the packets through the stream
(:meth:`~avatar_mf.media.video_stream.VideoStream.send_unit`).

* **Pacing and skipping** (:class:`SendPacer`, sans-IO): at most ``rate`` frames per second
  (a frame due less than 3/4 of a period after the last one sent is skipped, ``rate``); a
  frame older than :data:`MAX_AGE_PERIODS` periods when its turn comes is skipped (``late``);
  while an encode of this receiver is running, newer frames replace each other in the reader
  and only the newest is encoded next (the reader counts the replaced ones); while the
  receiver's socket still holds more than :data:`MAX_BACKLOG` bytes of earlier packets the
  OS could not send yet, frames are skipped (``congested``). Nothing queues:
  a slow receiver or a busy pool costs that receiver frames, never the renderer, the pool's
  other jobs or the other receivers.
* **Key frames**: the first frame, the first after an encoder failure or a hold, and the next
  frame after an RTCP PLI (RFC 4585 6.3.1) or FIR (RFC 5104 4.3.1) from the receiver are
  encoded as key frames (IDR with SPS/PPS in front for H.264; a VP8 key frame); several
  requests before that frame make one key frame.
* **H.264** (RFC 6184): x264 Constrained Baseline (a subset every H.264 profile's decoder
  takes, whatever ``profile-level-id`` profile was answered), at the answered level: the
  picture is scaled down when the level's MaxFS or MaxMBPS (H.264 table A-1) cannot carry it
  at ``rate`` (:func:`fit_to_level`); ``packetization-mode`` 0 makes x264 cut slices to one
  packet and the packetizer send single NAL units, mode 1 uses STAP-A and FU-A. **VP8**: RFC
  7741 with a 15-bit PictureID.
* **RTP time** (lip-sync, docs/media.md): a frame made for clock time ``t`` (the renderer's
  :attr:`~FrameLike.time`) carries RTP timestamp ``base + round(t * 90000)``; the stream's
  RTCP SR pairs the shared media wall clock with that same mapping, so a receiver aligns the
  video with the session's speech audio by their SRs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import av
import numpy as np
from numpy.typing import NDArray

from avatar_mf.clock import Clock, sleep
from avatar_mf.codecs.base import CodecError
from avatar_mf.codecs.video import VIDEO_CLOCK, H264Codec, Picture, VideoCodec, VideoEncoder
from avatar_mf.rtp.errors import RtpError
from avatar_mf.rtp.h264 import H264Packetizer, PacketizationMode, ProfileLevelId
from avatar_mf.rtp.vp8 import Vp8Packetizer

log = logging.getLogger(__name__)

#: A frame older than this many frame periods when its turn comes is skipped.
MAX_AGE_PERIODS = 2.0
#: Bytes waiting in the receiver's socket buffer past which frames are skipped.
MAX_BACKLOG = 64 * 1024
#: RTP payload size bound (fits a 1280-octet IPv6 minimum MTU with headers).
MTU = 1200
#: H.264 table A-1: level_idc -> (MaxFS in macroblocks, MaxMBPS macroblocks per second).
H264_LEVELS: dict[int, tuple[int, int]] = {
    9: (99, 1485), 10: (99, 1485), 11: (396, 3000), 12: (396, 6000), 13: (396, 11880),
    20: (396, 11880), 21: (792, 19800), 22: (1620, 20250), 30: (1620, 40500),
    31: (3600, 108000), 32: (5120, 216000), 40: (8192, 245760), 41: (8192, 245760),
    42: (8704, 522240), 50: (22080, 589824), 51: (36864, 983040), 52: (36864, 2073600),
}

Runner = Callable[[Callable[[], Any]], Awaitable[Any]]


class FrameLike(Protocol):
    """A rendered picture: (height, width, 4) RGBA, for clock time ``time``."""

    @property
    def rgba(self) -> NDArray[np.uint8]: ...

    @property
    def time(self) -> float: ...


class FrameReader(Protocol):
    """Newest-wins frames of one avatar (``avatar_mf.stages.animation.video.VideoReader``)."""

    skipped: int

    async def next(self) -> FrameLike | None: ...

    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...


class UnitSink(Protocol):
    """Where the packets go: :class:`~avatar_mf.media.video_stream.VideoStream`."""

    closed: bool
    sends: bool

    def send_unit(
        self, payloads: list[bytes], timestamp: int, content_time: float, now: float,
        *, keyframe: bool = False,
    ) -> None: ...


# --- sans-IO: which frames go out ----------------------------------------------------------


@dataclass
class SenderStats:
    """One receiver's sending figures (the end record, ``/metrics``)."""

    frames_out: int = 0
    keyframes_out: int = 0
    #: Frames not sent, by reason: ``rate``, ``late``, ``error`` (an encoder failure).
    skipped_rate: int = 0
    skipped_late: int = 0
    skipped_congested: int = 0
    encode_errors: int = 0
    #: PLI + FIR that asked for a key frame.
    keyframe_requests: int = 0


@dataclass(frozen=True, slots=True)
class Send:
    """Send this frame (``keyframe``: as a key frame)."""

    keyframe: bool


class SendPacer:
    """Which rendered frames one receiver gets, and which are key frames (module docs)."""

    def __init__(self, rate: float) -> None:
        if not 0 < rate <= 120:
            raise ValueError(f"rate must be 0..120 frames per second, not {rate!r}")
        self.period = 1.0 / rate
        self.stats = SenderStats()
        self._last_sent: float | None = None
        self._key_wanted = True

    def decide(self, frame_time: float, now: float) -> Send | None:
        """The frame made for ``frame_time`` is this receiver's next (at clock ``now``):
        send it (and how), or None: skip it (counted)."""
        if now - frame_time > MAX_AGE_PERIODS * self.period:
            self.stats.skipped_late += 1
            return None
        if self._last_sent is not None and frame_time - self._last_sent < 0.75 * self.period:
            self.stats.skipped_rate += 1
            return None
        self._last_sent = frame_time
        keyframe, self._key_wanted = self._key_wanted, False
        return Send(keyframe)

    def sent(self, keyframe: bool) -> None:
        self.stats.frames_out += 1
        self.stats.keyframes_out += int(keyframe)

    def failed(self) -> None:
        """The encode failed: count it, and start again from a key frame."""
        self.stats.encode_errors += 1
        self._key_wanted = True

    def restart(self) -> None:
        """Sending resumes (after a hold): the next frame sent is a key frame."""
        self._key_wanted = True

    def request_keyframe(self) -> None:
        """A PLI or FIR from the receiver: the next frame sent is a key frame."""
        self.stats.keyframe_requests += 1
        self._key_wanted = True


# --- the encode job (runs in the worker pool) ----------------------------------------------


def fit_to_level(width: int, height: int, rate: float, level_idc: int) -> tuple[int, int]:
    """The largest even size, same aspect, not above ``width`` x ``height``, that H.264 level
    ``level_idc`` carries at ``rate`` frames per second (table A-1 MaxFS and MaxMBPS)."""
    max_fs, max_mbps = H264_LEVELS.get(level_idc, H264_LEVELS[31])
    budget = min(max_fs, max_mbps / max(rate, 1.0))
    scale = 1.0
    while True:
        w = max(16, int(width * scale) & ~1)
        h = max(16, int(height * scale) & ~1)
        if math.ceil(w / 16) * math.ceil(h / 16) <= budget or w <= 16 or h <= 16:
            return w, h
        scale *= 0.95


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    payloads: list[bytes]
    keyframe: bool


class EncodeJob:
    """RGBA -> I420 -> encoder -> RTP payloads for one receiver; one job at a time (the
    sender awaits each), so the encoder and packetizer need no lock."""

    def __init__(
        self, codec: VideoCodec, fmtp: dict[str, str], *, rate: float, bitrate: int
    ) -> None:
        self.codec = codec
        self.name = codec.spec.name.upper()
        self.rate = rate
        self.bitrate = bitrate
        self.level_idc: int | None = None
        mode: PacketizationMode = 1
        if self.name == "H264":
            mode = 1 if fmtp.get("packetization-mode", "0") == "1" else 0
            try:
                self.level_idc = ProfileLevelId.parse(
                    fmtp.get("profile-level-id", "42e01f")
                ).level_idc
            except RtpError:
                self.level_idc = 31
        self.packetizer: H264Packetizer | Vp8Packetizer = (
            H264Packetizer(mode=mode, mtu=MTU) if self.name == "H264" else Vp8Packetizer(mtu=MTU)
        )
        self._encoder: VideoEncoder | None = None
        self.size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> VideoEncoder:
        if self.level_idc is not None:
            width, height = fit_to_level(width, height, self.rate, self.level_idc)
        self.size = (width, height)
        fps = max(1, round(self.rate))
        if self.name == "H264":
            level = f"{self.level_idc / 10:.1f}" if self.level_idc not in (None, 9) else "1b"
            if isinstance(self.codec, H264Codec):
                return self.codec.encoder(
                    width, height, fps=fps, bitrate=self.bitrate, level=level
                )
        return self.codec.encoder(width, height, fps=fps, bitrate=self.bitrate)

    def __call__(self, rgba: NDArray[np.uint8], keyframe: bool) -> EncodedFrame:
        height, width = int(rgba.shape[0]), int(rgba.shape[1])
        if self._encoder is None:
            self._encoder = self._open(width & ~1, height & ~1)
            keyframe = True
        assert self.size is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba[:, :, :3]), format="rgb24")
        frame = frame.reformat(width=self.size[0], height=self.size[1], format="yuv420p")
        units = self._encoder.encode(Picture.from_frame(frame), keyframe=keyframe)
        payloads: list[bytes] = []
        for unit in units:
            payloads.extend(self.packetizer.packetize(unit))
        return EncodedFrame(payloads, keyframe)


# --- the asyncio driver --------------------------------------------------------------------


class VideoSender:
    """Frames of ``pick()``'s reader to ``sink`` (see the module docstring).

    ``pick`` returns the reader of the avatar this receiver is shown now (None: nothing to
    show yet; asked again every ``poll`` seconds and whenever the reader closes).
    """

    def __init__(
        self,
        sink: UnitSink,
        job: EncodeJob,
        pick: Callable[[], FrameReader | None],
        *,
        clock: Clock,
        rate: float,
        runner: Runner | None,
        rtp_base: int,
        poll: float = 0.2,
        backlog: Callable[[], int] | None = None,
    ) -> None:
        """``backlog``: bytes waiting unsent in the receiver's socket (the transport's write
        buffer), if known."""
        self.sink = sink
        self.job = job
        self.pick = pick
        self.clock = clock
        self.pacer = SendPacer(rate)
        self.runner = runner
        self.rtp_base = rtp_base & 0xFFFFFFFF
        self.poll = poll
        self.backlog = backlog
        self._held = False
        self.reader: FrameReader | None = None
        #: Frames the readers replaced before this sender took them (receiver or pool busy).
        self.replaced = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def stats(self) -> SenderStats:
        return self.pacer.stats

    @property
    def skipped(self) -> int:
        s = self.pacer.stats
        return (
            self.replaced_total + s.skipped_rate + s.skipped_late + s.skipped_congested
            + s.encode_errors
        )

    @property
    def replaced_total(self) -> int:
        """Frames the readers replaced before this sender could take them."""
        return self.replaced + (self.reader.skipped if self.reader is not None else 0)

    def rtp_timestamp(self, frame_time: float) -> int:
        """The RTP timestamp of a frame made for clock time ``frame_time``."""
        return (self.rtp_base + round(frame_time * VIDEO_CLOCK)) & 0xFFFFFFFF

    def request_keyframe(self) -> None:
        self.pacer.request_keyframe()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="video sender")

    async def run(self) -> None:
        while not self.sink.closed:
            reader = self.reader
            if reader is None or reader.closed:
                self._drop_reader()
                reader = self.reader = self.pick()
                if reader is None:
                    await sleep(self.clock, self.poll)
                    continue
            try:
                frame = await asyncio.wait_for(reader.next(), self.poll)
            except TimeoutError:
                continue
            if frame is None:
                continue
            await self.send(frame)

    async def send(self, frame: FrameLike) -> bool:
        """Pace, encode and send one frame; True when it went out."""
        now = self.clock.now()
        if not self.sink.sends:  # on hold (a re-offer made the line sendonly or inactive)
            self._held = True
            return False
        if self._held:
            self._held = False
            self.pacer.restart()
        if self.backlog is not None and self.backlog() > MAX_BACKLOG:
            self.pacer.stats.skipped_congested += 1
            return False
        decision = self.pacer.decide(frame.time, now)
        if decision is None:
            return False
        job = self.job
        rgba, keyframe = frame.rgba, decision.keyframe
        try:
            if self.runner is not None:
                encoded: EncodedFrame = await self.runner(lambda: job(rgba, keyframe))
            else:
                encoded = job(rgba, keyframe)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a codec error, the pool full: this frame is lost
            if self.pacer.stats.encode_errors == 0 and not isinstance(exc, CodecError):
                log.warning("video sender: encoding failed: %r", exc)
            self.pacer.failed()
            return False
        if self.sink.closed or not encoded.payloads:
            return False
        self.sink.send_unit(
            encoded.payloads, self.rtp_timestamp(frame.time), frame.time, self.clock.now(),
            keyframe=encoded.keyframe,
        )
        self.pacer.sent(encoded.keyframe)
        return True

    def _drop_reader(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None:
            self.replaced += reader.skipped
            reader.close()

    def stop(self) -> None:
        """Stop sending now (the stream closes): the task is cancelled, the reader let go."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self._drop_reader()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drop_reader()
