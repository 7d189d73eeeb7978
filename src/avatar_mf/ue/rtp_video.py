"""The test UE's IMS-style video: an ``m=video ... RTP/AVPF`` line and a camera of test pictures.

:class:`UeVideo` binds one UDP socket (RTP and RTCP muxed: ``a=rtcp-mux`` is offered), writes
the offer's video m-line for its codecs (H.264 Constrained Baseline 3.1 packetization-mode 1,
payload type 98, and/or VP8, payload type 100; ``nack``, ``nack pli``, ``ccm fir`` feedback),
and once the answer names the codec sends ``count`` pictures at ``fps`` (a moving test
pattern, or the ``pictures`` given, in a loop), encoded by the product's codecs
(:mod:`avatar_mf.codecs.video`) and packetized by its payload formats (RFC 6184, RFC 7741). A
PLI or FIR from the MF makes the next picture a key frame (counted in
:attr:`UeVideo.keyframe_requests`).

Receiving (the MF's network-rendered avatar, TR 26.813 D.4 alternative 1): RTP from the MF is
depacketized as it arrives (:attr:`UeVideo.units`: each access unit / frame with its RTP
timestamp and arrival time); the UE sends RTCP PLI (RFC 4585 6.3.1) when the first packet
arrives and after a lost packet (at most every 0.5 s), and keeps the MF's RTCP SRs
(:attr:`UeVideo.sender_reports`: RTP time -> the MF's wall clock, for lip-sync).
:meth:`UeVideo.received_pictures` decodes what arrived (PyAV), :meth:`UeVideo.frame_rate`
measures the arrival rate, :func:`avatar_mf.ue.video_file.save_mp4` writes it as MP4. With
``count=0`` the UE sends no pictures and offers ``recvonly``.

WebRTC style (``webrtc=True``, ``avatar-mf ue call --webrtc-video``): no socket; the m-line is
``UDP/TLS/RTP/SAVPF`` with ``a=mid:video`` and rtcp-mux, which
:func:`avatar_mf.ue.offer.build_offer` BUNDLEs with the data channel (and the audio, RFC 8843);
the pictures, the PLIs and the MF's video and RTCP go through an
:class:`~avatar_mf.media.srtp_path.SrtpPath` carrying the UE's video payload types, attached
to the data channel's DTLS transport (SRTP keyed by its handshake, RFC 5764). Sending waits
for the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from avatar_mf.codecs.video import Picture, VideoEncoder, video_codec
from avatar_mf.media.srtp_path import BUNDLE_ADDRESS, SrtpPath
from avatar_mf.media.video_stream import EncodedUnit, depacketizer_for, unit_of
from avatar_mf.rtp.errors import RtpError
from avatar_mf.rtp.h264 import H264Packetizer
from avatar_mf.rtp.packet import RtpPacket, is_rtcp, parse_rtp
from avatar_mf.rtp.rtcp import (
    ReceiverReport,
    RtcpOther,
    SenderReport,
    parse_rtcp,
    serialize_rtcp,
)
from avatar_mf.rtp.vp8 import Vp8Packetizer
from avatar_mf.sdp.audio import offered_formats
from avatar_mf.sdp.model import Attribute, MediaDescription
from avatar_mf.ue.av_sync import SrMapping
from avatar_mf.ue.media_lines import OfferedPayload, offer_line
from avatar_mf.ue.rtp_audio import WEBRTC_PROTO, bind_udp

#: At most one PLI per this many seconds.
PLI_INTERVAL = 0.5

#: The payload types and fmtp the UE offers, by codec.
_FORMATS: dict[str, tuple[int, str]] = {
    "H264": (98, "profile-level-id=42e01f;packetization-mode=1"),
    "VP8": (100, ""),
}
#: The rtcp-fb values the UE offers for each (RFC 4585 4.2, RFC 5104 7.1).
_FEEDBACK = ("nack", "nack pli", "ccm fir")
#: The mid of the test UE's WebRTC video m-line.
WEBRTC_VIDEO_MID = "video"


def pattern_picture(index: int, width: int, height: int) -> Picture:
    """A moving test picture: colour bars, a sliding grey square, a block of seeded noise."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    for bar in range(8):
        img[:, bar * width // 8 : (bar + 1) * width // 8] = (
            255 * (bar & 1),
            255 * ((bar >> 1) & 1),
            255 * ((bar >> 2) & 1),
        )
    side = max(8, height // 6)
    x = (index * 4) % max(1, width - side)
    img[height // 2 - side // 2 : height // 2 + side // 2, x : x + side] = 128
    rng = np.random.default_rng(index)
    img[: height // 4, : width // 4] = rng.integers(0, 256, (height // 4, width // 4, 3))
    return Picture.from_rgb(img)


@dataclass(frozen=True, slots=True)
class ReceivedUnit:
    """One access unit / frame received from the MF."""

    timestamp: int
    arrival: float
    unit: EncodedUnit


class UeVideo:
    """See the module docstring."""

    def __init__(
        self,
        local_host: str = "127.0.0.1",
        *,
        codecs: Sequence[str] = ("H264",),
        width: int = 320,
        height: int = 240,
        fps: int = 25,
        count: int = 50,
        pictures: Sequence[Picture] = (),
        now: Callable[[], float] = time.monotonic,
        webrtc: bool = False,
    ) -> None:
        self.local_host = local_host
        self.webrtc = webrtc
        #: WebRTC style: SRTP on the data channel's transport (None for IMS style).
        self.srtp: SrtpPath | None = None
        self._keys = asyncio.Event()
        self._closed = False
        self.codecs = [c.upper() for c in codecs if c.upper() in _FORMATS]
        if not self.codecs:
            raise ValueError(f"none of the codecs {list(codecs)} is a UE video codec")
        self.width, self.height, self.fps, self.count = width, height, fps, count
        self.pictures = tuple(pictures)
        if any((p.width, p.height) != (width, height) for p in self.pictures):
            raise ValueError(f"every picture must be {width}x{height}")
        self.port = 0
        self.ssrc = random.getrandbits(32)
        self.codec: str | None = None
        self.packets_out = 0
        self.pictures_out = 0
        self.keyframes_out = 0
        self.rtcp_in = 0
        self.keyframe_requests = 0
        self._key_wanted = False
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: asyncio.Task[None] | None = None
        self._now = now
        # Receiving the MF's video.
        self._payload_type: int | None = None
        self._fmtp: dict[str, str] = {}
        self._remote: tuple[str, int] | None = None
        self._depacketizer: object | None = None
        self.remote_ssrc: int | None = None
        self._last_seq: int | None = None
        self._last_pli: float | None = None
        #: Units received, in arrival order.
        self.units: list[ReceivedUnit] = []
        self.packets_in = 0
        self.lost_in = 0
        self.pli_out = 0
        #: The MF's SRs for its video SSRC (latest last).
        self.sender_reports: list[SrMapping] = []

    async def open(self) -> int:
        if self.webrtc:
            if self.srtp is None:
                pts = frozenset(_FORMATS[name][0] for name in self.codecs)
                self.srtp = SrtpPath(payload_types=pts)
                self.srtp.on_rtp = self._received
                self.srtp.on_rtcp = self._received
                self.srtp.on_ready = self._keys.set
            return self.port
        self._transport, self.port = await bind_udp(self.local_host, self._received)
        return self.port

    @property
    def _open(self) -> bool:
        if self.webrtc:
            return not self._closed
        return self._transport is not None and not self._transport.is_closing()

    def _sendto(self, data: bytes, remote: tuple[str, int]) -> None:
        if self.srtp is not None:
            if is_rtcp(data):
                self.srtp.send_rtcp(data, remote)
            else:
                self.srtp.send_rtp(data, remote)
        elif self._transport is not None:
            self._transport.sendto(data, remote)

    def media(self) -> MediaDescription:
        """The offer's video m-line."""
        payloads = [
            OfferedPayload(_FORMATS[name][0], f"{name}/90000", _FORMATS[name][1], _FEEDBACK)
            for name in self.codecs
        ]
        return offer_line(
            "video",
            payloads,
            [Attribute("rtcp-mux"), Attribute("sendrecv" if self.count else "recvonly")],
            port=self.port,
            host=self.local_host,
            proto=WEBRTC_PROTO if self.webrtc else "RTP/AVPF",
            mid=WEBRTC_VIDEO_MID if self.webrtc else None,
        )

    def start(self, answer: MediaDescription, address: str) -> None:
        """The answer's video m-line (and its address): start sending pictures."""
        if answer.port == 0:
            return
        formats = offered_formats(answer)
        if not formats:
            raise ValueError("the answer's video m-line names no codec")
        chosen = formats[0]
        codec = video_codec(chosen.name, chosen.clock_rate, chosen.params)
        if codec is None:
            raise ValueError(f"{chosen.name} was chosen, which this UE cannot send")
        self.codec = chosen.name.upper()
        conn = answer.connection
        remote = (conn.address if conn is not None else address, answer.port)
        if self.webrtc:
            remote = BUNDLE_ADDRESS  # the data channel's transport
        self._payload_type = chosen.payload_type
        self._fmtp = dict(chosen.params)
        self._remote = remote
        self._depacketizer = depacketizer_for(self.codec, self._fmtp)
        if not self.count:
            return
        encoder = codec.encoder(self.width, self.height, fps=self.fps)
        self._sender = asyncio.get_running_loop().create_task(
            self._send_loop(chosen.payload_type, encoder, remote)
        )

    async def _send_loop(
        self, payload_type: int, encoder: VideoEncoder, remote: tuple[str, int]
    ) -> None:
        assert self._open
        loop = asyncio.get_running_loop()
        if self.srtp is not None:
            await self._keys.wait()  # SRTP keys come with the DTLS handshake
        packetizer: H264Packetizer | Vp8Packetizer = (
            H264Packetizer(mode=1) if self.codec == "H264" else Vp8Packetizer()
        )
        seq = random.getrandbits(16)
        ts = random.getrandbits(32)
        start = loop.time()
        for index in range(self.count):
            if not self._open:
                return
            keyframe, self._key_wanted = self._key_wanted, False
            if self.pictures:
                picture = self.pictures[index % len(self.pictures)]
            else:
                picture = pattern_picture(index, self.width, self.height)
            units = encoder.encode(picture, keyframe=keyframe)
            for unit in units:
                payloads = packetizer.packetize(unit)
                for i, payload in enumerate(payloads):
                    packet = RtpPacket(
                        payload_type, seq, ts, self.ssrc, payload, i == len(payloads) - 1
                    )
                    self._sendto(packet.serialize(), remote)
                    self.packets_out += 1
                    seq = (seq + 1) & 0xFFFF
            self.pictures_out += 1
            self.keyframes_out += int(keyframe or index == 0)
            ts = (ts + 90000 // self.fps) & 0xFFFFFFFF
            delay = start + (index + 1) / self.fps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    def _received(self, data: bytes, source: tuple[str, int]) -> None:
        if not is_rtcp(data):
            self._media(data)
            return
        try:
            packets = parse_rtcp(data, reduced_size=True)
        except RtpError:
            return
        self.rtcp_in += 1
        for packet in packets:
            if isinstance(packet, RtcpOther) and packet.packet_type == 206:
                if packet.count in (1, 4):  # PLI, FIR
                    self.keyframe_requests += 1
                    self._key_wanted = True
            elif isinstance(packet, SenderReport) and packet.ssrc == self.remote_ssrc:
                self.sender_reports.append(
                    SrMapping.of(packet.ntp_timestamp, packet.rtp_timestamp, 90000)
                )

    def _media(self, data: bytes) -> None:
        """An RTP packet of the MF's video: depacketized; PLI at the start and after a loss."""
        if self._depacketizer is None:
            return
        try:
            packet = parse_rtp(data)
        except RtpError:
            return
        if packet.payload_type != self._payload_type:
            return
        now = self._now()
        self.packets_in += 1
        first = self.remote_ssrc is None
        self.remote_ssrc = packet.ssrc
        lost = False
        if self._last_seq is not None:
            gap = (packet.sequence - self._last_seq) & 0xFFFF
            if 1 < gap < 0x8000:
                self.lost_in += gap - 1
                lost = True
        if self._last_seq is None or 0 < ((packet.sequence - self._last_seq) & 0xFFFF) < 0x8000:
            self._last_seq = packet.sequence
        try:
            out = self._depacketizer.push(  # type: ignore[attr-defined]
                packet.sequence, packet.timestamp, packet.marker, packet.payload
            )
        except RtpError:
            out = []
            lost = True
        for unit in out:
            encoded = unit_of(unit)
            self.units.append(ReceivedUnit(encoded.timestamp, now, encoded))
        if first or lost:
            self.send_pli(now)

    def send_pli(self, now: float | None = None) -> bool:
        """Ask the MF for a key frame (RFC 4585 6.3.1), at most every :data:`PLI_INTERVAL`."""
        now = self._now() if now is None else now
        if not self._open or self._remote is None or self.remote_ssrc is None:
            return False
        if self._last_pli is not None and now - self._last_pli < PLI_INTERVAL:
            return False
        self._last_pli = now
        pli = RtcpOther(206, 1, struct.pack("!II", self.ssrc, self.remote_ssrc))
        self._sendto(serialize_rtcp((ReceiverReport(self.ssrc, ()), pli)), self._remote)
        self.pli_out += 1
        return True

    def stop_reading(self) -> None:
        """Stop reading the socket (a receiver that fell behind: the kernel drops what comes)."""
        pause = getattr(self._transport, "pause_reading", None)  # selector and uvloop UDP
        if pause is not None:
            pause()

    # -- what was received ---------------------------------------------------------------

    @property
    def keyframes_in(self) -> int:
        return sum(1 for u in self.units if u.unit.keyframe)

    def frame_rate(self, since: float | None = None) -> float:
        """Frames per second of arrival (units from ``since`` on), first to last unit."""
        arrivals = [u.arrival for u in self.units if since is None or u.arrival >= since]
        if len(arrivals) < 2 or arrivals[-1] <= arrivals[0]:
            return 0.0
        return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])

    def received_pictures(self) -> list[tuple[int, Picture]]:
        """Every unit decoded in arrival order from the first key frame: (RTP timestamp,
        picture); a unit that does not decode is left out."""
        if self.codec is None:
            return []
        codec = video_codec(self.codec, 90000, self._fmtp)
        if codec is None:
            return []
        decoder = codec.decoder()
        out: list[tuple[int, Picture]] = []
        started = False
        for received in self.units:
            started = started or received.unit.keyframe
            if not started:
                continue
            try:
                pictures = decoder.decode(received.unit.data)
            except ValueError:
                continue
            out.extend((received.timestamp, p) for p in pictures)
        return out

    async def done(self) -> None:
        """Wait until every picture has been sent."""
        if self._sender is not None:
            await asyncio.shield(self._sender)

    async def close(self) -> None:
        self._closed = True
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self.srtp is not None:
            self.srtp.close()
