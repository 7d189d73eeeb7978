"""The jitter buffer: depth, reordering, duplicates, late packets, losses, wrap, resets."""

from __future__ import annotations

import pytest

from avatar_mf.rtp.jitter import JitterBuffer, JitterFrame, JitterLoss, PushResult


def play(jb: JitterBuffer, start: float, ticks: int) -> list[object]:
    out = []
    for i in range(ticks):
        item = jb.pop(start + i * 0.02)
        out.append(
            item.sequence
            if isinstance(item, JitterFrame)
            else ("lost", item.sequence)
            if isinstance(item, JitterLoss)
            else None
        )
    return out


def test_waits_depth_then_plays_in_sequence_order() -> None:
    jb = JitterBuffer(depth_ms=60)
    for seq, t in ((11, 0.0), (10, 0.01), (13, 0.03), (12, 0.035)):
        assert jb.push(seq, seq * 160, b"p%d" % seq, now=t) is PushResult.ACCEPTED
    assert jb.pop(0.05) is None  # 60 ms not yet passed since the first arrival
    frame = jb.pop(0.06)
    assert isinstance(frame, JitterFrame) and frame.sequence == 10 and frame.payload == b"p10"
    assert play(jb, 0.08, 3) == [11, 12, 13]


def test_gap_gives_a_loss_and_late_packet_is_dropped() -> None:
    jb = JitterBuffer(depth_ms=20)
    jb.push(1, 0, b"", now=0.0)
    jb.push(3, 320, b"", now=0.01)
    assert play(jb, 0.02, 2) == [1, ("lost", 2)]
    assert jb.push(2, 160, b"", now=0.05) is PushResult.LATE
    assert play(jb, 0.06, 1) == [3]
    counters = jb.counters()
    assert (counters.played, counters.lost, counters.late) == (2, 1, 1)


def test_duplicates_dropped() -> None:
    jb = JitterBuffer(depth_ms=0)
    assert jb.push(5, 0, b"a", now=0.0) is PushResult.ACCEPTED
    assert jb.push(5, 0, b"a", now=0.001) is PushResult.DUPLICATE
    assert play(jb, 0.0, 1) == [5]
    assert jb.push(5, 0, b"a", now=0.03) is PushResult.LATE
    assert jb.counters().duplicate == 1


def test_sequence_wrap() -> None:
    jb = JitterBuffer(depth_ms=40)
    for i, seq in enumerate((65534, 0, 65535, 1)):
        jb.push(seq, i * 160, b"", now=i * 0.005)
    assert play(jb, 0.04, 4) == [65534, 65535, 0, 1]


def test_jump_beyond_capacity_restarts() -> None:
    jb = JitterBuffer(depth_ms=20, capacity_ms=200)
    jb.push(1, 0, b"", now=0.0)
    assert play(jb, 0.02, 1) == [1]
    assert jb.push(5000, 0, b"", now=0.05) is PushResult.OVERFLOW
    assert jb.pop(0.06) is None  # a new spurt waits its depth
    assert play(jb, 0.07, 1) == [5000]
    assert jb.counters().resets == 1


def test_idle_stop_and_new_spurt() -> None:
    jb = JitterBuffer(depth_ms=20, idle_reset_ms=60)
    jb.push(1, 0, b"", now=0.0)
    assert play(jb, 0.02, 5) == [1, ("lost", 2), ("lost", 3), None, None]
    jb.push(10, 1600, b"", now=0.2)
    assert play(jb, 0.2, 2) == [None, 10]
    assert jb.counters().resets == 0


def test_bad_sizes_rejected() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(depth_ms=-1)
    with pytest.raises(ValueError):
        JitterBuffer(depth_ms=500, capacity_ms=100)
