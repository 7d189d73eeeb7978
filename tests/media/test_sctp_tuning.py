"""ImsSctpTransport's own SCTP behaviour, two associations in one process over a fake link.

What each test proves (media/sctp_transport.py):

* partial reliability (RFC 8831 6.1, RFC 3758, ``a=dcmap max-time``): a message's lifetime
  starts when it is handed to the channel; one that expires while it waits behind a full
  congestion window never reaches the wire, and the peer skips it (FORWARD TSN) and gets the
  fresh ones; ``max-time=0`` is one transmission, not "reliable";
* delayed SACKs (RFC 9260 6.2): one SACK for every second packet with DATA, one within the
  delay for a lone packet, one at once for a gap;
* bundling (RFC 9260 6.10): small messages sent together share packets, and a waiting SACK
  rides ahead of DATA going back (a room of two: messages both ways, next to no SACK packet);
* aiortc's behaviour stays one switch away (``AIORTC_TUNING``).

The link is a pair of fake DTLS transports that hand each datagram to the peer on the next
loop turn, can lose everything (a radio outage) and count what crosses, decoded with aiortc's
own packet parser. aiortc's SCTP timers run on the event loop and its lifetimes on
``time.time()``, so the lifetimes here are tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
from aiortc import RTCDataChannel, RTCDataChannelParameters
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcsctptransport import (
    DataChunk,
    ForwardTsnChunk,
    RTCSctpCapabilities,
    RTCSctpTransport,
    SackChunk,
    parse_packet,
)

from avatar_mf.media.sctp_transport import AIORTC_TUNING, ImsSctpTransport, SctpTuning

STEP = 5.0


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` every millisecond, for at most STEP seconds."""
    async with asyncio.timeout(STEP):
        while not condition():  # noqa: ASYNC110  # aiortc's SCTP has no event to wait on
            await asyncio.sleep(0.001)


