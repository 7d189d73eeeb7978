"""The SCTP send and SACK fast paths of ImsSctpTransport (media/sctp_transport.py, items 6-7;
media/sctp_send.py), sans-IO over the fake link of test_sctp_tuning.

* a message that fits one DATA chunk gets its TSN and stream sequence number at once
  (RFC 9260 6.1, 6.6) and goes out with the others sent in the same turn; the chunks on the
  wire are the ones aiortc's path puts there (same flags, TSNs, SSNs, PPIDs, bytes);
* bundling stays within one packet's chunk space (RFC 9260 6.10);
* a lost packet is still retransmitted, by T3-rtx (6.3.3) and by fast retransmit after three
  gap reports (7.2.4), and the receiver gets everything in order;
* a SACK that only moves the cumulative TSN ack forward is taken without aiortc's
  ``_receive_sack_chunk``; a SACK with gap blocks or duplicates goes to it;
* T3-rtx is started only when it is not running, and restarted (R3) by moving its deadline:
  it expires one RTO after the last restart, not after the first start.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aiortc import RTCDataChannel, RTCDataChannelParameters
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import (
    SCTP_DATA_FIRST_FRAG,
    SCTP_DATA_LAST_FRAG,
    SCTP_DATA_UNORDERED,
    SCTP_MAX_PACKET_LENGTH,
    WEBRTC_BINARY,
    WEBRTC_STRING,
    DataChunk,
    SackChunk,
)

from avatar_mf.media.sctp_send import (
    OutChunk,
    data_chunk_bytes,
    pack_packets,
    plain_sack,
    sack_bytes,
)
from avatar_mf.media.sctp_transport import (
    DEFAULT_TUNING,
    INITIAL_CWND,
    ImsSctpTransport,
    SctpTuning,
)

from .test_sctp_tuning import Pair, unit, until

SLOW = SctpTuning(fast_paths=False)
CHUNK_SPACE = SCTP_MAX_PACKET_LENGTH - 12  # one packet less its common header


class Counting(ImsSctpTransport):
    """Counts the SACKs that reach aiortc's SACK handling and the messages sent fast."""

    slow_sacks = 0
    fast_sends = 0

    async def _receive_sack_chunk(self, chunk: SackChunk) -> None:
        self.slow_sacks += 1
        await super()._receive_sack_chunk(chunk)

    def _send_now(self, channel: RTCDataChannel, pp_id: int, user_data: bytes) -> bool:
        sent = super()._send_now(channel, pp_id, user_data)
        self.fast_sends += sent
        return sent


class CountingPair(Pair):
    def __init__(self, tuning: SctpTuning) -> None:
        super().__init__(tuning)
        self.a = Counting(cast(RTCDtlsTransport, self.link_a), tuning=tuning)
        self.b = Counting(cast(RTCDtlsTransport, self.link_b), tuning=tuning)

    @property
    def sender(self) -> Counting:
        return cast(Counting, self.a)


@pytest.fixture
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[CountingPair]:
    p = CountingPair(getattr(request, "param", DEFAULT_TUNING))
    yield p
    await p.stop()


def data_chunks(pair: Pair) -> list[DataChunk]:
    return cast(list[DataChunk], pair.link_a.chunks(DataChunk))


# -- pure helpers (media/sctp_send.py) ----------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4, 120, 134])
def test_a_data_chunk_is_what_aiortc_serializes(size: int) -> None:
    theirs = DataChunk(flags=SCTP_DATA_FIRST_FRAG | SCTP_DATA_LAST_FRAG)
    theirs.tsn, theirs.stream_id, theirs.stream_seq, theirs.protocol = 0xFFFFFFFF, 1002, 7, 53
    theirs.user_data = bytes(range(size))
    ours = OutChunk(3, 0xFFFFFFFF, 1002, 7, 53, bytes(range(size)))
    built = data_chunk_bytes(3, 0xFFFFFFFF, 1002, 7, 53, theirs.user_data)
    assert bytes(ours) == bytes(theirs) == built
    assert len(bytes(ours)) % 4 == 0
    parsed = DataChunk(flags=3, body=bytes(ours)[4 : 16 + size])
    assert (parsed.tsn, parsed.stream_id, parsed.stream_seq, parsed.protocol) == (
        0xFFFFFFFF,
        1002,
        7,
        53,
    )


