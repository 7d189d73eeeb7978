"""The synchronous receive path (issue 16): datagram -> DTLS record -> SCTP -> channel from the
socket's callback, without a queue, a future or a task step per datagram.

media/udp_dtls_transport.py offers a datagram to the DTLS layer's receiver only while the DTLS
task waits with nothing queued; media/dtls_transport.py takes only one epoch-1 application
data record per datagram; media/sctp_transport.py (item 8) takes the chunks its fast paths take
and hands the first other one, and every packet after it, to a task. Real peers over loopback
UDP; SCTP packets are built by hand for the association's own state (RFC 9260 3, 3.3.1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from struct import pack

import pytest
from google_crc32c import value as crc32c

from avatar_mf.media import (
    CertificateStore,
    DataChannelEndpointFactory,
    DataChannelSession,
    MessageReceived,
    SessionEventQueue,
    StreamSpec,
)
from avatar_mf.media.dtls_records import CONTENT_APPLICATION_DATA
from avatar_mf.media.dtls_transport import ImsDtlsTransport
from avatar_mf.media.params import RemoteParams
from avatar_mf.media.sctp_send import data_chunk_bytes
from avatar_mf.media.sctp_transport import ImsSctpTransport
from avatar_mf.media.udp_dtls_transport import PlainUdpTransport, _Protocol
from avatar_mf.media.ue_side import UeDataChannels, connect_to_mf

from .conftest import HOST, STEP
from .helpers import exchange, wait_open

STREAM = 1002
STREAMS = [StreamSpec(STREAM, subprotocol="3gpp-ar-animation")]
BINARY = 53  # RFC 8831 8: WebRTC Binary
FIRST, LAST, WHOLE = 2, 1, 3  # RFC 9260 3.3.1: the B and E bits


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(STEP):
        while not condition():  # noqa: ASYNC110  # nothing to wait on but the condition
            await asyncio.sleep(0.001)


# -- the packet path alone ----------------------------------------------------------------


class Taker:
    """A fast receiver that takes datagrams starting with ``F`` and leaves the others."""

    def __init__(self) -> None:
        self.taken: list[bytes] = []

    def __call__(self, data: bytes) -> bool:
        if data.startswith(b"F"):
            self.taken.append(data)
            return True
        return False


PEER = (HOST, 9)
RECORD = bytes([CONTENT_APPLICATION_DATA])  # RFC 7983: a DTLS record's first byte


@pytest.fixture
async def path() -> AsyncIterator[PlainUdpTransport]:
    p = await PlainUdpTransport.bind(HOST)
    try:
        await p.set_remote(
            RemoteParams(address=HOST, port=9, setup="active", fingerprints=(("sha-256", "0"),))
        )
        p.set_dtls_role("client")  # accepts the SDP address only
        _Protocol(p).datagram_received(RECORD + b"first", PEER)  # the first: latches to it
        assert await p._recv() == RECORD + b"first"
        yield p
    finally:
        await p.close()


async def test_a_waiting_reader_lets_the_receiver_take_datagrams(path: PlainUdpTransport) -> None:
    taker = Taker()
    path.set_fast_receiver(taker)
    protocol = _Protocol(path)
    reader = asyncio.ensure_future(path._recv())
    await asyncio.sleep(0)  # the reader waits
    protocol.datagram_received(b"F1", PEER)  # taken at once
    assert taker.taken == [b"F1"]
    protocol.datagram_received(RECORD + b"slow", PEER)  # left: queued for the reader
    protocol.datagram_received(b"F2", PEER)  # behind it: queued too, order kept
    assert taker.taken == [b"F1"]
    assert await reader == RECORD + b"slow"
    assert await path._recv() == b"F2"
    reader = asyncio.ensure_future(path._recv())
    await asyncio.sleep(0)
    protocol.datagram_received(b"F3", PEER)
    assert taker.taken == [b"F1", b"F3"]
    path.set_fast_receiver(None)
    protocol.datagram_received(b"F4", PEER)
    assert await reader == b"F4"


async def test_without_a_waiting_reader_datagrams_queue(path: PlainUdpTransport) -> None:
    taker = Taker()
    path.set_fast_receiver(taker)
    _Protocol(path).datagram_received(b"F1", PEER)  # nobody reads yet (the handshake's start)
    assert taker.taken == []
    assert await path._recv() == b"F1"


async def test_a_receiver_that_raises_does_not_raise_out_of_the_socket_callback(
    path: PlainUdpTransport, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(data: bytes) -> bool:
        raise RuntimeError("a bug above")

    path.set_fast_receiver(broken)
    reader = asyncio.ensure_future(path._recv())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        _Protocol(path).datagram_received(b"F1", PEER)  # must not raise
    assert "fast receiver failed" in caplog.text
    path.set_fast_receiver(None)
    _Protocol(path).datagram_received(b"next", PEER)
    assert await reader == b"next"


# -- real sessions ------------------------------------------------------------------------


class Sessions:
    def __init__(self, mf: DataChannelSession, ue: DataChannelSession) -> None:
        self.mf, self.ue = mf, ue
        self.mf_events, self.ue_events = SessionEventQueue(), SessionEventQueue()
        self.taken: list[bool] = []

    @property
    def mf_dtls(self) -> ImsDtlsTransport:
        assert self.mf._dtls is not None
        return self.mf._dtls

    @property
    def mf_sctp(self) -> ImsSctpTransport:
        assert self.mf._sctp is not None
        return self.mf._sctp

    @property
    def mf_path(self) -> PlainUdpTransport:
        path = self.mf._path
        assert isinstance(path, PlainUdpTransport)
        return path

    def received(self) -> list[str | bytes]:
        return [e.data for e in self.mf_events.pending() if isinstance(e, MessageReceived)]

    def count_taken(self) -> None:
        """Wrap the MF path's fast receiver to record what it took (test-only reach-in)."""
        inner = self.mf_path._fast
        assert inner is not None

        def counting(data: bytes) -> bool:
            taken = inner(data)
            self.taken.append(taken)
            return taken

        self.mf_path.set_fast_receiver(counting)

    def packet(self, *chunks: bytes) -> bytes:
        """An SCTP packet to the MF's association (RFC 9260 3.1: CRC32c over the packet with
        the checksum field zero)."""
        sctp = self.mf_sctp
        body = b"".join(chunks)
        header = pack("!HHL", sctp._remote_port, sctp._local_port, sctp._local_verification_tag)
        checksum = crc32c(header + b"\x00\x00\x00\x00" + body)
        return header + pack("<L", checksum) + body

    def data(self, offset: int, flags: int, seq_offset: int, payload: bytes) -> bytes:
        """A DATA chunk ``offset`` TSNs after the MF's last received, on STREAM."""
        sctp = self.mf_sctp
        last = sctp._last_received_tsn
        assert last is not None
        seq = (sctp._inbound_streams[STREAM].sequence_number + seq_offset) & 0xFFFF
        tsn = (last + 1 + offset) & 0xFFFFFFFF
        return data_chunk_bytes(flags, tsn, STREAM, seq, BINARY, payload)


