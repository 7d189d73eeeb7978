"""The video of one call: executes the video part of an answer plan (``sdp.video``).

For each accepted video m-line (:class:`~avatar_mf.sdp.video.VideoPlan`) it binds an RTP socket
pair from the node's port range (the audio plane's: one range, one socket ledger, so
``/stats`` ``held`` counts video sockets too), builds the stream
(:class:`~avatar_mf.media.video_stream.VideoStream`) and a decoder of the negotiated codec
(:mod:`avatar_mf.codecs.video`), and runs one task per stream that decodes the stream's units
**in the node's media worker pool** (a 640x480 picture costs about a millisecond to decode:
never on the event loop), hands every picture to the plane's ``sink`` (the call's avatar
session, as :class:`~avatar_mf.pipeline.frames.VideoIn` frames) and sends the stream's
periodic RTCP. A decoder that falls behind (more than :data:`QUEUE_LIMIT` units waiting) drops
what waits and asks for a key frame. A re-offer keeps, replaces or closes streams as for audio;
:meth:`CallVideo.close` (BYE, CANCEL, failure) releases sockets, tasks and decoders.

Sending (the network-rendered avatar, TR 26.813 D.4 alternative 1): for a stream the MF sends
on (the UE offered ``sendrecv`` or ``recvonly``) and a plane with a ``picker`` (the node wires
it: which avatar's rendered frames this call's receiver is shown, or None), a
:class:`~avatar_mf.media.video_sender.VideoSender` reads those frames, encodes them in the
negotiated codec in the plane's ``encode_runner`` (a worker pool), packetizes and sends them;
a PLI or FIR from the UE makes its next frame a key frame. A stream nobody picks sends RTCP
only. A video stream that receives and stays silent for ``limits.rtp_timeout`` calls
``on_timeout`` (the call layer ends a call that has no audio with "media timeout").

WebRTC video (a :class:`~avatar_mf.sdp.video.VideoPlan` ``bundled`` with the data channel,
:mod:`avatar_mf.sdp.webrtc_video`) binds no socket: its stream reads and writes an
:class:`~avatar_mf.media.srtp_path.SrtpPath` carrying its payload type, which
:meth:`CallVideo.attach_bundle` puts on the data channel's DTLS transport (SRTP keyed by that
handshake, RFC 5764; RTP/RTCP routed to it by payload type and SSRC, RFC 8843 9.2). Decoding,
sending and PLI/FIR (arriving as SRTCP) are the same as for IMS video.

:class:`RegistryVideoCaps` joins the video codec registry with the payload formats' answer
rules (H.264 RFC 6184 8.2.2, :func:`avatar_mf.rtp.h264.answer_h264_fmtp`) for the SDP planner.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from avatar_mf.calls.streams import (
    Transport,
    any_bundled,
    apply_plans,
    attach_bundle,
    open_transport,
    start_stream,
)
from avatar_mf.clock import Clock
from avatar_mf.codecs.base import CodecError
from avatar_mf.codecs.video import (
    Picture,
    VideoCodecRegistry,
    VideoDecoder,
    default_video_registry,
)
from avatar_mf.media.audio_stream import MediaLimits
from avatar_mf.media.rtp_ports import PortRange, PortsExhausted
from avatar_mf.media.session import DataChannelSession
from avatar_mf.media.sockets import SocketLedger
from avatar_mf.media.srtp_path import SrtpPath
from avatar_mf.media.video_sender import EncodeJob, FrameReader, VideoSender
from avatar_mf.media.video_stream import VIDEO_LIMITS, EncodedUnit, VideoStream
from avatar_mf.rtp.h264 import answer_h264_fmtp
from avatar_mf.sdp.video import VideoPlan

log = logging.getLogger(__name__)

#: Units waiting for the decoder past which the queue is dropped (and a key frame asked for).
QUEUE_LIMIT = 8
#: How often the stream task wakes without units (RTCP is due every ~5 s).
POLL_SECONDS = 0.5

Runner = Callable[[Callable[[], Any]], Awaitable[Any]]


def enqueue_for_decoding(queue: asyncio.Queue[EncodedUnit], unit: EncodedUnit) -> int:
    """Queue ``unit`` for the stream's decoder; return how many units are dropped instead.

    A full queue (the decoder fell behind by :data:`QUEUE_LIMIT` units) is emptied: what
    waits is stale, and the units after it cannot be decoded without their references. A
    key frame starts the queue again; any other unit is dropped with them (the caller asks
    the UE for a key frame and the stream holds back units until one arrives)."""
    try:
        queue.put_nowait(unit)
        return 0
    except asyncio.QueueFull:
        dropped = queue.qsize()
        while not queue.empty():
            queue.get_nowait()
        if unit.keyframe:
            queue.put_nowait(unit)
            return dropped
        return dropped + 1
#: Decoded pictures: (call id, picture, RTP timestamp, from a key frame).
VideoSink = Callable[[str, Picture, int, bool], None]
#: Which rendered avatar a call's receiver is shown: call id -> a reader of its frames, or None.
VideoPicker = Callable[[str], FrameReader | None]


def _unsent(sockets: Transport) -> int:
    """Bytes the RTP socket's transport holds that the OS has not taken yet (0: unknown)."""
    if isinstance(sockets, SrtpPath):
        return 0  # the ICE transport's socket is not the stream's to watch
    size = getattr(sockets.rtp, "get_write_buffer_size", None)  # selector and uvloop UDP
    return int(size()) if size is not None else 0


