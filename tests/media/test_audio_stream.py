"""The sans-IO audio stream (media/audio_stream.py) and the RTP port range, on a fake clock."""

from __future__ import annotations

import random
import struct
from collections import Counter

import pytest

from avatar_mf.media.audio_stream import AudioStream, MediaLimits, StreamFormat
from avatar_mf.media.rtp_ports import PortRange, PortsExhausted
from avatar_mf.rtp.jitter import JitterFrame
from avatar_mf.rtp.packet import RtpPacket, parse_rtp

SDP_ADDR = ("192.0.2.1", 40000)
NAT_ADDR = ("198.51.100.7", 61000)
OTHER = ("203.0.113.9", 5004)
DEFAULT_LIMITS = MediaLimits()
PCMU = StreamFormat(payload_type=0, codec_name="PCMU", clock_rate=8000, event_payload_type=101)


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def __call__(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


def make(
    limits: MediaLimits = DEFAULT_LIMITS, now: float = 0.0, node_drops: Counter[str] | None = None
) -> tuple[AudioStream, Wire]:
    wire = Wire()
    stream = AudioStream(
        PCMU,
        remote=SDP_ADDR,
        remote_rtcp=(SDP_ADDR[0], SDP_ADDR[1] + 1),
        rtcp_mux=False,
        send=wire,
        send_rtcp=None,
        now=now,
        limits=limits,
        rng=random.Random(7),
        node_drops=node_drops,
    )
    return stream, wire


def rtp(seq: int, *, ssrc: int = 0x1111, pt: int = 0, payload: bytes = b"\xff" * 160) -> bytes:
    return RtpPacket(pt, seq, seq * 160, ssrc, payload).serialize()


def test_symmetric_rtp_latches_on_the_first_packet_and_relatches_after_silence() -> None:
    stream, wire = make()
    stream.send_payload(b"\xff" * 160, 0.0)
    assert wire.sent[-1][1] == SDP_ADDR  # nothing received yet: the SDP address
    assert stream.receive(rtp(1), NAT_ADDR, 0.0) is not None
    stream.send_payload(b"\xff" * 160, 0.0)
    assert wire.sent[-1][1] == NAT_ADDR  # latched on the packet's source
    assert stream.receive(rtp(2), OTHER, 0.5) is None
    assert stream.drops["source"] == 1
    # The latched source falls silent past relatch_after: the next source takes over.
    assert stream.receive(rtp(3, ssrc=0x2222), OTHER, 0.5 + 2.0) is not None
    assert stream.latched == OTHER and stream.stats.relatches == 1
    assert stream.remote_rtcp == (OTHER[0], OTHER[1] + 1)


def test_bad_input_is_dropped_and_counted_by_reason() -> None:
    node_drops: Counter[str] = Counter()
    stream, _ = make(node_drops=node_drops)
    stream.receive(rtp(1), NAT_ADDR, 0.0)
    stream.receive(b"\x80\x00", NAT_ADDR, 0.01)  # truncated
    stream.receive(struct.pack("!BBHII", 0x40, 0, 2, 0, 1), NAT_ADDR, 0.02)  # version 1
    stream.receive(rtp(3, pt=8), NAT_ADDR, 0.03)  # PCMA: not negotiated
    stream.receive(rtp(4, ssrc=0x9999), NAT_ADDR, 0.04)  # a second SSRC
    stream.receive(rtp(5, payload=b"\x00" * 3000), NAT_ADDR, 0.05)  # huge
    stream.receive(rtp(6, pt=101, payload=b"\x01\x80\x00\xa0"), NAT_ADDR, 0.06)  # DTMF
    assert dict(stream.drops) == {"malformed": 2, "payload_type": 1, "ssrc": 1, "oversize": 1}
    assert node_drops == stream.drops
    assert stream.stats.events_in == 1 and stream.stats.packets_in == 2


def test_a_flood_is_cut_by_the_packet_rate_limit() -> None:
    stream, _ = make(MediaLimits(max_packets_per_second=100))
    accepted = sum(1 for i in range(1000) if stream.receive(rtp(i), NAT_ADDR, 0.001 * i))
    # One second's budget (100) plus what refills in the 1 s the flood lasts (100).
    assert accepted <= 201 and stream.drops["rate"] >= 799


def test_jitter_buffer_reorders_conceals_and_drops_late_packets() -> None:
    stream, _ = make(MediaLimits(jitter_buffer_ms=40))
    for seq, at in ((11, 0.000), (10, 0.005), (13, 0.030)):
        stream.receive(rtp(seq), NAT_ADDR, at)
    assert stream.pop(0.030) is None  # still priming (40 ms)
    out = [stream.pop(t) for t in (0.045, 0.065, 0.085, 0.105)]
    seqs = [p.sequence if isinstance(p, JitterFrame) else type(p).__name__ for p in out]
    assert seqs == [10, 11, "JitterLoss", 13]
    stream.receive(rtp(12), NAT_ADDR, 0.11)  # too late: 12 was concealed
    assert stream.drops["late"] == 1 and stream.stats.concealed == 1
    assert stream.stats.lost == 0  # RFC 3550 A.3: it did arrive, late


def test_media_timeout_counts_from_the_start_and_from_the_last_packet() -> None:
    stream, _ = make(MediaLimits(rtp_timeout=5.0), now=100.0)
    assert not stream.timed_out(104.9)
    assert stream.timed_out(105.0)
    stream.receive(rtp(1), NAT_ADDR, 104.0)
    assert not stream.timed_out(108.9) and stream.timed_out(109.0)
    off, _ = make(MediaLimits(rtp_timeout=0.0))
    assert not off.timed_out(1e9)


def test_forwarding_keeps_the_payload_and_rewrites_the_header() -> None:
    a, _ = make()
    b, wire_b = make()
    a.forward_to = b
    a.receive(rtp(500, payload=b"\x01" * 160), NAT_ADDR, 0.0)
    a.receive(rtp(501, payload=b"\x02" * 160), NAT_ADDR, 0.02)
    first, second = (parse_rtp(data) for data, _ in wire_b.sent)
    assert (first.payload, second.payload) == (b"\x01" * 160, b"\x02" * 160)
    assert first.ssrc == second.ssrc == b.ssrc != 0x1111
    assert second.sequence == (first.sequence + 1) & 0xFFFF
    assert second.timestamp == (first.timestamp + 160) & 0xFFFFFFFF
    # A mixed frame after that continues the same numbering.
    b.send_payload(b"\x03" * 160, 0.04)
    third = parse_rtp(wire_b.sent[-1][0])
    assert third.sequence == (second.sequence + 1) & 0xFFFF
    assert third.timestamp == (second.timestamp + 160) & 0xFFFFFFFF


def test_port_range_hands_out_even_pairs_round_robin() -> None:
    ports = PortRange(30001, 30009)  # odd low bound rounds up: pairs 30002, 30004, 30006, 30008
    got = [ports.allocate() for _ in range(4)]
    assert got == [30002, 30004, 30006, 30008]
    with pytest.raises(PortsExhausted):
        ports.allocate()
    ports.release(30004)
    assert ports.allocate() == 30004
    assert ports.in_use == 4
    shifted = PortRange(30000, 30009, start=7)  # 5 pairs: the round starts at pair 7 % 5 = 2
    assert [shifted.allocate() for _ in range(5)] == [30004, 30006, 30008, 30000, 30002]


def test_rtcp_sender_and_receiver_reports_give_the_round_trip_time() -> None:
    wall = [1_700_000_000.0]
    wires = (Wire(), Wire())
    streams = [
        AudioStream(
            PCMU,
            remote=addr,
            remote_rtcp=addr,
            rtcp_mux=True,
            send=wire,
            send_rtcp=wire,
            now=0.0,
            rng=random.Random(seed),
            wall=lambda: wall[0],
        )
        for seed, wire, addr in ((1, wires[0], NAT_ADDR), (2, wires[1], SDP_ADDR))
    ]
    a, b = streams
    for i in range(5):  # a sends media to b
        a.send_payload(b"\xff" * 160, 0.02 * i)
        b.receive(wires[0].sent[-1][0], SDP_ADDR, 0.02 * i + 0.001)
    sr = a.report(0.1)
    b.receive(sr, SDP_ADDR, 0.1)  # muxed: an SR (packet type 200) is told apart from RTP
    assert b.stats.rtcp_in == 1
    wall[0] += 0.030  # b answers 30 ms later (its DLSR)...
    rr = b.report(0.130)
    wall[0] += 0.012  # ...and the report takes 12 ms back
    a.receive(rr, NAT_ADDR, 0.142)
    assert a.stats.rtt == pytest.approx(0.012, abs=0.001)
    assert b.stats.packets_in == 5 and b.stats.lost == 0


def test_rtcp_is_sent_on_its_interval() -> None:
    wire = Wire()
    stream = AudioStream(
        PCMU,
        remote=SDP_ADDR,
        remote_rtcp=(SDP_ADDR[0], SDP_ADDR[1] + 1),
        rtcp_mux=False,
        send=wire,
        send_rtcp=wire,
        now=0.0,
        limits=MediaLimits(rtcp_interval=5.0),
        rng=random.Random(3),
    )
    sent_at = [t / 50 for t in range(0, 50 * 30) if stream.rtcp_due(t / 50)]
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:], strict=False)]
    assert len(sent_at) >= 4 and all(2.5 <= g <= 7.5 for g in gaps)
    assert all(addr == (SDP_ADDR[0], SDP_ADDR[1] + 1) for _, addr in wire.sent)
