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

Accepted packets go into a small reorder buffer sized :attr:`MediaLimits.jitter_buffer_ms`
(:meth:`AudioStream.pop`, one 20 ms payload per tick of the room clock; duplicates and
packets later than the playout point are dropped as ``late``). telephone-event packets
(RFC 4733) are counted and not played.

Sending: the stream has its own SSRC, sequence and timestamp (random starts, RFC 3550 5.1);
:meth:`AudioStream.send_payload` sends one 20 ms frame, :meth:`AudioStream.forward` relays a
packet of the other leg with only its header rewritten (SSRC, sequence, timestamp offset).

Inactivity: :meth:`AudioStream.timed_out` is true once nothing valid arrived for
:attr:`MediaLimits.rtp_timeout` seconds (counting from the stream's start), what the call
layer ends the call for ("media timeout").
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from avatar_mf.rtp.errors import RtpError
from avatar_mf.rtp.packet import RtpPacket, is_rtcp, parse_rtp

Address = tuple[str, int]
#: What :meth:`AudioStream.pop` gives when the packet due was lost (conceal it).
LOST: Final = b""


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
        # Reorder buffer: sequence (extended) -> payload.
        self._buffer: dict[int, RtpPacket] = {}
        self._next_play: int | None = None
        self._highest: int | None = None
        self._playing = False
        self._first_arrival: float | None = None
        self._transit: float | None = None
        #: Set by the room in forwarding mode: accepted packets go straight to it.
        self.forward_to: AudioStream | None = None
        self._fwd_offset: int | None = None
        self._fwd_ssrc: int | None = None
        self._fwd_seq_offset: int | None = None
        self.last_rtcp_sent = now
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
        if self.remote_ssrc != packet.ssrc:
            if self.remote_ssrc is not None:
                self._reset_playout()
            self.remote_ssrc = packet.ssrc
        self.last_valid = now
        self.stats.packets_in += 1
        self.stats.bytes_in += len(packet.payload)
        if packet.payload_type == self.format.event_payload_type:
            self.stats.events_in += 1
            return None
        self._jitter(packet, now)
        if self.forward_to is not None:
            self.forward_to.forward(packet)
            return packet
        self._buffer_packet(packet)
        return packet

    def receive_rtcp(self, data: bytes, source: Address, now: float) -> None:
        """An RTCP datagram (its own port, or muxed): counted; RTT from a report block."""
        if self.closed:
            return
        if len(data) > self.limits.max_packet:
            self._drop("oversize")
            return
        self.stats.rtcp_in += 1

    def _payload_types(self) -> set[int]:
        types = {self.format.payload_type}
        if self.format.event_payload_type is not None:
            types.add(self.format.event_payload_type)
        return types

    def _jitter(self, packet: RtpPacket, now: float) -> None:
        # RFC 3550 A.8: J += (|D| - J) / 16, D from arrival and RTP timestamps.
        arrival = now * self.format.clock_rate
        transit = arrival - packet.timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < self.format.clock_rate:  # ignore wraps and stream restarts
                self.stats.jitter += (d - self.stats.jitter) / 16.0
        self._transit = transit

    def _reset_playout(self) -> None:
        self._buffer.clear()
        self._next_play = None
        self._highest = None
        self._playing = False
        self._first_arrival = None

    def _extend(self, seq: int) -> int:
        if self._highest is None:
            return seq
        base = self._highest & ~0xFFFF
        candidate = base | seq
        if candidate - self._highest > 0x8000:
            candidate -= 0x10000
        elif self._highest - candidate > 0x8000:
            candidate += 0x10000
        return candidate

    def _buffer_packet(self, packet: RtpPacket) -> None:
        ext = self._extend(packet.sequence)
        if self._next_play is not None and ext < self._next_play:
            self.stats.late += 1
            self._drop("late")
            return
        if ext in self._buffer:
            self._drop("duplicate")
            return
        depth = max(1, self.limits.jitter_buffer_ms // 20) * 4
        if len(self._buffer) >= depth:
            # A burst far beyond the buffer: keep the newest, drop the oldest.
            oldest = min(self._buffer)
            del self._buffer[oldest]
            self._drop("overflow")
        self._buffer[ext] = packet
        if self._highest is None or ext > self._highest:
            self._highest = ext
        if self._first_arrival is None:
            self._first_arrival = self.last_valid

    def pop(self, now: float) -> RtpPacket | bytes | None:
        """The packet due at this 20 ms tick, :data:`LOST` for a gap to conceal, or None when
        the stream is not playing (nothing received yet, or the buffer ran dry)."""
        if not self._playing:
            if self._first_arrival is None or not self._buffer:
                return None
            if now - self._first_arrival < self.limits.jitter_buffer_ms / 1000.0:
                return None
            self._playing = True
            self._next_play = min(self._buffer)
        assert self._next_play is not None
        if not self._buffer:
            # Ran dry: stop and prime again on the next packet.
            self._playing = False
            self._first_arrival = None
            return None
        packet = self._buffer.pop(self._next_play, None)
        self._next_play += 1
        if packet is None:
            self.stats.lost += 1
            self.stats.concealed += 1
            return LOST
        return packet

    def timed_out(self, now: float) -> bool:
        if not self.receives or self.limits.rtp_timeout <= 0:
            return False
        last = self.last_valid if self.last_valid is not None else self.started
        return now - last >= self.limits.rtp_timeout

    # -- sending -------------------------------------------------------------------------

    def send_payload(self, payload: bytes, *, marker: bool = False) -> None:
        """Send one 20 ms frame in the negotiated format."""
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
        self._emit(packet.serialize(), len(payload))

    def forward(self, packet: RtpPacket) -> None:
        """Relay ``packet`` of the other leg: payload untouched, the header made ours."""
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
        # Our own numbering continues after the forwarded packet (for a later mixed frame).
        self._seq = (seq + 1) & 0xFFFF
        self._ts = (ts + self.format.samples_per_frame) & 0xFFFFFFFF
        self._emit(out.serialize(), len(packet.payload))

    def _emit(self, data: bytes, payload_size: int) -> None:
        self.stats.packets_out += 1
        self.stats.bytes_out += payload_size
        try:
            self._send(data, self.remote)
        except OSError:
            self._drop("send_error")

    @property
    def rtp_timestamp(self) -> int:
        """The RTP timestamp the next frame sent will carry."""
        return self._ts

    def close(self) -> None:
        self.closed = True
        self._buffer.clear()
        self.forward_to = None