class RegistryVideoCaps:
    """:class:`~avatar_mf.sdp.video.VideoCapabilities` from the video codec registry."""

    def __init__(self, registry: VideoCodecRegistry | None = None) -> None:
        self._registry = registry

    @property
    def registry(self) -> VideoCodecRegistry:
        return self._registry if self._registry is not None else default_video_registry()

    def preference(self) -> Sequence[str]:
        return [spec.name for spec in self.registry.supported()]

    def answer_fmtp(
        self, name: str, clock_rate: int, fmtp: Mapping[str, str]
    ) -> Mapping[str, str] | None:
        if self.registry.codec(name, clock_rate, fmtp) is None:
            return None
        if name.upper() == "H264":
            return answer_h264_fmtp(fmtp)
        return {}  # VP8: RFC 7741 6.1, nothing to answer


@dataclass
class VideoPlane:
    """What the node shares with every call's video."""

    clock: Clock
    host: str
    ports: PortRange
    ledger: SocketLedger
    runner: Runner | None = None
    caps: RegistryVideoCaps = field(default_factory=RegistryVideoCaps)
    sink: VideoSink | None = None
    drops: Counter[str] = field(default_factory=Counter)
    rng: random.Random = field(default_factory=random.Random)
    open_streams: int = 0
    streams_opened: int = 0
    #: Node-wide totals of closed and open streams' video counters (decoded, units ...).
    closed_totals: Counter[str] = field(default_factory=Counter)
    calls: set[CallVideo] = field(default_factory=set)
    #: Sending: who is shown what (None: the MF sends no video), the encoders' pool, the
    #: frame rate cap and bit rate, and the clock -> wall time mapping of the RTCP SRs.
    picker: VideoPicker | None = None
    encode_runner: Runner | None = None
    send_rate: float = 25.0
    bitrate: int = 600_000
    wallclock: Callable[[float], float] | None = None
    limits: MediaLimits = VIDEO_LIMITS

    def totals(self) -> Counter[str]:
        totals = Counter(self.closed_totals)
        for call in self.calls:
            for live in call.live.values():
                totals.update(_figures(live.stream, live.sender))
        return totals


def _figures(stream: VideoStream, sender: VideoSender | None) -> dict[str, int]:
    v = stream.video
    return {
        "frames_out": v.frames_out,
        "keyframes_out": v.keyframes_out,
        "packets_out": stream.stats.packets_out if v.frames_out else 0,
        "skipped_out": sender.skipped if sender is not None else 0,
        "packets_in": stream.stats.packets_in,
        "units": v.units,
        "decoded": v.decoded,
        "decode_errors": v.decode_errors,
        "skipped": v.skipped,
        "pli_in": v.pli_in,
        "fir_in": v.fir_in,
        "pli_out": v.pli_out,
        "fir_out": v.fir_out,
    }


