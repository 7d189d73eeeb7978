"""The test UE's IMS-style video: an ``m=video ... RTP/AVPF`` line and a camera of test pictures.

:class:`UeVideo` binds one UDP socket (RTP and RTCP muxed: ``a=rtcp-mux`` is offered), writes
the offer's video m-line for its codecs (H.264 Constrained Baseline 3.1 packetization-mode 1,
payload type 98, and/or VP8, payload type 100; ``nack``, ``nack pli``, ``ccm fir`` feedback),
and once the answer names the codec sends ``count`` pictures at ``fps`` (a moving test
pattern, or the ``pictures`` given, in a loop), encoded by the product's codecs
(:mod:`avatar_mf.codecs.video`) and packetized by its payload formats (RFC 6184, RFC 7741). A
PLI or FIR from the MF makes the next picture a key frame (counted in
:attr:`UeVideo.keyframe_requests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence

import numpy as np

from avatar_mf.codecs.video import Picture, VideoEncoder, video_codec
from avatar_mf.rtp.errors import RtpError
from avatar_mf.rtp.h264 import H264Packetizer
from avatar_mf.rtp.packet import RtpPacket, is_rtcp
from avatar_mf.rtp.rtcp import RtcpOther, parse_rtcp
from avatar_mf.rtp.vp8 import Vp8Packetizer
from avatar_mf.sdp.audio import offered_formats
from avatar_mf.sdp.model import Attribute, Connection, MediaDescription
from avatar_mf.ue.rtp_audio import bind_udp

#: The payload types and fmtp the UE offers, by codec.
_FORMATS: dict[str, tuple[int, str]] = {
    "H264": (98, "profile-level-id=42e01f;packetization-mode=1"),
    "VP8": (100, ""),
}


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
    ) -> None:
        self.local_host = local_host
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

    async def open(self) -> int:
        self._transport, self.port = await bind_udp(self.local_host, self._received)
        return self.port

    def media(self) -> MediaDescription:
        """The offer's video m-line."""
        formats: list[str] = []
        attrs: list[Attribute] = []
        for name in self.codecs:
            pt, fmtp = _FORMATS[name]
            formats.append(str(pt))
            attrs.append(Attribute("rtpmap", f"{pt} {name}/90000"))
            if fmtp:
                attrs.append(Attribute("fmtp", f"{pt} {fmtp}"))
            attrs += [
                Attribute("rtcp-fb", f"{pt} nack"),
                Attribute("rtcp-fb", f"{pt} nack pli"),
                Attribute("rtcp-fb", f"{pt} ccm fir"),
            ]
        attrs += [Attribute("rtcp-mux"), Attribute("sendrecv")]
        return MediaDescription(
            media="video",
            port=self.port,
            proto="RTP/AVPF",
            formats=tuple(formats),
            connections=(Connection("IN", "IP4", self.local_host),),
            attrs=tuple(attrs),
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
        encoder = codec.encoder(self.width, self.height, fps=self.fps)
        self._sender = asyncio.get_running_loop().create_task(
            self._send_loop(chosen.payload_type, encoder, remote)
        )

    async def _send_loop(
        self, payload_type: int, encoder: VideoEncoder, remote: tuple[str, int]
    ) -> None:
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        packetizer: H264Packetizer | Vp8Packetizer = (
            H264Packetizer(mode=1) if self.codec == "H264" else Vp8Packetizer()
        )
        seq = random.getrandbits(16)
        ts = random.getrandbits(32)
        start = loop.time()
        for index in range(self.count):
            if self._transport.is_closing():
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
                    self._transport.sendto(packet.serialize(), remote)
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

    async def done(self) -> None:
        """Wait until every picture has been sent."""
        if self._sender is not None:
            await asyncio.shield(self._sender)

    async def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        if self._transport is not None:
            self._transport.close()
            self._transport = None