@pytest.fixture
async def sessions(mf_certificate: CertificateStore) -> AsyncIterator[Sessions]:
    factory = DataChannelEndpointFactory(mf_certificate, media_host=HOST, setup_timeout=STEP)
    holder: list[Sessions] = []
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue = await connect_to_mf(
        factory, UeDataChannels(HOST, ice=False), STREAMS, mf_events=mf_events,
        ue_events=ue_events,
    )  # fmt: skip
    s = Sessions(mf, ue)
    s.mf_events, s.ue_events = mf_events, ue_events
    holder.append(s)
    try:
        await wait_open(mf_events, [STREAM])
        await wait_open(ue_events, [STREAM])
        await exchange(mf, mf_events, ue, ue_events, STREAMS)  # both switch to fast records
        await until(lambda: s.mf_path._fast is not None)
        yield s
    finally:
        await mf.close()
        await ue.close()


async def test_messages_come_through_the_synchronous_path_in_order(sessions: Sessions) -> None:
    sessions.count_taken()
    before = len(sessions.received())
    for i in range(300):
        sessions.ue.send(STREAM, b"%d" % i)
        if i % 7 == 0:
            await asyncio.sleep(0)
    await until(lambda: len(sessions.received()) - before == 300)
    assert sessions.received()[before:] == [b"%d" % i for i in range(300)]
    assert sessions.taken and all(sessions.taken)  # every datagram from the UE: no task step
    assert sessions.mf_dtls.records_dropped == 0


async def test_a_delivered_message_is_there_when_the_socket_callback_returns(
    sessions: Sessions,
) -> None:
    ue_dtls = sessions.ue._dtls
    assert ue_dtls is not None and ue_dtls.records is not None
    record = ue_dtls.records.seal(
        CONTENT_APPLICATION_DATA, sessions.packet(sessions.data(0, WHOLE, 0, b"now"))
    )
    _Protocol(sessions.mf_path).datagram_received(record, sessions.mf_path.remote_address)
    assert sessions.received()[-1] == b"now"  # no loop turn in between


async def test_what_the_fast_paths_do_not_take_goes_to_a_task_and_the_rest_waits(
    sessions: Sessions,
) -> None:
    sctp = sessions.mf_sctp
    before = len(sessions.received())
    first = sessions.packet(sessions.data(0, FIRST, 0, b"A" * 10))  # a fragment: aiortc's
    second = sessions.packet(sessions.data(1, LAST, 0, b"B" * 10))
    third = sessions.packet(sessions.data(2, WHOLE, 1, b"C"))  # fast, but behind them
    sctp.receive_now(first)
    sctp.receive_now(second)
    sctp.receive_now(third)
    assert sctp._backlog_task is not None
    assert sessions.received()[before:] == []  # nothing overtook the fragments
    await until(lambda: len(sessions.received()) - before == 2)
    assert sessions.received()[before:] == [b"A" * 10 + b"B" * 10, b"C"]
    await until(lambda: sctp._backlog_task is None)
    sctp.receive_now(sessions.packet(sessions.data(0, WHOLE, 0, b"D")))
    assert sessions.received()[-1] == b"D"  # synchronous again
    # A gap, then the missing packet: aiortc's reassembly, in order.
    sctp.receive_now(sessions.packet(sessions.data(1, WHOLE, 1, b"F")))
    sctp.receive_now(sessions.packet(sessions.data(0, WHOLE, 0, b"E")))
    await until(lambda: sessions.received()[-2:] == [b"E", b"F"])
    await until(lambda: sctp._backlog_task is None)


