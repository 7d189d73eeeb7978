"""One IMS-style audio stream of a call: plain RTP/RTCP over UDP, no ICE (RFC 3550, 3551).

:class:`AudioStream` is the sans-IO core: datagrams go in with their source address and the
time (:meth:`AudioStream.receive`), packets to send come out through the injected ``send``
callable. :mod:`avatar_mf.media.rtp_socket` binds the real sockets around it.

Receiving, in order (each refusal is counted in :attr:`AudioStream.drops` by reason, and in
the node-wide counter passed in):

* ``oversize``: datagrams above :attr:`MediaLimits.max_packet` bytes;
* ``rate``: past :attr:`MediaLimits.max_packets_per_second` (a token bucket): an RTP flood
  costs its sender, never the other streams;
* ``malformed``: anything :func:`avatar_mf.rtp.packet.parse_rtp` refuses (RFC 3550 5.1);
* ``source``: symmetric RTP (what SBCs call latching, for UEs behind NAT): the stream sends
  to the SDP address until the first valid packet arrives, then to that packet's source.
  Packets from any other address are dropped, unless the latched source has been silent for
  :attr:`MediaLimits.relatch_after` seconds: then the stream re-latches to the new source (a
  UE that changed its NAT binding, or moved);
* ``payload_type``: a payload type the answer did not list;
* ``ssrc``: a second SSRC from the latched source while the first is alive (the SSRC is
  re-learnt together with a re-latch, or once the old one has been silent as long).

Accepted packets feed the receive statistics (:class:`avatar_mf.rtp.stats.ReceiveStats`: RFC
3550 A.1 sequence validation, A.3 loss, A.8 jitter) and the jitter buffer
(:class:`avatar_mf.rtp.jitter.JitterBuffer`, :attr:`MediaLimits.jitter_buffer_ms` deep;
:meth:`AudioStream.pop` gives one 20 ms payload, or a loss to conceal, per tick of the room
clock; duplicates, packets later than the playout point and bursts past its capacity are
counted as ``duplicate``, ``late``, ``overflow``). telephone-event packets (RFC 4733) are
counted and not played.

RTCP (RFC 3550 6.4): :meth:`AudioStream.rtcp_due` sends, every
:attr:`MediaLimits.rtcp_interval` seconds (5 s, randomised by +-50 % as section 6.3.1 asks), a
compound SR (once the stream has sent media; else RR) with a report block about the UE's
source, and SDES CNAME. An SR from the UE gives LSR/DLSR for our next report; a report block
about our source gives the round-trip time (section 6.4.1: A - LSR - DLSR). A malformed
compound packet is dropped whole (``rtcp_malformed``).

Sending: the stream has its own SSRC, sequence and timestamp (random starts, RFC 3550 5.1);
:meth:`AudioStream.send_payload` sends one 20 ms frame, :meth:`AudioStream.forward` relays a
packet of the other leg with only its header rewritten (SSRC, sequence, timestamp offset).
While forwarding, :attr:`AudioStream.tap` (set by the room when the participant's session
wants its decoded voice) also gets each forwarded packet.

Inactivity: :meth:`AudioStream.timed_out` is true once nothing valid arrived for
:attr:`MediaLimits.rtp_timeout` seconds (counting from the stream's start), what the call
layer ends the call for ("media timeout").
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from avatar_mf.rtp.errors import RtpError
from avatar_mf.rtp.jitter import JitterBuffer, JitterFrame, JitterLoss, PushResult
from avatar_mf.rtp.packet import RtpPacket, is_rtcp, parse_rtp
from avatar_mf.rtp.rtcp import (
    SDES_CNAME,
    ReceiverReport,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    ntp_timestamp,
    parse_rtcp,
    serialize_rtcp,
)
from avatar_mf.rtp.stats import ReceiveStats, SendStats, round_trip_time

Address = tuple[str, int]
Playout = JitterFrame | JitterLoss | None


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """The receive-side settings (``[media]``)."""

    rtp_timeout: float = 30.0
    jitter_buffer_ms: int = 60
    max_packet: int = 1500
    max_packets_per_second: int = 250
    relatch_after: float = 2.0
    rtcp_interval: float = 5.0


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """What the answer negotiated for the stream."""

    payload_type: int
    codec_name: str
    clock_rate: int
    fmtp: tuple[tuple[str, str], ...] = ()
    event_payload_type: int | None = None
    #: RTP timestamp units per 20 ms frame.
    samples_per_frame: int = 160

    @property
    def codec_key(self) -> tuple[str, int, tuple[tuple[str, str], ...]]:
        """Two streams with equal keys can exchange payloads untouched."""
        return (self.codec_name.upper(), self.clock_rate, tuple(sorted(self.fmtp)))


@dataclass
class StreamStats:
    """Counters of one stream (``/sessions``, the end record)."""

    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    events_in: int = 0
    lost: int = 0
    late: int = 0
    concealed: int = 0
    #: Interarrival jitter, RFC 3550 A.8, in RTP timestamp units.
    jitter: float = 0.0
    rtt: float | None = None
    relatches: int = 0
    #: Packets sent by :meth:`AudioStream.forward` (payload untouched).
    forwarded: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    drops: Counter[str] = field(default_factory=Counter)


class AudioStream:
    """See the module docstring."""

    def __init__(
        self,
        fmt: StreamFormat,
        *,
        remote: Address,
        remote_rtcp: Address,
        rtcp_mux: bool,
        send: Callable[[bytes, Address], None],
        send_rtcp: Callable[[bytes, Address], None] | None,
        now: float,
        limits: MediaLimits = MediaLimits(),
        rng: random.Random | None = None,
        node_drops: Counter[str] | None = None,
        sends: bool = True,
        receives: bool = True,
        wall: Callable[[], float] = time.time,
        cname: str | None = None,
        wallclock: Callable[[float], float] | None = None,
    ) -> None:
        rng = rng or random.Random()
        self.format = fmt
        self.limits = limits
        self.remote = remote
        self.remote_rtcp = remote_rtcp
        self.rtcp_mux = rtcp_mux
        self.sends = sends
        self.receives = receives
        self._send = send
        self._send_rtcp = send_rtcp
        self.stats = StreamStats()
        self._node_drops = node_drops
        self.ssrc = rng.getrandbits(32)
        self._seq = rng.getrandbits(16)
        self._ts = rng.getrandbits(32)
        self.started = now
        self.last_valid: float | None = None
        self.latched: Address | None = None
        self.remote_ssrc: int | None = None
        self._tokens = float(limits.max_packets_per_second)
        self._token_time = now
        self._jitter_buffer = JitterBuffer(limits.jitter_buffer_ms)
        self._rx: ReceiveStats | None = None
        self._tx = SendStats()
        self._wall = wall
        #: Clock time -> Unix wall time, shared by a node's streams (RTCP SR lip-sync).
        self._wallclock = wallclock
        self._rng = rng
        self.cname = cname or f"avatar-mf-{self.ssrc:08x}"
        #: Set by the room in forwarding mode: accepted packets go straight to it.
        self.forward_to: AudioStream | None = None
        #: Set by the room in forwarding mode when the packets must also be decoded.
        self.tap: Callable[[RtpPacket, float], None] | None = None
        self._fwd_offset: int | None = None
        self._fwd_ssrc: int | None = None
        self._fwd_seq_offset: int | None = None
        self._now_hint = now
        self._next_rtcp = now + self._rtcp_delay()
        self.closed = False

    # -- receiving ---------------------------------------------------------------------

    @property
    def drops(self) -> Counter[str]:
        return self.stats.drops

    def _drop(self, reason: str) -> None:
        self.stats.drops[reason] += 1
        if self._node_drops is not None:
            self._node_drops[reason] += 1

    def _take_token(self, now: float) -> bool:
        rate = self.limits.max_packets_per_second
        self._tokens = min(float(rate), self._tokens + (now - self._token_time) * rate)
        self._token_time = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def receive(self, data: bytes, source: Address, now: float) -> RtpPacket | None:
        """One datagram from the RTP socket; returns the packet when it is accepted."""
        if self.closed:
            return None
        if len(data) > self.limits.max_packet:
            self._drop("oversize")
            return None
        if not self._take_token(now):
            self._drop("rate")
            return None
        if self.rtcp_mux and is_rtcp(data):
            self.receive_rtcp(data, source, now)
            return None
        try:
            packet = parse_rtp(data)
        except RtpError:
            self._drop("malformed")
            return None
        silent = self.last_valid is None or now - self.last_valid >= self.limits.relatch_after
        if self.latched is not None and source != self.latched:
            if not silent:
                self._drop("source")
                return None
        if packet.payload_type not in self._payload_types():
            self._drop("payload_type")
            return None
        if self.remote_ssrc is not None and packet.ssrc != self.remote_ssrc and not silent:
            self._drop("ssrc")
            return None
        if self.latched != source:
            if self.latched is not None:
                self.stats.relatches += 1
            self.latched = source
            self.remote = source
            if not self.rtcp_mux:
                self.remote_rtcp = (source[0], source[1] + 1)
            else:
                self.remote_rtcp = source
        if self.remote_ssrc != packet.ssrc or self._rx is None:
            if self.remote_ssrc is not None:
                self._jitter_buffer = JitterBuffer(self.limits.jitter_buffer_ms)
            self.remote_ssrc = packet.ssrc
            self._rx = ReceiveStats(packet.ssrc, self.format.clock_rate)
        self.last_valid = now
        self.stats.packets_in += 1
        self.stats.bytes_in += len(packet.payload)
        # A.1 probation only decides what counts as valid for the figures; the packet plays.
        self._rx.on_packet(packet.sequence, packet.timestamp, now)
        figures = self._rx.figures()
        self.stats.jitter = self._rx.jitter
        self.stats.lost = max(0, figures.lost)
        if packet.payload_type == self.format.event_payload_type:
            self.stats.events_in += 1
            return None
        return self._deliver(packet, now)

    def _deliver(self, packet: RtpPacket, now: float) -> RtpPacket:
        """An accepted media packet: forwarded, or into the jitter buffer (a video stream
        overrides this to depacketize)."""
        if self.forward_to is not None:
            self.forward_to.forward(packet, now)
            if self.tap is not None:
                self.tap(packet, now)
            return packet
        result = self._jitter_buffer.push(
            packet.sequence, packet.timestamp, packet.payload, now, packet.marker
        )
        if result is PushResult.LATE:
            self.stats.late += 1
            self._drop("late")
        elif result is PushResult.DUPLICATE:
            self._drop("duplicate")
        elif result is PushResult.OVERFLOW:
            self._drop("overflow")
        return packet

    def receive_rtcp(self, data: bytes, source: Address, now: float) -> None:
        """An RTCP datagram (its own port, or muxed): counted; RTT from a report block."""
        if self.closed:
            return
        if len(data) > self.limits.max_packet:
            self._drop("oversize")
            return
        if self.latched is not None and source[0] != self.latched[0]:
            self._drop("source")
            return
        try:
            packets = parse_rtcp(data, reduced_size=True)
        except RtpError:
            self._drop("rtcp_malformed")
            return
        self.stats.rtcp_in += 1
        arrival_ntp = ntp_timestamp(self._wall())
        for packet in packets:
            if isinstance(packet, SenderReport) and self._rx is not None:
                if packet.ssrc == self.remote_ssrc:
                    self._rx.on_sender_report(packet.ntp_timestamp, now)
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        rtt = round_trip_time(block, arrival_ntp)
                        if rtt is not None:
                            self.stats.rtt = rtt
        self._on_rtcp(packets, now)

    def _on_rtcp(self, packets: tuple[RtcpPacket, ...], now: float) -> None:
        """A valid compound RTCP packet, after the reports were read (a video stream
        overrides this to count feedback: PLI, FIR, NACK)."""

    def _payload_types(self) -> set[int]:
        types = {self.format.payload_type}
        if self.format.event_payload_type is not None:
            types.add(self.format.event_payload_type)
        return types

    def pop(self, now: float) -> Playout:
        """The frame due at this 20 ms tick, a loss to conceal, or None when the stream is not
        playing (nothing received yet, or the buffer ran dry)."""
        item = self._jitter_buffer.pop(now)
        if isinstance(item, JitterLoss):
            self.stats.concealed += 1
        return item

    def timed_out(self, now: float) -> bool:
        if not self.receives or self.limits.rtp_timeout <= 0:
            return False
        last = self.last_valid if self.last_valid is not None else self.started
        return now - last >= self.limits.rtp_timeout

    # -- sending -------------------------------------------------------------------------

    def send_payload(self, payload: bytes, now: float, *, marker: bool = False) -> None:
        """Send one 20 ms frame in the negotiated format (``now``: the clock, for RTCP SR)."""
        self._now_hint = now
        if self.closed or not self.sends:
            return
        self._fwd_offset = None
        packet = RtpPacket(
            payload_type=self.format.payload_type,
            sequence=self._seq,
            timestamp=self._ts,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + self.format.samples_per_frame) & 0xFFFFFFFF
        self._emit(packet.serialize(), len(payload), packet.timestamp)

    def forward(self, packet: RtpPacket, now: float) -> None:
        """Relay ``packet`` of the other leg: payload untouched, the header made ours."""
        self._now_hint = now
        if self.closed or not self.sends:
            return
        if self._fwd_offset is None or self._fwd_ssrc != packet.ssrc:
            self._fwd_offset = (self._ts - packet.timestamp) & 0xFFFFFFFF
            self._fwd_seq_offset = (self._seq - packet.sequence) & 0xFFFF
            self._fwd_ssrc = packet.ssrc
        assert self._fwd_seq_offset is not None
        seq = (packet.sequence + self._fwd_seq_offset) & 0xFFFF
        ts = (packet.timestamp + self._fwd_offset) & 0xFFFFFFFF
        out = RtpPacket(
            payload_type=self.format.payload_type,
            sequence=seq,
            timestamp=ts,
            ssrc=self.ssrc,
            payload=packet.payload,
            marker=packet.marker,
        )
        self.stats.forwarded += 1
        # Our own numbering continues after the forwarded packet (for a later mixed frame).
        self._seq = (seq + 1) & 0xFFFF
        self._ts = (ts + self.format.samples_per_frame) & 0xFFFFFFFF
        self._emit(out.serialize(), len(packet.payload), ts)

    def _emit(self, data: bytes, payload_size: int, timestamp: int) -> None:
        self.stats.packets_out += 1
        self.stats.bytes_out += payload_size
        self._tx.on_sent(payload_size, timestamp, self._now_hint)
        try:
            self._send(data, self.remote)
        except OSError:
            self._drop("send_error")

    # -- RTCP ----------------------------------------------------------------------------

    def _rtcp_delay(self) -> float:
        # RFC 3550 6.3.1: the interval randomised over [0.5, 1.5] times its value.
        return self.limits.rtcp_interval * (0.5 + self._rng.random())

    def rtcp_due(self, now: float) -> bool:
        """Send the periodic RTCP report when it is due; True when one went out."""
        self._now_hint = now
        if self.closed or now < self._next_rtcp or self._send_rtcp is None:
            return False
        self._next_rtcp = now + self._rtcp_delay()
        self.send_report(now)
        return True

    def report(self, now: float) -> bytes:
        """The compound RTCP packet this stream would send at ``now`` (SR or RR, SDES)."""
        blocks = (self._rx.report_block(now),) if self._rx is not None and self._rx.valid else ()
        first: RtcpPacket
        rtp_ts = self._tx.rtp_timestamp_at(now, self.format.clock_rate)
        if self._tx.packets and rtp_ts is not None:
            first = SenderReport(
                ssrc=self.ssrc,
                ntp_timestamp=ntp_timestamp(
                    self._wallclock(now) if self._wallclock is not None else self._wall()
                ),
                rtp_timestamp=rtp_ts,
                packet_count=self._tx.packets & 0xFFFFFFFF,
                octet_count=self._tx.octets & 0xFFFFFFFF,
                reports=blocks,
            )
        else:
            first = ReceiverReport(ssrc=self.ssrc, reports=blocks)
        sdes = SourceDescription((SdesChunk(self.ssrc, ((SDES_CNAME, self.cname.encode()),)),))
        return serialize_rtcp((first, sdes))

    def send_report(self, now: float) -> None:
        if self._send_rtcp is None:
            return
        data = self.report(now)
        self.stats.rtcp_out += 1
        try:
            self._send_rtcp(data, self.remote_rtcp)
        except OSError:
            self._drop("send_error")

    @property
    def rtp_timestamp(self) -> int:
        """The RTP timestamp the next frame sent will carry."""
        return self._ts

    def close(self) -> None:
        self.closed = True
        self.forward_to = None
        self.tap = None
