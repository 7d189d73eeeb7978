"""The hot path of ImsSctpTransport (media/sctp_transport.py, item 5): the next whole
message in line goes to the channel without aiortc's chunk objects and reassembly; anything
else (a gap, a duplicate, a fragment, a message behind a gap on its stream, a corrupted or
misaddressed packet) takes aiortc's path, and what the channel delivers is the same.

Packets are captured on the fake link of test_sctp_tuning and handed to the receiver in a
chosen order (RFC 9260 6.5, 6.6: ordered delivery per stream, duplicates reported in the SACK).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest
from aiortc import RTCDataChannel, RTCDataChannelParameters
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import Chunk, DataChunk, SackChunk
from google_crc32c import value as crc32c

from avatar_mf.media.sctp_transport import AIORTC_TUNING, ImsSctpTransport

from .test_sctp_tuning import Pair, unit, until


class CountingSctp(ImsSctpTransport):
    """Counts the DATA chunks that reach aiortc's chunk handling (the slow path)."""

    slow_data = 0

    async def _receive_chunk(self, chunk: Chunk) -> None:
        if isinstance(chunk, DataChunk):
            self.slow_data += 1
        await super()._receive_chunk(chunk)


class CountingPair(Pair):
    def __init__(self) -> None:
        super().__init__(AIORTC_TUNING)  # one chunk per packet: packets to reorder
        self.b = CountingSctp(cast(RTCDtlsTransport, self.link_b), tuning=AIORTC_TUNING)

    @property
    def slow(self) -> int:
        return cast(CountingSctp, self.b).slow_data


@pytest.fixture
async def pair() -> AsyncIterator[CountingPair]:
    p = CountingPair()
    yield p
    await p.stop()


async def capture(pair: Pair, tx: RTCDataChannel, messages: list[bytes]) -> list[bytes]:
    """Send ``messages`` with the link down; the packets they went out in."""
    pair.link_a.lose = True
    first = len(pair.link_a.raw)
    for m in messages:
        tx.send(m)
    await until(lambda: len(pair.link_a.raw) - first >= len(messages))
    pair.link_a.lose = False
    return pair.link_a.raw[first:]


