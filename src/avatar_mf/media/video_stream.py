"""One IMS-style video stream of a call: RTP/RTCP over UDP, no ICE (RFC 3550, 4585, 5104).

:class:`VideoStream` is an :class:`~avatar_mf.media.audio_stream.AudioStream` for video: the
same receive checks in the same order (oversize, rate, malformed, symmetric RTP latching,
payload type, SSRC; dropped and counted by reason), the same RTCP reports and RTT; what
differs is what an accepted packet becomes. Instead of a 20 ms jitter buffer, packets go in
arrival order to the payload format's depacketizer (H.264 RFC 6184,
:class:`~avatar_mf.rtp.h264.H264Depacketizer`, with the ``sprop-parameter-sets`` and
``packetization-mode`` of the answer; VP8 RFC 7741, :class:`~avatar_mf.rtp.vp8.Vp8Depacketizer`)
and every access unit / frame it completes goes to ``on_unit`` as an :class:`EncodedUnit` (the
call layer decodes it in the worker pool). A payload the depacketizer refuses is dropped as
``payload``. Packets are not reordered (a reordered packet counts as a loss for its unit).

Key frames. A decoder cannot start before a key frame, nor go on after a lost reference: the
stream holds back units until a key frame arrives (counted ``skipped``) and asks the UE for one
with :meth:`VideoStream.request_keyframe`: RTCP PLI (RFC 4585 6.3.1) when ``nack pli`` was
negotiated, else FIR (RFC 5104 4.3.1) with ``ccm fir``, at most once a second; with RTP/AVP
(no feedback negotiated) it waits for the UE's periodic key frames.

Feedback received (RFC 4585 6.1: PSFB 206 FMT 1 PLI, RTPFB 205 FMT 1 generic NACK; RFC 5104
4.3.1: PSFB FMT 4 FIR naming the MF's SSRC) is counted in :attr:`VideoStream.video`; a PLI or
a FIR with a new sequence number (a repeated FIR is the same request, RFC 5104 4.3.1.2) also
calls ``on_keyframe_request``: the sender (:mod:`avatar_mf.media.video_sender`, the
network-rendered avatar) makes its next frame a key frame.

Sending: :meth:`VideoStream.send_unit` sends one encoded frame's payloads with the MF's SSRC,
consecutive sequence numbers, the frame's RTP timestamp and the marker bit on the last packet
(RFC 6184 5.1, RFC 7741 4.1); the SR's RTP time is extrapolated from the frame's content time
(the clock time it was made for), not from when its packets left, so audio and video SRs that
share the media wall clock line up (docs/media.md, lip-sync).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from avatar_mf.media.audio_stream import AudioStream, MediaLimits, StreamFormat
from avatar_mf.rtp.errors import RtpError
from avatar_mf.rtp.h264 import (
    AccessUnit,
    H264Depacketizer,
    PacketizationMode,
    parse_sprop_parameter_sets,
)
from avatar_mf.rtp.packet import RtpPacket
from avatar_mf.rtp.rtcp import (
    SDES_CNAME,
    ReceiverReport,
    RtcpOther,
    RtcpPacket,
    SdesChunk,
    SourceDescription,
    serialize_rtcp,
)
from avatar_mf.rtp.vp8 import Vp8Depacketizer, Vp8Frame

#: RTCP feedback packet types and formats (RFC 4585 6.1, 6.2.1, 6.3.1; RFC 5104 4.3.1).
RTPFB = 205
PSFB = 206
FMT_NACK = 1
FMT_PLI = 1
FMT_FIR = 4
#: The receive limits of a video stream: larger packets than audio (up to an Ethernet
#: MTU) and key frame bursts of a few hundred packets.
VIDEO_LIMITS = MediaLimits(max_packets_per_second=2000)
#: At most one key frame request per this many seconds.
KEYFRAME_REQUEST_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class EncodedUnit:
    """One reassembled access unit (H.264, Annex B) or frame (VP8), ready to decode."""

    timestamp: int
    data: bytes
    keyframe: bool
    complete: bool = True


@dataclass
class VideoStats:
    """Video counters of one stream (the end record, ``/metrics``)."""

    units: int = 0
    keyframes: int = 0
    incomplete: int = 0
    #: Units held back while waiting for a key frame.
    skipped: int = 0
    decoded: int = 0
    decode_errors: int = 0
    #: Units dropped because the decoder fell behind (the queue was full).
    decode_overflow: int = 0
    pli_in: int = 0
    fir_in: int = 0
    nack_in: int = 0
    pli_out: int = 0
    fir_out: int = 0
    #: Sending (the network-rendered avatar): frames, key frames, packets sent.
    frames_out: int = 0
    keyframes_out: int = 0

    @property
    def keyframe_requests(self) -> int:
        """PLI + FIR received: how often the UE asked the MF for a key frame."""
        return self.pli_in + self.fir_in


def depacketizer_for(
    codec_name: str, fmtp: Mapping[str, str]
) -> H264Depacketizer | Vp8Depacketizer:
    """The depacketizer of a negotiated format (``fmtp``: the offer's parameters)."""
    if codec_name.upper() == "VP8":
        return Vp8Depacketizer()
    mode: PacketizationMode = 1 if fmtp.get("packetization-mode", "0") == "1" else 0
    sprop = fmtp.get("sprop-parameter-sets", "")
    try:
        sets = parse_sprop_parameter_sets(sprop) if sprop else ()
    except RtpError:
        sets = ()  # a bad sprop: in-band parameter sets will do
    return H264Depacketizer(mode=mode, parameter_sets=sets)


class VideoStream(AudioStream):
    """See the module docstring. ``feedback`` is the answer's ``a=rtcp-fb`` values."""

    def __init__(
        self,
        fmt: StreamFormat,
        *,
        offered_fmtp: Mapping[str, str] | None = None,
        feedback: tuple[str, ...] = (),
        on_unit: Callable[[EncodedUnit], None] | None = None,
        on_keyframe_request: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("limits", VIDEO_LIMITS)
        super().__init__(fmt, **kwargs)
        params = dict(fmt.fmtp)
        params.update(offered_fmtp or {})
        self.depacketizer = depacketizer_for(fmt.codec_name, params)
        self.feedback = feedback
        self.on_unit = on_unit
        #: Called on a PLI or a new FIR from the receiver (the sender sends a key frame).
        self.on_keyframe_request = on_keyframe_request
        self.video = VideoStats()
        self._fir_seen: int | None = None
        self._waiting_for_key = True
        self._last_request: float | None = None
        self._fir_seq = 0
        self._vp8_dropped = 0

    # -- receiving ---------------------------------------------------------------------

    def _deliver(self, packet: RtpPacket, now: float) -> RtpPacket:
        try:
            units = self.depacketizer.push(
                packet.sequence, packet.timestamp, packet.marker, packet.payload
            )
        except RtpError:
            self._drop("payload")
            return packet
        for unit in units:
            self._unit(unit_of(unit), now)
        if isinstance(self.depacketizer, Vp8Depacketizer):
            lost = self.depacketizer.frames_dropped - self._vp8_dropped
            if lost > 0:  # a lost VP8 frame breaks the references of the next ones
                self._vp8_dropped += lost
                self.video.incomplete += lost
                self.need_keyframe(now)
        return packet

    def _unit(self, unit: EncodedUnit, now: float) -> None:
        stats = self.video
        stats.units += 1
        if unit.keyframe:
            stats.keyframes += 1
        if not unit.complete:
            stats.incomplete += 1
        if unit.keyframe and unit.complete:
            self._waiting_for_key = False
        elif self._waiting_for_key or not unit.complete:
            self._waiting_for_key = True
            stats.skipped += 1
            self.request_keyframe(now)
            return
        if self.on_unit is not None:
            self.on_unit(unit)

    def need_keyframe(self, now: float) -> None:
        """The decoder lost its references (an error, an overflow): wait for a key frame."""
        self._waiting_for_key = True
        self.request_keyframe(now)

    def _on_rtcp(self, packets: tuple[RtcpPacket, ...], now: float) -> None:
        for packet in packets:
            if not isinstance(packet, RtcpOther) or len(packet.payload) < 8:
                continue
            media_ssrc = int.from_bytes(packet.payload[4:8], "big")
            if packet.packet_type == PSFB and packet.count == FMT_PLI:
                if media_ssrc == self.ssrc:
                    self.video.pli_in += 1
                    self._keyframe_requested()
            elif packet.packet_type == PSFB and packet.count == FMT_FIR:
                fci = packet.payload[8:]
                for i in range(0, len(fci) - 7, 8):
                    if int.from_bytes(fci[i : i + 4], "big") != self.ssrc:
                        continue
                    self.video.fir_in += 1
                    seq = fci[i + 4]
                    if seq != self._fir_seen:  # RFC 5104 4.3.1.2: a repeat is the same ask
                        self._fir_seen = seq
                        self._keyframe_requested()
                    break
            elif packet.packet_type == RTPFB and packet.count == FMT_NACK:
                if media_ssrc == self.ssrc:
                    self.video.nack_in += 1

    def _keyframe_requested(self) -> None:
        if self.on_keyframe_request is not None:
            self.on_keyframe_request()

    # -- sending -----------------------------------------------------------------------

    def send_unit(
        self, payloads: list[bytes], timestamp: int, content_time: float, now: float,
        *, keyframe: bool = False,
    ) -> None:
        """Send one encoded frame: ``payloads`` in order, all with RTP ``timestamp``, the
        marker on the last; ``content_time`` is the clock time the frame shows (the SR's RTP
        time is extrapolated from it)."""
        self._now_hint = now
        if self.closed or not self.sends or not payloads:
            return
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=self.format.payload_type,
                sequence=self._seq,
                timestamp=timestamp,
                ssrc=self.ssrc,
                payload=payload,
                marker=i == last,
            )
            self._seq = (self._seq + 1) & 0xFFFF
            self.stats.packets_out += 1
            self.stats.bytes_out += len(payload)
            self._tx.on_sent(len(payload), timestamp, content_time)
            try:
                self._send(packet.serialize(), self.remote)
            except OSError:
                self._drop("send_error")
        self._ts = timestamp
        self.video.frames_out += 1
        self.video.keyframes_out += int(keyframe)

    # -- key frame requests ------------------------------------------------------------

    def request_keyframe(self, now: float) -> bool:
        """Ask the UE for a key frame (PLI or FIR as negotiated, rate limited); True when a
        request went out."""
        if self.remote_ssrc is None or self.closed:
            return False
        if "nack pli" in self.feedback:
            fmt = FMT_PLI
        elif "ccm fir" in self.feedback:
            fmt = FMT_FIR
        else:
            return False
        if self._last_request is not None and now - self._last_request < (
            KEYFRAME_REQUEST_INTERVAL
        ):
            return False
        self._last_request = now
        if fmt == FMT_PLI:
            feedback = RtcpOther(PSFB, FMT_PLI, struct.pack("!II", self.ssrc, self.remote_ssrc))
            self.video.pli_out += 1
        else:
            self._fir_seq = (self._fir_seq + 1) & 0xFF
            fci = struct.pack("!IB3x", self.remote_ssrc, self._fir_seq)
            feedback = RtcpOther(PSFB, FMT_FIR, struct.pack("!II", self.ssrc, 0) + fci)
            self.video.fir_out += 1
        sdes = SourceDescription((SdesChunk(self.ssrc, ((SDES_CNAME, self.cname.encode()),)),))
        data = serialize_rtcp((ReceiverReport(self.ssrc, ()), sdes, feedback))
        if self._send_rtcp is not None:
            self.stats.rtcp_out += 1
            try:
                self._send_rtcp(data, self.remote_rtcp)
            except OSError:
                self._drop("send_error")
        return True


def unit_of(unit: AccessUnit | Vp8Frame) -> EncodedUnit:
    """An :class:`EncodedUnit` from a depacketizer's access unit or VP8 frame."""
    if isinstance(unit, AccessUnit):
        return EncodedUnit(unit.timestamp, unit.annexb(), unit.keyframe, unit.complete)
    return EncodedUnit(unit.timestamp, unit.data, unit.keyframe, True)