@dataclass(frozen=True, slots=True)
class VideoRecord:
    """One video stream's figures for the call's end record."""

    codec: str
    packets_in: int
    lost: int
    units: int
    keyframes: int
    decoded: int
    decode_errors: int
    skipped: int
    keyframe_requests_in: int
    keyframe_requests_out: int
    drops: int
    frames_out: int = 0
    keyframes_out: int = 0
    packets_out: int = 0
    #: Rendered frames this receiver did not get (it or the pool behind, the rate cap).
    skipped_out: int = 0
    #: Units dropped undecoded because the decoder fell behind (:func:`enqueue_for_decoding`):
    #: ``units`` = ``decoded`` + ``decode_errors`` + ``skipped`` + ``decode_overflow`` (+ units
    #: still queued when the call ended).
    decode_overflow: int = 0


@dataclass
class _Live:
    plan: VideoPlan
    stream: VideoStream
    sockets: Transport
    decoder: VideoDecoder
    queue: asyncio.Queue[EncodedUnit]
    task: asyncio.Task[None] | None = None
    sender: VideoSender | None = None
    timed_out: bool = False


class CallVideo:
    """The video streams of one call (see the module docstring)."""

    def __init__(
        self, plane: VideoPlane, call_id: str, on_timeout: Callable[[], None] | None = None
    ) -> None:
        self._plane = plane
        self.call_id = call_id
        self._on_timeout = on_timeout
        self.live: dict[int, _Live] = {}
        self.records: list[VideoRecord] = []
        self._closed = False
        plane.calls.add(self)

    async def apply(self, plans: Sequence[VideoPlan]) -> tuple[dict[int, int], list[VideoPlan]]:
        """Open, keep or replace the streams for ``plans``; returns the RTP port of each
        index and the plans that could not be served (no port): port 0."""
        return await apply_plans(
            self.live,
            plans,
            open_stream=self._open,
            close_stream=self._close_stream,
            no_port=lambda exc: log.warning(
                "call %s: no RTP port for video: %s", self.call_id, exc
            ),
            kept=self._start_sender,
        )

    def attach_bundle(self, dc: DataChannelSession) -> None:
        """Put the WebRTC video streams (BUNDLEd with the data channel) on ``dc``'s DTLS
        transport: their SRTP flows once its handshake is done (``media.srtp_path``)."""
        attach_bundle(self.live.values(), dc)

    @staticmethod
    def bundled(plans: Sequence[VideoPlan]) -> bool:
        """Whether any of ``plans`` runs SRTP on the data channel's transport."""
        return any_bundled(plans)

    async def _open(self, plan: VideoPlan) -> int:
        plane = self._plane
        codec = plane.caps.registry.codec(plan.codec.name, plan.codec.clock_rate, plan.fmtp)
        if codec is None:
            raise PortsExhausted(f"codec {plan.codec.name} vanished")  # not reachable
        sockets = await open_transport(plan, plane, plan.payload_types)
        clock = plane.clock
        queue: asyncio.Queue[EncodedUnit] = asyncio.Queue(QUEUE_LIMIT)
        stream = start_stream(
            VideoStream,
            plan,
            sockets,
            plane,
            samples_per_frame=plan.codec.clock_rate // 25,
            offered_fmtp=plan.codec.params,
            feedback=plan.feedback,
        )
        live = _Live(plan, stream, sockets, codec.decoder(), queue)
        self._start_sender(live)

        def on_unit(unit: EncodedUnit) -> None:
            dropped = enqueue_for_decoding(queue, unit)
            if dropped:
                stream.video.decode_overflow += dropped
                if not unit.keyframe:
                    stream.need_keyframe(clock.now())

        stream.on_unit = on_unit
        live.task = asyncio.get_running_loop().create_task(
            self._run(live), name=f"video {self.call_id} m={plan.index}"
        )
        self.live[plan.index] = live
        plane.open_streams += 1
        plane.streams_opened += 1
        return sockets.port

    def _start_sender(self, live: _Live) -> None:
        """Send the picked avatar on a stream the MF sends on (once per stream)."""
        plane, plan = self._plane, live.plan
        if live.sender is not None or plane.picker is None or not plan.sends:
            return
        codec = plane.caps.registry.codec(plan.codec.name, plan.codec.clock_rate, plan.fmtp)
        if codec is None:
            return
        job = EncodeJob(codec, plan.fmtp, rate=plane.send_rate, bitrate=plane.bitrate)
        sockets = live.sockets
        picker, call_id = plane.picker, self.call_id
        sender = VideoSender(
            live.stream,
            job,
            lambda: picker(call_id),
            clock=plane.clock,
            rate=plane.send_rate,
            runner=plane.encode_runner,
            rtp_base=plane.rng.getrandbits(32),
            backlog=lambda: _unsent(sockets),
        )
        live.stream.on_keyframe_request = sender.request_keyframe
        live.sender = sender
        sender.start()

    async def _run(self, live: _Live) -> None:
        """Decode the stream's units in the worker pool, in order; send RTCP when due."""
        plane, stream = self._plane, live.stream
        while not stream.closed:
            try:
                unit = await asyncio.wait_for(live.queue.get(), POLL_SECONDS)
            except TimeoutError:
                unit = None
            now = plane.clock.now()
            stream.rtcp_due(now)
            if not live.timed_out and stream.timed_out(now):
                live.timed_out = True
                log.info(
                    "call %s: no video RTP for %.0f s", self.call_id, stream.limits.rtp_timeout
                )
                if self._on_timeout is not None:
                    self._on_timeout()
            if unit is None:
                continue
            job = functools.partial(live.decoder.decode, unit.data)
            try:
                if plane.runner is not None:
                    pictures: list[Picture] = await plane.runner(job)
                else:
                    pictures = job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bad unit, the pool full: wait for a key frame
                stream.video.decode_errors += 1
                if stream.video.decode_errors == 1 and not isinstance(exc, CodecError):
                    log.warning("call %s: video decode failed: %s", self.call_id, exc)
                stream.need_keyframe(plane.clock.now())
                continue
            sink = plane.sink
            for picture in pictures:
                stream.video.decoded += 1
                if sink is not None:
                    sink(self.call_id, picture, unit.timestamp, unit.keyframe)

    @staticmethod
    def _record(live: _Live) -> VideoRecord:
        stream = live.stream
        v = stream.video
        return VideoRecord(
            codec=f"{live.plan.codec.name}/{live.plan.codec.clock_rate}",
            packets_in=stream.stats.packets_in,
            lost=stream.stats.lost,
            units=v.units,
            keyframes=v.keyframes,
            decoded=v.decoded,
            decode_errors=v.decode_errors,
            skipped=v.skipped,
            keyframe_requests_in=v.keyframe_requests,
            keyframe_requests_out=v.pli_out + v.fir_out,
            drops=sum(stream.stats.drops.values()),
            frames_out=v.frames_out,
            keyframes_out=v.keyframes_out,
            packets_out=stream.stats.packets_out,
            skipped_out=live.sender.skipped if live.sender is not None else 0,
            decode_overflow=v.decode_overflow,
        )

    def summary(self) -> list[VideoRecord]:
        """Every video stream of the call, closed ones first (for the end record)."""
        return [*self.records, *(self._record(live) for live in self.live.values())]

    def streams(self) -> list[VideoStream]:
        return [live.stream for live in self.live.values()]

    def _close_stream(self, index: int) -> None:
        live = self.live.pop(index, None)
        if live is None:
            return
        self.records.append(self._record(live))
        self._plane.closed_totals.update(_figures(live.stream, live.sender))
        live.stream.close()
        live.sockets.close()
        if live.task is not None:
            live.task.cancel()
        if live.sender is not None:
            live.sender.stop()
        self._plane.open_streams -= 1

    def close(self) -> None:
        self._closed = True
        for index in list(self.live):
            self._close_stream(index)
        self._plane.calls.discard(self)