def test_packets_keep_order_and_stay_within_the_limit() -> None:
    chunks = [bytes([i]) * (100 + 40 * (i % 5)) for i in range(30)]
    packets = pack_packets(chunks, CHUNK_SPACE)
    assert [c for p in packets for c in p] == chunks
    assert all(sum(map(len, p)) <= CHUNK_SPACE for p in packets)
    # as few as fit: no packet could have taken the next packet's first chunk
    for first, second in itertools.pairwise(packets):
        assert sum(map(len, first)) + len(second[0]) > CHUNK_SPACE
    big = bytes(CHUNK_SPACE + 8)
    assert pack_packets([b"a" * 8, big, b"b" * 8], CHUNK_SPACE) == [[b"a" * 8], [big], [b"b" * 8]]


def test_only_a_sack_without_gaps_or_duplicates_is_plain() -> None:
    plain = sack_bytes(12345, 65536)
    assert plain == bytes(_sack(12345, 65536))
    assert plain_sack(plain, 4, len(plain)) == (12345, 65536)
    with_gap = bytes(_sack(12345, 65536, gaps=[(2, 2)]))
    with_duplicate = bytes(_sack(12345, 65536, duplicates=[12340]))
    assert plain_sack(with_gap, 4, len(with_gap)) is None
    assert plain_sack(with_duplicate, 4, len(with_duplicate)) is None
    assert plain_sack(plain, 4, 12) is None  # truncated


def _sack(
    cumulative: int,
    rwnd: int,
    gaps: list[tuple[int, int]] | None = None,
    duplicates: list[int] | None = None,
) -> SackChunk:
    sack = SackChunk()
    sack.cumulative_tsn, sack.advertised_rwnd = cumulative, rwnd
    sack.gaps, sack.duplicates = gaps or [], duplicates or []
    return sack


# -- the send fast path -------------------------------------------------------------------


async def _send_mixed(pair: Pair) -> RTCDataChannel:
    """Two ordered streams and an unordered one, binary and string messages, in bursts."""
    tx, _ = await pair.start()
    other = RTCDataChannel(pair.a, RTCDataChannelParameters(label="o", negotiated=True, id=1004))
    RTCDataChannel(pair.b, RTCDataChannelParameters(label="o", negotiated=True, id=1004))
    loose_params = RTCDataChannelParameters(label="u", ordered=False, negotiated=True, id=1006)
    loose = RTCDataChannel(pair.a, loose_params)
    RTCDataChannel(pair.b, loose_params)
    await until(lambda: other.readyState == loose.readyState == "open")
    pair.link_a.packets.clear()
    for burst in range(4):
        for i in range(3):
            tx.send(unit(10 * burst + i))
        other.send(f"text {burst}")
        loose.send(unit(100 + burst, 8))
        await pair.wait_received(3 * (burst + 1))
    return tx


@pytest.mark.parametrize("tuning", [DEFAULT_TUNING, SLOW], ids=["fast", "aiortc-path"])
async def test_tsns_and_stream_sequence_numbers(tuning: SctpTuning) -> None:
    pair = CountingPair(tuning)
    try:
        await _send_mixed(pair)
        chunks = data_chunks(pair)
        assert len(chunks) == 20
        first = chunks[0].tsn
        assert [c.tsn for c in chunks] == [(first + k) % 2**32 for k in range(20)]
        by_stream: dict[int, list[DataChunk]] = {}
        for c in chunks:
            by_stream.setdefault(c.stream_id, []).append(c)
        assert [c.stream_seq for c in by_stream[1002]] == list(range(12))
        assert [c.stream_seq for c in by_stream[1004]] == list(range(4))
        assert [c.stream_seq for c in by_stream[1006]] == [0, 0, 0, 0]
        whole = SCTP_DATA_FIRST_FRAG | SCTP_DATA_LAST_FRAG
        assert {c.flags for c in by_stream[1002] + by_stream[1004]} == {whole}
        assert {c.flags for c in by_stream[1006]} == {whole | SCTP_DATA_UNORDERED}
        assert {c.protocol for c in by_stream[1002]} == {WEBRTC_BINARY}
        assert {c.protocol for c in by_stream[1004]} == {WEBRTC_STRING}
        assert pair.received == [unit(10 * b + i) for b in range(4) for i in range(3)]
        assert pair.sender.fast_sends == (20 if tuning.fast_paths else 0)
    finally:
        await pair.stop()