@pytest.mark.parametrize(
    "datagram",
    [
        b"\x16\xfe\xfd\x00\x01" + bytes(8) + b"\x00\x10" + bytes(16),  # handshake, epoch 1
        b"\x15\xfe\xfd\x00\x01" + bytes(8) + b"\x00\x02\x01\x00",  # an alert
        b"\x17\xfe\xfd\x00\x00" + bytes(8) + b"\x00\x04abcd",  # application data, epoch 0
        b"\x17\xfe\xfd\x00\x01" + bytes(8) + b"\x00\x20" + bytes(16),  # length beyond the end
        b"\x17\xfe\xfd\x00\x01" + bytes(8),  # the header alone
        b"\x80" + bytes(40),  # RTP (RFC 7983: 128-191)
        b"\x81\xc8" + bytes(30),  # RTCP
    ],
    ids=["handshake", "alert", "epoch-0", "too-long", "header-only", "rtp", "rtcp"],
)
async def test_the_dtls_layer_leaves_everything_but_one_application_record(
    sessions: Sessions, datagram: bytes
) -> None:
    assert sessions.mf_dtls.receive_now(datagram) is False
    ue_dtls = sessions.ue._dtls
    assert ue_dtls is not None and ue_dtls.records is not None
    two = ue_dtls.records.seal(CONTENT_APPLICATION_DATA, b"x") + ue_dtls.records.seal(
        CONTENT_APPLICATION_DATA, b"y"
    )
    assert sessions.mf_dtls.receive_now(two) is False  # two records: OpenSSL's walk, the task's


MALFORMED = [
    b"",
    b"\x17",
    b"\x17\xfe\xfd\x00\x01\x00",  # shorter than a record header
    b"\x17\xfe\xfd\x00\x01" + bytes(8) + b"\x00\x00",  # an empty fragment
    b"\x17\xfe\xfd\x00\x01" + bytes(8) + b"\x00\x18" + bytes(24),  # does not authenticate
    b"\x17\xfe\xfd\x00\x01" + b"\xff" * 8 + b"\x00\x18" + bytes(24),  # far ahead, forged
    b"\x14\x01",  # change cipher spec, truncated
    b"\xc0" + bytes(5),  # outside RFC 7983's ranges
]


async def test_malformed_datagrams_never_raise_and_the_session_goes_on(
    sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    protocol = _Protocol(sessions.mf_path)
    peer = sessions.mf_path.remote_address
    ue_dtls = sessions.ue._dtls
    assert ue_dtls is not None and ue_dtls.records is not None
    not_sctp = [
        ue_dtls.records.seal(CONTENT_APPLICATION_DATA, junk)
        for junk in (b"", b"x", bytes(16), b"\x13\x88\x13\x88" + bytes(40))
    ]
    with caplog.at_level(logging.WARNING):
        for datagram in MALFORMED + not_sctp:
            protocol.datagram_received(datagram, peer)  # must not raise
            await asyncio.sleep(0)  # and the DTLS task must survive what it is left
        before = len(sessions.received())
        sessions.ue.send(STREAM, b"still here")
        await until(lambda: len(sessions.received()) > before)
    assert sessions.received()[-1] == b"still here"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_closing_in_the_middle_of_a_burst_leaves_nothing_behind(
    sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    sctp = sessions.mf_sctp
    with caplog.at_level(logging.WARNING):
        for i in range(50):
            sessions.ue.send(STREAM, b"%d" % i)
        sctp.receive_now(sessions.packet(sessions.data(0, FIRST, 0, b"A")))  # a task runs
        assert sctp._backlog_task is not None
        await asyncio.sleep(0)
        await sessions.mf.close()  # datagrams still arriving, the task mid-packet
        for _ in range(20):
            await asyncio.sleep(0.001)
    assert sctp._backlog_task is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # The autouse no_leaks fixture fails the test if a task was left running.


async def test_a_stopped_association_gets_nothing_more_from_the_synchronous_path(
    sessions: Sessions,
) -> None:
    ue_dtls = sessions.ue._dtls
    assert ue_dtls is not None and ue_dtls.records is not None
    record = ue_dtls.records.seal(
        CONTENT_APPLICATION_DATA, sessions.packet(sessions.data(0, WHOLE, 0, b"late"))
    )
    await sessions.mf_sctp.stop()
    assert sessions.mf_dtls.receive_now(record) is False  # left to the task, which drops it
    assert b"late" not in sessions.received()