class FakeDtls:
    """What RTCSctpTransport uses of its DTLS transport, over an in-process link."""

    def __init__(self, role: str) -> None:
        self._role = role
        self.state = "connected"
        self.peer: FakeDtls | None = None
        self.receiver: Any = None
        self.lose = False
        self.packets: list[list[object]] = []  # the chunks of every packet sent
        self.raw: list[bytes] = []  # every packet sent, as bytes
        self._tasks: set[asyncio.Task[None]] = set()

    def _register_data_receiver(self, receiver: Any) -> None:
        self.receiver = receiver

    def _unregister_data_receiver(self, receiver: Any) -> None:
        self.receiver = None

    async def _send_data(self, data: bytes) -> None:
        self.packets.append(list(parse_packet(data)[3]))
        self.raw.append(data)
        peer = self.peer
        if self.lose or peer is None or peer.receiver is None:
            return
        task = asyncio.get_running_loop().create_task(peer.receiver._handle_data(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def chunks(self, kind: type) -> list[Any]:
        return [c for packet in self.packets for c in packet if isinstance(c, kind)]


class Pair:
    def __init__(self, tuning: SctpTuning) -> None:
        self.link_a, self.link_b = FakeDtls("client"), FakeDtls("server")
        self.link_a.peer, self.link_b.peer = self.link_b, self.link_a
        self.a = ImsSctpTransport(cast(RTCDtlsTransport, self.link_a), tuning=tuning)
        self.b = ImsSctpTransport(cast(RTCDtlsTransport, self.link_b), tuning=tuning)
        self.received: list[bytes] = []
        self.received_back: list[bytes] = []  # what b sent to a

    async def start(self, max_time: int | None = None) -> tuple[RTCDataChannel, RTCDataChannel]:
        params = RTCDataChannelParameters(
            label="anim", maxPacketLifeTime=max_time, negotiated=True, id=1002
        )
        tx = RTCDataChannel(self.a, params)
        rx = RTCDataChannel(self.b, params)
        rx.on("message", self.received.append)
        tx.on("message", self.received_back.append)
        caps = RTCSctpCapabilities(maxMessageSize=65536)
        await asyncio.gather(self.a.start(caps, 5000), self.b.start(caps, 5000))
        await until(lambda: tx.readyState == rx.readyState == "open")
        self.link_a.packets.clear()
        self.link_b.packets.clear()
        return tx, rx

    async def stop(self) -> None:
        await self.a.stop()
        await self.b.stop()
        await asyncio.sleep(0)

    async def wait_received(self, count: int) -> None:
        await until(lambda: len(self.received) >= count)


@pytest.fixture
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    tuning = getattr(request, "param", SctpTuning())
    p = Pair(tuning)
    yield p
    await p.stop()


def unit(i: int, size: int = 120) -> bytes:
    return i.to_bytes(4, "big") * (size // 4)


async def send_until_received(pair: Pair, tx: RTCDataChannel, first: int) -> list[bytes]:
    """Send a fresh message every 20 ms (as an animation source does) until one arrives."""
    sent: list[bytes] = []
    async with asyncio.timeout(STEP):
        while not pair.received:
            sent.append(unit(first + len(sent)))
            tx.send(sent[-1])
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    return sent


async def test_a_stalled_peer_on_a_max_time_channel_gets_only_fresh_messages(pair: Pair) -> None:
    tx, _ = await pair.start(max_time=40)
    pair.link_a.lose = True  # an outage: the first window is lost, the rest waits behind it
    stale = [unit(i) for i in range(100)]
    for data in stale:
        tx.send(data)
    await asyncio.sleep(0.1)  # every one of them is now older than its 40 ms lifetime
    pair.link_a.lose = False
    # T3 (aiortc: RTO 3 s before any RTT sample) abandons the lost window: a FORWARD TSN.
    fresh = await send_until_received(pair, tx, 100)
    assert pair.link_a.chunks(ForwardTsnChunk)
    assert pair.received and set(pair.received) <= set(fresh)
    # What waited behind the window never reached the wire.
    on_wire = {bytes(c.user_data) for c in pair.link_a.chunks(DataChunk)}
    assert len(on_wire & set(stale)) < 50, len(on_wire & set(stale))


async def test_the_same_stall_on_a_reliable_channel_delivers_the_whole_backlog(pair: Pair) -> None:
    tx, _ = await pair.start(max_time=None)
    pair.link_a.lose = True
    for i in range(100):
        tx.send(unit(i))
    await asyncio.sleep(0.1)
    pair.link_a.lose = False
    tx.send(unit(100))
    await pair.wait_received(101)
    assert pair.received == [unit(i) for i in range(101)]


async def test_max_time_zero_is_one_transmission_not_reliable(pair: Pair) -> None:
    tx, _ = await pair.start(max_time=0)
    pair.link_a.lose = True
    tx.send(unit(1))
    await asyncio.sleep(0.05)
    pair.link_a.lose = False
    fresh = await send_until_received(pair, tx, 2)
    assert unit(1) not in pair.received and set(pair.received) <= set(fresh)
    assert [bytes(c.user_data) for c in pair.link_a.chunks(DataChunk)].count(unit(1)) == 1


@pytest.mark.parametrize("pair", [SctpTuning(sack_every=2, sack_delay=0.05)], indirect=True)
async def test_delayed_sacks_every_second_packet_and_after_the_delay(pair: Pair) -> None:
    tx, _ = await pair.start()
    for i in range(10):  # one message per loop turn: ten packets
        tx.send(unit(i))
        await asyncio.sleep(0.002)
    await pair.wait_received(10)
    await asyncio.sleep(0.01)
    assert len(pair.link_b.chunks(SackChunk)) == 5
    tx.send(unit(10))  # a lone packet: acknowledged once the delay is over
    await pair.wait_received(11)
    await asyncio.sleep(0.01)
    assert len(pair.link_b.chunks(SackChunk)) == 5
    await asyncio.sleep(0.08)
    sacks = pair.link_b.chunks(SackChunk)
    assert len(sacks) == 6 and sacks[-1].cumulative_tsn == pair.a._local_tsn - 1


@pytest.mark.parametrize("pair", [SctpTuning(sack_every=2, sack_delay=0.5)], indirect=True)
async def test_a_gap_is_acknowledged_at_once(pair: Pair) -> None:
    tx, _ = await pair.start()
    pair.link_a.lose = True
    tx.send(unit(0))  # lost: what follows arrives after a gap
    await asyncio.sleep(0.005)
    pair.link_a.lose = False
    tx.send(unit(1))
    await until(lambda: bool(pair.link_b.chunks(SackChunk)))
    sack = pair.link_b.chunks(SackChunk)[0]
    assert sack.gaps == [(2, 2)]  # reported at once, not after 500 ms


@pytest.mark.parametrize("pair", [AIORTC_TUNING], indirect=True)
async def test_aiortc_tuning_acknowledges_every_packet_and_never_bundles(pair: Pair) -> None:
    tx, _ = await pair.start()
    for i in range(10):
        tx.send(unit(i))
    await pair.wait_received(10)
    await asyncio.sleep(0.01)
    data_packets = [p for p in pair.link_a.packets if any(isinstance(c, DataChunk) for c in p)]
    assert all(len(p) == 1 for p in pair.link_a.packets)
    assert len(pair.link_b.chunks(SackChunk)) == len(data_packets) == 10


async def test_messages_sent_together_share_packets(pair: Pair) -> None:
    tx, _ = await pair.start()
    for i in range(8):  # 8 x 136 bytes of chunk: one packet (1177 bytes of chunks at most)
        tx.send(unit(i))
    await pair.wait_received(8)
    assert pair.received == [unit(i) for i in range(8)]
    data_packets = [p for p in pair.link_a.packets if any(isinstance(c, DataChunk) for c in p)]
    assert sum(len(p) for p in data_packets) == 8
    assert len(data_packets) < 8
    assert all(sum(len(bytes(c)) for c in p) <= 1177 for p in pair.link_a.packets)  # type: ignore[call-overload]


@pytest.mark.parametrize("pair", [SctpTuning(), AIORTC_TUNING], indirect=True)
async def test_a_waiting_sack_rides_ahead_of_data_going_back(pair: Pair) -> None:
    tx, rx = await pair.start()
    for i in range(10):  # both ways, interleaved, as the two UEs of a room send
        tx.send(unit(i))
        await asyncio.sleep(0.002)
        rx.send(unit(100 + i))
        await asyncio.sleep(0.002)
    await pair.wait_received(10)
    await until(lambda: len(pair.received_back) >= 10)
    await asyncio.sleep(0.01)
    sack_only = [
        p
        for link in (pair.link_a, pair.link_b)
        for p in link.packets
        if all(isinstance(c, SackChunk) for c in p)
    ]
    if pair.a.tuning == AIORTC_TUNING:
        assert len(sack_only) == 20  # a SACK packet for each DATA packet
    else:
        assert len(sack_only) <= 2  # the last ones, with no DATA going back to ride on


@pytest.mark.parametrize("pair", [SctpTuning(sack_every=2, sack_delay=0.2)], indirect=True)
async def test_a_sack_alone_does_not_hurry_a_delayed_one(pair: Pair) -> None:
    tx, _ = await pair.start()
    tx.send(unit(0))
    await pair.wait_received(1)
    assert pair.link_b.chunks(SackChunk) == []  # b acknowledges later (one packet so far)
    await pair.a._send_sack()  # a packet with nothing but a SACK reaches b
    await asyncio.sleep(0.01)
    assert pair.link_b.chunks(SackChunk) == []
    await until(lambda: len(pair.link_b.chunks(SackChunk)) == 1)  # once the delay is over


#: sha-256 (first 16 hex digits) of the aiortc 1.16.0 methods media/sctp_transport.py copies or
#: wraps. If this fails, aiortc changed them: review the copies before updating the digests.
AIORTC_116_METHODS = {
    "_handle_data": "8661b724e20776bb",
    "_transmit": "aa8941d5f8f020e8",
    "_data_channel_flush": "d5f055f33db1abff",
    "_send": "f0f8aff63a9a8743",
    "_send_sack": "ac92513522fa60e7",
    "_data_channel_send": "bff23b8d60ecb624",
    "_receive_data_chunk": "790c2bb8cd0f5dd7",
    "_mark_received": "2ac68b6a3934ca87",
    # Copied in part or replaced by the send and SACK fast paths (media/sctp_transport.py,
    # items 6-7).
    "_receive_sack_chunk": "4b35ccf1372cdec8",
    "_t3_start": "fa045ec7c5fff3d7",
    "_t3_restart": "abf85ae57b8fa144",
    "_t3_cancel": "0e0e3e38da292064",
    "_t3_expired": "0e759bf4b1b2d8c8",
    "_flight_size_increase": "ed02a0fe6eb506c9",
    "_update_advanced_peer_ack_point": "b10416e34e18a3db",
}


def test_the_copied_aiortc_methods_are_still_aiortc_116s() -> None:
    found = {
        name: hashlib.sha256(
            inspect.getsource(getattr(RTCSctpTransport, name)).encode()
        ).hexdigest()[:16]
        for name in AIORTC_116_METHODS
    }
    assert found == AIORTC_116_METHODS