async def test_in_order_messages_take_the_fast_path(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    for i in range(20):
        tx.send(unit(i))
        await asyncio.sleep(0)
    await pair.wait_received(20)
    assert pair.received == [unit(i) for i in range(20)]
    assert pair.slow == 0


async def test_a_gap_then_the_missing_packet_delivers_in_order(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    p0, p1, p2, p3 = await capture(pair, tx, [unit(i) for i in range(4)])
    for packet in (p1, p3):  # behind a gap: aiortc's reassembly holds them
        await pair.b._handle_data(packet)
    assert pair.received == [] and pair.slow == 2
    await pair.b._handle_data(p0)  # fills the gap: p0 and p1 come out
    assert pair.received == [unit(0), unit(1)]
    await pair.b._handle_data(p2)
    assert pair.received == [unit(i) for i in range(4)]
    tx.send(unit(4))  # in line again: fast
    await pair.wait_received(5)
    assert pair.slow == 4  # p0 and p2 too (a gap was outstanding); unit 4 did not


async def test_a_duplicate_is_reported_not_delivered_again(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    (p0,) = await capture(pair, tx, [unit(0)])
    await pair.b._handle_data(p0)
    await pair.b._handle_data(p0)
    assert pair.received == [unit(0)]
    await until(lambda: any(s.duplicates for s in pair.link_b.chunks(SackChunk)))
    sack = [s for s in pair.link_b.chunks(SackChunk) if s.duplicates][0]
    assert sack.duplicates == [pair.a._local_tsn - 1]


async def test_fragments_and_unordered_messages_arrive_whole(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    big = bytes(range(256)) * 20  # 5120 bytes: five fragments
    tx.send(big)
    await pair.wait_received(1)
    assert pair.received == [big] and pair.slow == 5
    params = RTCDataChannelParameters(label="u", ordered=False, negotiated=True, id=7)
    utx, urx = RTCDataChannel(pair.a, params), RTCDataChannel(pair.b, params)
    got: list[bytes] = []
    urx.on("message", got.append)
    await until(lambda: utx.readyState == "open")
    q0, q1 = await capture(pair, utx, [b"first", b"second"])
    await pair.b._handle_data(q1)  # unordered: delivered at once, even after a gap
    await pair.b._handle_data(q0)
    assert got == [b"second", b"first"]


async def test_corrupted_and_misaddressed_packets_are_dropped(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    (p0,) = await capture(pair, tx, [unit(0)])
    corrupted = bytearray(p0)
    corrupted[-1] ^= 0xFF  # the CRC32c no longer matches
    await pair.b._handle_data(bytes(corrupted))
    wrong_tag = bytearray(p0)
    wrong_tag[4:8] = (int.from_bytes(p0[4:8], "big") ^ 1).to_bytes(4, "big")
    wrong_tag[8:12] = b"\x00\x00\x00\x00"
    wrong_tag[8:12] = crc32c(bytes(wrong_tag)).to_bytes(4, "little")  # a valid packet ...
    await pair.b._handle_data(bytes(wrong_tag))  # ... for another association
    assert pair.received == []
    await pair.b._handle_data(p0)
    assert pair.received == [unit(0)]


class FlushCounting(ImsSctpTransport):
    flushes = 0

    async def _scheduled_flush(self) -> None:
        self.flushes += 1
        await super()._scheduled_flush()


async def test_messages_sent_in_one_turn_share_one_flush() -> None:
    pair = Pair(AIORTC_TUNING)
    pair.a = FlushCounting(cast(RTCDtlsTransport, pair.link_a), tuning=AIORTC_TUNING)
    try:
        tx, _ = await pair.start()
        sender = cast(FlushCounting, pair.a)
        before = sender.flushes
        first = len(pair.link_a.raw)
        for i in range(10):  # one relay burst (aiortc: a task and a flush per message)
            tx.send(unit(i))
        await asyncio.sleep(0)  # the scheduled flush runs (aiortc's ten tasks would too)
        assert sender.flushes - before == 1
        assert len(pair.link_a.raw) - first == 10  # AIORTC_TUNING: still a packet per message
        await pair.wait_received(10)
        assert pair.received == [unit(i) for i in range(10)]
    finally:
        await pair.stop()


async def test_other_listeners_of_a_session_channel_still_hear_its_messages(
    pair: CountingPair,
) -> None:
    from avatar_mf.media.session_channel import SessionChannel

    heard: list[tuple[str, object]] = []
    params = RTCDataChannelParameters(label="s", negotiated=True, id=9)
    tx = RTCDataChannel(pair.a, params)
    rx = SessionChannel(pair.b, params, lambda ch, event, args: heard.append((event, args)))
    await pair.start()
    await until(lambda: tx.readyState == "open")
    tx.send(b"one")
    await until(lambda: ("message", (b"one",)) in heard)
    extra: list[bytes] = []
    rx.on("message", extra.append)
    tx.send(b"two")
    await until(lambda: extra == [b"two"])
    assert [args for event, args in heard if event == "message"] == [(b"one",), (b"two",)]


async def test_a_data_chunk_shorter_than_its_header_drops_the_packet(pair: CountingPair) -> None:
    tx, _ = await pair.start()
    (p0,) = await capture(pair, tx, [unit(0)])
    short = bytearray(p0[:12] + bytes([0, 3, 0, 8]) + p0[16:20])  # DATA, length 8
    short[8:12] = crc32c(bytes(short[:8]) + bytes(4) + bytes(short[12:])).to_bytes(4, "little")
    await pair.b._handle_data(bytes(short))  # aiortc's parser raised struct.error here
    await pair.b._handle_data(p0)
    assert pair.received == [unit(0)]
