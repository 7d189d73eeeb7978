"""RFC 3550 appendix A statistics: probation, loss, wrap, restart, jitter, LSR/DLSR and RTT."""

from __future__ import annotations

import pytest

from avatar_mf.rtp.rtcp import ReportBlock, ntp_middle32, ntp_timestamp
from avatar_mf.rtp.stats import ReceiveStats, SendStats, round_trip_time


def feed(stats: ReceiveStats, seqs: list[int], start: float = 0.0) -> list[bool]:
    return [
        stats.on_packet(s % 65536, (s * 160) % 2**32, start + i * 0.02) for i, s in enumerate(seqs)
    ]


def test_probation_then_valid() -> None:
    stats = ReceiveStats(1, 8000)
    assert feed(stats, [100]) == [False]
    assert not stats.valid
    assert feed(stats, [101, 102]) == [True, True]
    assert stats.valid and stats.received == 2 and stats.expected == 2


def test_probation_restarts_on_a_gap() -> None:
    stats = ReceiveStats(1, 8000)
    assert feed(stats, [100, 200, 201]) == [False, False, True]
    assert stats.expected == 1


def test_loss_and_fraction() -> None:
    stats = ReceiveStats(1, 8000)
    missing = {120, 121, 150, 170, 190}
    feed(stats, [s for s in range(100, 200) if s not in missing])
    fig = stats.figures()
    assert (fig.expected, fig.received, fig.lost) == (99, 94, 5)
    block = stats.report_block(now=10.0)
    assert block.cumulative_lost == 5
    assert block.fraction_lost == 5 * 256 // 99
    assert block.highest_seq == 199
    # A new interval: nothing lost since.
    feed(stats, list(range(200, 250)), start=10.0)
    assert stats.report_block(now=20.0).fraction_lost == 0


def test_sequence_wrap_extends_the_highest() -> None:
    stats = ReceiveStats(1, 16000)
    feed(stats, list(range(65530, 65536 + 11)))
    assert stats.cycles == 65536
    assert stats.report_block(1.0).highest_seq == 65536 + 10
    assert stats.lost == 0


def test_duplicates_make_loss_negative_and_misorder_is_counted() -> None:
    stats = ReceiveStats(1, 8000)
    feed(stats, [1, 2, 3, 3, 5, 4, 6])
    assert stats.received == 6 and stats.expected == 5
    assert stats.report_block(1.0).cumulative_lost == -1
    assert stats.figures().loss_ratio == 0.0


def test_big_jump_dropped_unless_followed() -> None:
    stats = ReceiveStats(1, 8000)
    assert feed(stats, [1, 2, 3, 10000, 4]) == [False, True, True, False, True]
    # The sender restarted: two sequential packets after the jump start the counts again.
    assert feed(stats, [20000, 20001, 20002], start=1.0) == [False, True, True]
    assert stats.expected == 2 and stats.received == 2


def test_jitter_follows_a8() -> None:
    stats = ReceiveStats(1, 8000)
    # Packets every 20 ms of media; arrival alternately on time and 5 ms late: |D| = 40 units.
    n = 40
    for i in range(n):
        stats.on_packet(i, i * 160, i * 0.02 + (0.005 if i % 2 else 0.0))
    # The first valid packet sets the transit; each later one adds (40 - J) / 16.
    updates = n - 2
    expected = 40 * (1 - (15 / 16) ** updates)
    assert stats.jitter == pytest.approx(expected)
    assert stats.figures().jitter_ms == pytest.approx(expected / 8)
    assert stats.report_block(1.0).jitter == int(expected)


def test_lsr_dlsr_and_round_trip() -> None:
    # We (MF) receive the UE's SR at t=100 s, report at t=100.25 s.
    stats = ReceiveStats(7, 8000)
    feed(stats, [1, 2, 3])
    sr_ntp = ntp_timestamp(1_700_000_000.0)
    stats.on_sender_report(sr_ntp, arrival=100.0)
    block = stats.report_block(now=100.25)
    assert block.lsr == ntp_middle32(sr_ntp)
    assert block.dlsr == int(0.25 * 65536)
    # The UE gets it back 0.25 s + an RTT of 80 ms after it sent its SR.
    arrival = ntp_timestamp(1_700_000_000.0 + 0.25 + 0.080)
    rtt = round_trip_time(block, arrival)
    assert rtt == pytest.approx(0.080, abs=2 / 65536)
    assert round_trip_time(ReportBlock(7, 0, 0, 0, 0), arrival) is None
    assert round_trip_time(block, sr_ntp) is None  # earlier than possible


def test_send_stats() -> None:
    send = SendStats()
    assert send.rtp_timestamp_at(1.0, 8000) is None
    send.on_sent(160, 1000, 5.0)
    send.on_sent(160, 1160, 5.02)
    assert (send.packets, send.octets) == (2, 320)
    assert send.rtp_timestamp_at(5.12, 8000) == 1160 + 800
