"""The DTLS 1.2 fast record layer (media/dtls_records.py) against OpenSSL, and the switch to
it in ImsDtlsTransport (media/dtls_transport.py).

Sans-IO first: two pyOpenSSL endpoints (the MF's own SSL context) finish a handshake over
memory BIOs; then records the fast layer seals must open in OpenSSL and records OpenSSL seals
must open in the fast layer, for each AEAD suite and both roles, with the keys derived from
OpenSSL's master secret and randoms (RFC 5246 6.3). The replay window (RFC 6347 4.1.2.6),
tampered records and close_notify are checked the same way. Then real peers over loopback
UDP: the fast path against stock aiortc (OpenSSL for every record) both ways, and two MF-style
peers that both switch.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Callable
from typing import cast

import pytest
from aiortc import RTCDtlsFingerprint, RTCDtlsParameters, RTCIceTransport
from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCDtlsTransport
from OpenSSL import SSL

from avatar_mf.media import (
    CertificateStore,
    DataChannelEndpointFactory,
    MessageReceived,
    RemoteParams,
    SessionEventQueue,
    StreamSpec,
)
from avatar_mf.media.dtls_records import (
    AEAD_SUITES,
    ALERT_CLOSE_NOTIFY,
    CONTENT_ALERT,
    CONTENT_APPLICATION_DATA,
    MAX_SEQUENCE,
    RecordLayer,
    ReplayWindow,
    SequenceExhausted,
    derive_key_block,
    prf,
    split_records,
)
from avatar_mf.media.dtls_transport import ImsDtlsTransport
from avatar_mf.media.udp_dtls_transport import PlainUdpTransport
from avatar_mf.media.ue_side import UeDataChannels, connect_to_mf

from .conftest import HOST, STEP
from .helpers import exchange, wait_open

SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
]


def _drain(source: SSL.Connection) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(source.bio_read(65536))
        except SSL.WantReadError:
            return out


def handshake(cipher: str) -> tuple[SSL.Connection, SSL.Connection]:
    """A client and a server (the MF's SSL context, one cipher suite) after a DTLS handshake
    over memory BIOs."""
    ends = []
    for _ in range(2):
        context = CertificateStore.generate().rtc_certificate()._create_ssl_context(SRTP_PROFILES)
        context.set_cipher_list(cipher.encode())
        ends.append(SSL.Connection(context))
    client, server = ends
    client.set_connect_state()
    server.set_accept_state()
    for _ in range(10):
        for a, b in ((client, server), (server, client)):
            try:
                a.do_handshake()
            except SSL.WantReadError:
                pass
            for datagram in _drain(a):
                b.bio_write(datagram)
    assert client.get_cipher_name() == cipher
    assert client.get_protocol_version_name() == "DTLSv1.2"
    return client, server


def sealed_by(connection: SSL.Connection, data: bytes) -> bytes:
    connection.send(data)
    (datagram,) = _drain(connection)
    return datagram


def opened_by(connection: SSL.Connection, datagram: bytes) -> bytes:
    connection.bio_write(datagram)
    return connection.recv(65536)


def fast_layer(connection: SSL.Connection, *, next_write_sequence: int = 1) -> RecordLayer:
    """The fast layer for ``connection``'s side (epoch 1; OpenSSL's Finished took seq 0)."""
    suite = AEAD_SUITES[connection.get_cipher_name() or ""]
    master, client_random, server_random = (
        connection.master_key(), connection.client_random(), connection.server_random()
    )  # fmt: skip
    assert master and client_random and server_random
    return RecordLayer(
        suite,
        derive_key_block(suite, master, client_random, server_random),
        is_client=connection.get_app_data() == "client",
        next_write_sequence=next_write_sequence,
    )


def the_record(datagram: bytes) -> object:
    (record,) = split_records(datagram)
    return record


@pytest.fixture(params=SUITES)
def ends(request: pytest.FixtureRequest) -> tuple[SSL.Connection, SSL.Connection]:
    client, server = handshake(request.param)
    client.set_app_data("client")
    server.set_app_data("server")
    return client, server


@pytest.mark.parametrize("fast_side", ["client", "server"])
def test_fast_records_and_openssl_records_open_each_other(
    ends: tuple[SSL.Connection, SSL.Connection], fast_side: str
) -> None:
    client, server = ends
    fast_end, peer = (client, server) if fast_side == "client" else (server, client)
    # OpenSSL of the fast side sent a record before the switch: the layer continues after it.
    first = sealed_by(fast_end, b"before the switch")
    assert opened_by(peer, first) == b"before the switch"
    written = max(r.sequence for r in split_records(first))
    layer = fast_layer(fast_end, next_write_sequence=written + 1)
    for i in range(5):
        message = f"fast {i}".encode() * (i + 1)
        record = layer.seal(CONTENT_APPLICATION_DATA, message)
        assert opened_by(peer, record) == message  # OpenSSL opens the fast layer's record
        reply = f"openssl {i}".encode() * 40
        (incoming,) = split_records(sealed_by(peer, reply))
        assert incoming.epoch == 1
        assert layer.open(incoming) == reply  # the fast layer opens OpenSSL's


def test_replayed_and_too_old_records_are_dropped(
    ends: tuple[SSL.Connection, SSL.Connection],
) -> None:
    client, server = ends
    layer = fast_layer(server)
    sent = [next(split_records(sealed_by(client, bytes([i]) * 30))) for i in range(80)]
    newest = sent[70]
    assert layer.open(newest) == bytes([70]) * 30
    assert layer.open(newest) is None  # replay
    in_window = sent[70 - 60]  # late, but within 64 of the newest: accepted once
    assert layer.open(in_window) == bytes([10]) * 30
    assert layer.open(in_window) is None
    assert layer.open(sent[70 - 66]) is None  # left of the window
    assert layer.open(sent[79]) == bytes([79]) * 30  # the window moves on


def test_a_one_record_datagram_opens_in_place(
    ends: tuple[SSL.Connection, SSL.Connection],
) -> None:
    client, server = ends
    layer = fast_layer(server)
    datagram = sealed_by(client, b"one record")
    assert layer.open_datagram(datagram) == b"one record"
    assert layer.open_datagram(datagram) is None  # replay
    two = sealed_by(client, b"a") + sealed_by(client, b"b")
    assert layer.open_datagram(two) is None  # not one record: split_records' job
    assert [layer.open(r) for r in split_records(two)] == [b"a", b"b"]
    forged = bytearray(sealed_by(client, b"c"))
    forged[-3] ^= 0x10
    assert layer.open_datagram(bytes(forged)) is None


def test_a_tampered_record_is_dropped_and_not_remembered(
    ends: tuple[SSL.Connection, SSL.Connection],
) -> None:
    client, server = ends
    layer = fast_layer(client)
    datagram = sealed_by(server, b"genuine")
    for position in (-1, 13 + 2, len(datagram) // 2):  # the tag, explicit nonce/body, body
        forged = bytearray(datagram)
        forged[position] ^= 0x01
        assert layer.open(the_record(bytes(forged))) is None  # type: ignore[arg-type]
    header_forged = bytearray(datagram)
    header_forged[0] = CONTENT_ALERT  # the type is authenticated (additional data)
    assert layer.open(the_record(bytes(header_forged))) is None  # type: ignore[arg-type]
    assert layer.open(the_record(datagram)) == b"genuine"  # type: ignore[arg-type]


def test_a_fast_close_notify_closes_openssl(
    ends: tuple[SSL.Connection, SSL.Connection],
) -> None:
    client, server = ends
    layer = fast_layer(client)
    assert opened_by(server, layer.seal(CONTENT_APPLICATION_DATA, b"last")) == b"last"
    server.bio_write(layer.seal(CONTENT_ALERT, ALERT_CLOSE_NOTIFY))
    with pytest.raises(SSL.ZeroReturnError):
        server.recv(65536)


def test_records_sealed_with_the_other_sides_keys_do_not_open(
    ends: tuple[SSL.Connection, SSL.Connection],
) -> None:
    client, _ = ends
    layer = fast_layer(client)
    mirror = fast_layer(client)  # the same side: it reads with the key the other writes with
    assert mirror.open(the_record(layer.seal(CONTENT_APPLICATION_DATA, b"x"))) is None  # type: ignore[arg-type]


def test_split_records_walks_a_datagram_and_stops_at_a_truncated_record() -> None:
    client, server = handshake(SUITES[0])
    client.set_app_data("client")
    layer = fast_layer(client)
    a, b = (layer.seal(CONTENT_APPLICATION_DATA, m) for m in (b"one", b"two"))
    records = list(split_records(a + b + b[:20]))
    assert [bytes(r.raw) for r in records] == [a, b]
    assert [r.sequence for r in records] == [1, 2]
    assert list(split_records(a[:12])) == []


def test_replay_window_shifts_and_forgets() -> None:
    window = ReplayWindow()
    assert window.fresh(0)
    window.mark(0)
    assert not window.fresh(0)
    window.mark(200)  # a jump larger than the window
    assert not window.fresh(200) and window.fresh(199) and not window.fresh(136)
    window.mark(199)
    assert not window.fresh(199) and window.fresh(198)
    taken_over = ReplayWindow(1000, older_seen=True)
    assert not taken_over.fresh(999) and not taken_over.fresh(1000) and taken_over.fresh(1001)


def test_the_write_sequence_number_never_wraps(
    ends: tuple[SSL.Connection, SSL.Connection],
) -> None:
    client, _ = ends
    layer = fast_layer(client, next_write_sequence=MAX_SEQUENCE)
    layer.seal(CONTENT_APPLICATION_DATA, b"the last one")
    with pytest.raises(SequenceExhausted):
        layer.seal(CONTENT_APPLICATION_DATA, b"one too many")


def test_prf_matches_a_published_tls12_vector() -> None:
    # The TLS 1.2 PRF (SHA-256) test vector posted to the IETF TLS list (2009), first 32 bytes.
    secret = bytes.fromhex("9bbe436ba940f017b17652849a71db35")
    seed = bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c")
    out = prf(secret, b"test label", seed, 100, "sha256")
    assert out[:32].hex() == "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
    assert len(out) == 100


# -- real peers over loopback UDP ---------------------------------------------------------


class Collector:
    def __init__(self) -> None:
        self.data: list[bytes] = []

    async def _handle_data(self, data: bytes) -> None:
        self.data.append(data)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(STEP):
        while not condition():  # noqa: ASYNC110  # aiortc's DTLS has no event to wait on
            await asyncio.sleep(0.001)


def _remote_of(path: PlainUdpTransport) -> RemoteParams:
    address, port = path.local_address
    return RemoteParams(address=address, port=port, setup="actpass", fingerprints=(("x", "0"),))


def _params(store: CertificateStore) -> RTCDtlsParameters:
    return RTCDtlsParameters([RTCDtlsFingerprint("sha-256", store.fingerprint("sha-256"))])


@pytest.mark.parametrize("fast_role", ["client", "server"])
@pytest.mark.parametrize("closer", ["fast", "stock"])
async def test_fast_path_against_stock_aiortc_over_udp(fast_role: str, closer: str) -> None:
    fast_cert, stock_cert = CertificateStore.generate(), CertificateStore.generate()
    fast_path, stock_path = await PlainUdpTransport.bind(HOST), await PlainUdpTransport.bind(HOST)
    await fast_path.set_remote(_remote_of(stock_path))
    await stock_path.set_remote(_remote_of(fast_path))
    fast = ImsDtlsTransport(cast(RTCIceTransport, fast_path), [fast_cert.rtc_certificate()])
    stock = RTCDtlsTransport(cast(RTCIceTransport, stock_path), [stock_cert.rtc_certificate()])
    fast._set_role(fast_role)
    stock._set_role("server" if fast_role == "client" else "client")
    fast_in, stock_in = Collector(), Collector()
    fast._register_data_receiver(fast_in)
    stock._register_data_receiver(stock_in)
    try:
        async with asyncio.timeout(STEP):
            await asyncio.gather(fast.start(_params(stock_cert)), stock.start(_params(fast_cert)))
        assert fast.state == stock.state == "connected"
        await fast._send_data(b"through openssl")  # before the peer's first record
        await until(lambda: len(stock_in.data) == 1)
        assert fast.records is None
        await stock._send_data(b"the peer's first")
        await until(lambda: len(fast_in.data) == 1)
        assert fast.records is not None  # switched on the peer's application data
        for i in range(100):
            await fast._send_data(b"fast %d" % i)
            await stock._send_data(b"stock %d" % i)
        await until(lambda: len(stock_in.data) == 101 and len(fast_in.data) == 101)
        assert stock_in.data == [b"through openssl"] + [b"fast %d" % i for i in range(100)]
        assert fast_in.data == [b"the peer's first"] + [b"stock %d" % i for i in range(100)]
        assert fast.records_dropped == 0
        fast_path._queue.append(b"")  # an empty datagram from the peer's address
        await stock._send_data(b"after the empty one")
        await until(lambda: fast_in.data[-1:] == [b"after the empty one"])
        if closer == "fast":
            await fast.stop()  # its close_notify, sealed by the fast path
            await until(lambda: stock.state == "closed")
        else:
            await stock.stop()  # OpenSSL's close_notify, handed to OpenSSL after the switch
            await until(lambda: fast.state == "closed")
    finally:
        await fast.stop()
        await stock.stop()
        await fast_path.close()
        await stock_path.close()


STREAMS = [StreamSpec(1002, subprotocol="3gpp-ar-animation"), StreamSpec(10, subprotocol="http")]


@pytest.mark.parametrize("ue_fast", [True, False])
async def test_sessions_switch_and_deliver(mf_certificate: CertificateStore, ue_fast: bool) -> None:
    mf_factory = DataChannelEndpointFactory(mf_certificate, media_host=HOST, setup_timeout=STEP)
    ue = UeDataChannels(HOST, ice=False, dtls_fast_records=ue_fast)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        mf_factory, ue, STREAMS, mf_events=mf_events, ue_events=ue_events
    )
    try:
        await wait_open(mf_events, [1002, 10])
        await wait_open(ue_events, [1002, 10])
        await exchange(mf, mf_events, ue_session, ue_events, STREAMS)
        assert mf._dtls is not None and ue_session._dtls is not None
        assert mf._dtls.records is not None
        assert (ue_session._dtls.records is not None) == ue_fast
        for i in range(200):  # enough to wrap nothing, but to cross many SACKs
            mf.send(1002, b"%d" % i)
        async with asyncio.timeout(STEP):
            got = [(await ue_events.wait_for(MessageReceived)).data for _ in range(200)]
        assert got == [b"%d" % i for i in range(200)]
    finally:
        await mf.close()
        await ue_session.close()


async def test_the_switch_can_be_turned_off(mf_certificate: CertificateStore) -> None:
    mf_factory = DataChannelEndpointFactory(
        mf_certificate, media_host=HOST, setup_timeout=STEP, dtls_fast_records=False
    )
    ue = UeDataChannels(HOST, ice=False)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        mf_factory, ue, STREAMS, mf_events=mf_events, ue_events=ue_events
    )
    try:
        await wait_open(mf_events, [1002, 10])
        await wait_open(ue_events, [1002, 10])
        await exchange(mf, mf_events, ue_session, ue_events, STREAMS)
        assert mf._dtls is not None and ue_session._dtls is not None
        assert mf._dtls.records is None and ue_session._dtls.records is not None
    finally:
        await mf.close()
        await ue_session.close()


#: sha-256 (first 16 hex digits) of the aiortc 1.16.0 RTCDtlsTransport methods
#: media/dtls_transport.py copies or wraps. If this fails, aiortc changed them: review the
#: copies (and the fast path's assumptions about OpenSSL's writes) before updating these.
AIORTC_116_METHODS = {
    "_recv_next": "998076720c05aa13",
    "_write_ssl": "6573c0237063bdf0",
    "_send_data": "ee6cd411dd7f8eda",
    "stop": "44a8b3fc40aa9d7b",
}


def test_the_copied_aiortc_methods_are_still_aiortc_116s() -> None:
    found = {
        name: hashlib.sha256(
            inspect.getsource(getattr(RTCDtlsTransport, name)).encode()
        ).hexdigest()[:16]
        for name in AIORTC_116_METHODS
    }
    assert found == AIORTC_116_METHODS