async def test_the_fast_path_puts_aiortcs_chunks_on_the_wire() -> None:
    """Same messages through both paths, the same initial TSN: the same DATA chunk bytes."""
    wire: list[list[bytes]] = []
    for tuning in (DEFAULT_TUNING, SLOW):
        pair = CountingPair(tuning)
        for side in (pair.a, pair.b):  # the same initial TSN on both runs
            side._local_tsn = 1000
            side._last_sacked_tsn = side._advanced_peer_ack_tsn = 999
        try:
            await _send_mixed(pair)
            wire.append([bytes(c) for c in data_chunks(pair)])
        finally:
            await pair.stop()
    assert wire[0] == wire[1] and len(wire[0]) == 20


async def test_a_burst_is_bundled_within_one_packets_space(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    first = len(pair.link_a.raw)
    for i in range(20):  # 20 x 136 bytes of chunk: three packets
        tx.send(unit(i))
    await pair.wait_received(20)
    assert pair.received == [unit(i) for i in range(20)]
    assert pair.sender.fast_sends == 20
    packets = [p for p in pair.link_a.packets if any(isinstance(c, DataChunk) for c in p)]
    assert len(packets) == 3
    assert all(len(raw) <= SCTP_MAX_PACKET_LENGTH for raw in pair.link_a.raw[first:])


async def test_past_the_congestion_window_messages_wait_in_the_channel(
    pair: CountingPair,
) -> None:
    """The fast path takes only what goes out at once; the rest waits in the data-channel
    queue (where bufferedAmount shows it) as with aiortc's path."""
    tx, _ = await pair.start()
    pair.link_a.lose = True  # nothing is acknowledged: the window fills
    for i in range(60):
        tx.send(unit(i))
    await asyncio.sleep(0.01)
    window = pair.a._cwnd
    assert 0 < pair.sender.fast_sends < 60
    # aiortc's path may overshoot cwnd by less than a packet (RFC 9260 6.1 rule B)
    assert pair.a._flight_size < window + CHUNK_SPACE
    waiting = sum(len(unit(i)) for i in range(pair.sender.fast_sends, 60))
    # aiortc's path moved a packet's worth to SCTP's outbound queue; the rest is buffered
    moved = sum(c._book_size for c in pair.a._outbound_queue)
    assert 0 < moved < CHUNK_SPACE + len(unit(0))
    # and sent what its overshoot allowed (flight beyond the fast path's messages)
    slow_sent = pair.a._flight_size - sum(len(unit(i)) for i in range(pair.sender.fast_sends))
    assert tx.bufferedAmount == waiting - moved - slow_sent
    pair.link_a.lose = False
    pair.a._rto = 0.05  # let T3 retransmit soon
    pair.a._t3_cancel()
    pair.a._t3_start()
    await pair.wait_received(60)
    assert pair.received == [unit(i) for i in range(60)]


def test_both_paths_start_at_rfc_9260s_initial_window() -> None:
    for tuning in (DEFAULT_TUNING, SLOW):
        assert Pair(tuning).a._cwnd == INITIAL_CWND == 4404


async def test_the_first_flight_fills_rfc_9260s_initial_window(pair: CountingPair) -> None:
    """RFC 9260 7.2.1: cwnd starts at min(4 MTU, max(2 MTU, 4404)) = 4404 bytes (aiortc's
    three DATA chunks were 3,480): with nothing acknowledged, a burst of small messages puts
    that much in flight."""
    assert INITIAL_CWND == min(4 * SCTP_MAX_PACKET_LENGTH, max(2 * SCTP_MAX_PACKET_LENGTH, 4404))
    tx, _ = await pair.start()
    pair.link_a.lose = True  # nothing is acknowledged
    for i in range(60):
        tx.send(unit(i))
    await asyncio.sleep(0.1)
    assert pair.a._cwnd == INITIAL_CWND == 4404
    in_flight = sum(len(c.user_data) for c in data_chunks(pair))
    assert 4404 - 2 * len(unit(0)) < in_flight <= 4404 + CHUNK_SPACE, in_flight
    assert in_flight > 3 * 1160  # more than aiortc's initial window
    pair.link_a.lose = False
    pair.a._rto = 0.05
    pair.a._t3_cancel()
    pair.a._t3_start()
    await pair.wait_received(60)
    assert pair.received == [unit(i) for i in range(60)]


# -- loss: retransmission still works -----------------------------------------------------


async def test_a_lost_packet_is_retransmitted_by_t3(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    pair.a._rto = 0.05  # aiortc's initial RTO is 3 s
    pair.link_a.lose = True
    tx.send(unit(0))
    await until(lambda: len(data_chunks(pair)) == 1)
    pair.link_a.lose = False
    tx.send(unit(1))  # behind the gap, held by the receiver
    await until(lambda: len(data_chunks(pair)) >= 3)  # unit 0 again, by T3
    await pair.wait_received(2)
    assert pair.received == [unit(0), unit(1)]
    tsns = [c.tsn for c in data_chunks(pair)]
    assert tsns[0] in tsns[2:]


async def test_fast_retransmit_after_three_gap_reports(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    pair.link_a.lose = True
    tx.send(unit(0))
    await until(lambda: len(data_chunks(pair)) == 1)
    pair.link_a.lose = False
    for i in range(1, 5):  # each in its own packet: each gets a SACK with a gap at once
        tx.send(unit(i))
        await until(lambda n=i: pair.sender.slow_sacks >= n)  # type: ignore[misc]
    await pair.wait_received(5)
    assert pair.received == [unit(i) for i in range(5)]
    assert [c.tsn for c in data_chunks(pair)].count(data_chunks(pair)[0].tsn) == 2
    assert pair.a._rto > 0.5  # not T3 (its RTO is seconds): fast retransmit (RFC 9260 7.2.4)


# -- the SACK fast path -------------------------------------------------------------------


async def test_plain_sacks_skip_aiortcs_sack_handling(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    before = pair.sender.slow_sacks
    for i in range(20):
        tx.send(unit(i))
        await pair.wait_received(i + 1)
    await until(lambda: not pair.a._sent_queue)
    assert pair.link_b.chunks(SackChunk)
    assert pair.sender.slow_sacks == before
    assert pair.a._flight_size == 0 and pair.a._t3_handle is None  # R2: T3 stopped


@pytest.mark.parametrize("pair", [SLOW], indirect=True)
async def test_without_fast_paths_every_sack_goes_to_aiortc(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    before = pair.sender.slow_sacks
    for i in range(5):
        tx.send(unit(i))
        await pair.wait_received(i + 1)
    await until(lambda: not pair.a._sent_queue)
    assert pair.sender.slow_sacks - before == len(pair.link_b.chunks(SackChunk)) > 0


async def test_sacks_with_gaps_or_duplicates_take_aiortcs_path(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    for i in range(4):
        tx.send(unit(i))
        await asyncio.sleep(0)
    await until(lambda: not pair.a._sent_queue)
    sent = pair.a._local_tsn
    before = pair.sender.slow_sacks
    # A SACK acknowledging nothing new with a gap block, then one with a duplicate.
    cumulative = (sent - 1) % 2**32
    for sack in (_sack(cumulative, 65536, gaps=[(2, 2)]), _sack(cumulative, 65536, duplicates=[5])):
        await pair.a._handle_data(_packet(pair.a, bytes(sack)))
    assert pair.sender.slow_sacks - before == 2


def _packet(sctp: ImsSctpTransport, chunk: bytes) -> bytes:
    """A packet from sctp's peer carrying ``chunk`` (RFC 9260 3, CRC32c)."""
    from google_crc32c import value as crc32c

    header = (
        sctp._remote_port.to_bytes(2, "big")  # type: ignore[union-attr]
        + sctp._local_port.to_bytes(2, "big")
        + sctp._local_verification_tag.to_bytes(4, "big")
    )
    checksum = crc32c(header + bytes(4) + chunk)
    return header + checksum.to_bytes(4, "little") + chunk


# -- T3-rtx, restarted lazily -------------------------------------------------------------


@dataclass(order=True)
class _Handle:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def when(self) -> float:
        return self.due

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimerLoop:
    """The loop methods the T3 timer uses (time, call_later, call_at), on a fake clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.armed = 0  # timers created
        self._heap: list[_Handle] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        self.armed += 1
        handle = _Handle(when, next(self._seq), callback)
        heapq.heappush(self._heap, handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Handle:
        return self.call_at(self.now + delay, callback)

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._heap and self._heap[0].due <= target:
            handle = heapq.heappop(self._heap)
            if not handle.cancelled:
                self.now = handle.due
                handle.callback()
        self.now = target


class T3Recording(ImsSctpTransport):
    expired_at: list[float]

    def _t3_expired(self) -> None:
        self.expired_at.append(cast(Any, self._timer_loop).now)
        self._t3_handle = None


async def test_t3_restarts_move_its_deadline_without_new_timers() -> None:
    pair = Pair(DEFAULT_TUNING)
    sctp = T3Recording(cast(RTCDtlsTransport, pair.link_a))
    sctp.expired_at = []
    loop = FakeTimerLoop()
    sctp._timer_loop = cast(asyncio.AbstractEventLoop, loop)
    sctp._rto = 1.0
    sctp._t3_start()
    for _ in range(10):  # a SACK acknowledging the earliest TSN every 0.3 s (R3)
        loop.advance(0.3)
        sctp._t3_restart()
    assert loop.armed == 1 + 3  # started once, re-armed when it fired before its deadline
    loop.advance(0.99)
    assert sctp.expired_at == []
    loop.advance(0.02)
    assert sctp.expired_at == [pytest.approx(4.0)]  # one RTO after the last restart
    sctp._t3_start()  # started again: a fresh timer, one RTO on
    sctp._t3_cancel()  # R2: cancelled, it never fires
    loop.advance(5)
    assert sctp.expired_at == [pytest.approx(4.0)]


async def test_without_fast_paths_each_t3_restart_is_a_new_timer() -> None:
    pair = Pair(SLOW)
    sctp = T3Recording(cast(RTCDtlsTransport, pair.link_a), tuning=SLOW)
    sctp.expired_at = []
    loop = FakeTimerLoop()
    sctp._timer_loop = cast(asyncio.AbstractEventLoop, loop)
    sctp._rto = 1.0
    sctp._t3_start()
    for _ in range(10):
        loop.advance(0.3)
        sctp._t3_restart()
    assert loop.armed == 11  # aiortc's: a cancel and a new timer per restart
    loop.advance(1.01)
    assert sctp.expired_at == [pytest.approx(4.0)]


async def test_a_shorter_rto_restarts_t3_sooner() -> None:
    pair = Pair(DEFAULT_TUNING)
    sctp = T3Recording(cast(RTCDtlsTransport, pair.link_a))
    sctp.expired_at = []
    loop = FakeTimerLoop()
    sctp._timer_loop = cast(asyncio.AbstractEventLoop, loop)
    sctp._rto = 3.0
    sctp._t3_start()
    loop.advance(0.5)
    sctp._rto = 1.0  # an RTT sample brought the RTO down
    sctp._t3_restart()
    loop.advance(1.01)
    assert sctp.expired_at == [pytest.approx(1.5)]
