"""No-ICE path: DTLS straight over UDP, as IMS UEs do it (SHA-1 fingerprints, no use_srtp)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from typing import cast

import pytest
from aiortc import RTCDtlsFingerprint, RTCDtlsParameters, RTCIceTransport
from aiortc.rtcdtlstransport import RTCDtlsTransport

from avatar_mf.media import (
    CertificateStore,
    DataChannelEndpointFactory,
    RemoteParams,
    SessionEventQueue,
    SessionFailed,
    StreamSpec,
    as_remote,
)
from avatar_mf.media.dtls_transport import ImsDtlsTransport
from avatar_mf.media.udp_dtls_transport import PlainUdpTransport
from avatar_mf.media.ue_side import UeDataChannels, connect_to_mf

from .conftest import HOST, STEP
from .helpers import exchange, wait_connected, wait_open

STREAMS = [
    StreamSpec(10, subprotocol="http"),
    StreamSpec(38754, label="low latency", ordered=False, max_time=150),
    StreamSpec(7216, label="low loss", max_retr=5),
]
IDS = [s.stream_id for s in STREAMS]


@pytest.mark.parametrize("mf_setup", ["active", "passive"])
@pytest.mark.parametrize(
    ("fingerprint", "use_srtp"), [("sha-256", True), ("sha-1", False), ("sha-1", True)]
)
async def test_ims_ue_without_ice(
    mf_factory: DataChannelEndpointFactory, mf_setup: str, fingerprint: str, use_srtp: bool
) -> None:
    ue = UeDataChannels(
        HOST, ice=False, fingerprint_algorithm=fingerprint, offer_use_srtp=use_srtp
    )
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        mf_factory,
        ue,
        STREAMS,
        mf_events=mf_events,
        ue_events=ue_events,
        mf_setup=mf_setup,  # type: ignore[arg-type]
    )
    try:
        assert mf.local.ice is None and ue_session.local.ice is None
        assert ue_session.local.fingerprints[0][0] == fingerprint
        assert mf.local.setup == mf_setup
        assert mf.dtls_role == ("client" if mf_setup == "active" else "server")
        await wait_connected(mf_events, ue_events)
        await wait_open(mf_events, IDS)
        await wait_open(ue_events, IDS)
        srtp_profile = mf._dtls._ssl.get_selected_srtp_profile()  # type: ignore[union-attr]
        assert bool(srtp_profile) == use_srtp
        await exchange(mf, mf_events, ue_session, ue_events, STREAMS)
    finally:
        await mf.close()
        await ue_session.close()
    assert mf_factory.open_sockets == 0 and ue.factory.open_sockets == 0


async def test_ue_setup_passive_offer(mf_factory: DataChannelEndpointFactory) -> None:
    """The field offer says a=setup:passive: the MF must be active."""
    ue = UeDataChannels(HOST, ice=False, fingerprint_algorithm="sha-1")
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        mf_factory, ue, STREAMS, mf_events=mf_events, ue_events=ue_events, ue_setup="passive"
    )
    try:
        assert mf.local.setup == "active"
        await wait_open(mf_events, IDS)
        await wait_open(ue_events, IDS)
        await exchange(mf, mf_events, ue_session, ue_events, STREAMS[:1])
    finally:
        await mf.close()
        await ue_session.close()


async def test_client_hello_before_answer_is_processed(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    """The MF (active) starts first; the UE handles the answer later. The queued ClientHello is
    answered at once instead of after OpenSSL's 1 s retransmission."""
    ue = UeDataChannels(HOST, ice=False)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    ue_session = await ue.offer(STREAMS, on_event=ue_events)
    mf = await mf_factory.create(as_remote(ue_session.local), STREAMS, on_event=mf_events)
    try:
        mf.start()
        await asyncio.sleep(0.05)  # the ClientHello waits in the UE's socket queue
        await ue_session.set_remote(as_remote(mf.local))
        began = time.monotonic()
        ue_session.start()
        await wait_connected(mf_events, ue_events)
        assert time.monotonic() - began < 0.5
    finally:
        await mf.close()
        await ue_session.close()


async def test_passive_mf_latches_to_real_source(mf_factory: DataChannelEndpointFactory) -> None:
    """The UE's SDP names a port it does not send from (a NAT): a passive MF answers the real
    source of the first DTLS record."""
    ue = UeDataChannels(HOST, ice=False)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    ue_session = await ue.offer(STREAMS, on_event=ue_events, setup="active")
    wrong_port = dataclasses.replace(as_remote(ue_session.local), port=9)
    mf = await mf_factory.create(wrong_port, STREAMS, on_event=mf_events)
    try:
        assert mf.local.setup == "passive"
        await ue_session.set_remote(as_remote(mf.local))
        mf.start()
        ue_session.start()
        await wait_connected(mf_events, ue_events)
        path = mf._path
        assert isinstance(path, PlainUdpTransport)
        assert path.remote_address == (HOST, ue_session.local.port)
    finally:
        await mf.close()
        await ue_session.close()


async def test_fingerprint_mismatch_fails(mf_factory: DataChannelEndpointFactory) -> None:
    ue = UeDataChannels(HOST, ice=False, fingerprint_algorithm="sha-1")
    mf_events = SessionEventQueue()
    ue_session = await ue.offer(STREAMS)
    forged = dataclasses.replace(
        as_remote(ue_session.local),
        fingerprints=(("sha-1", CertificateStore.generate().fingerprint("sha-1")),),
    )
    mf = await mf_factory.create(forged, STREAMS, on_event=mf_events)
    try:
        await ue_session.set_remote(as_remote(mf.local))
        mf.start()
        ue_session.start()
        async with asyncio.timeout(STEP):
            failed = await mf_events.wait_for(SessionFailed)
        assert failed.reason == "dtls handshake failed: sha-1 fingerprint mismatch"
        assert mf.state == "failed" and mf.open_sockets == 0
    finally:
        await mf.close()
        await ue_session.close()


def _remote_of(path: PlainUdpTransport) -> RemoteParams:
    address, port = path.local_address
    return RemoteParams(address=address, port=port, setup="actpass", fingerprints=(("x", "0"),))


def _params(store: CertificateStore, algorithm: str) -> RTCDtlsParameters:
    return RTCDtlsParameters([RTCDtlsFingerprint(algorithm, store.fingerprint(algorithm))])


@pytest.mark.parametrize("quirk", ["sha-1", "no use_srtp"])
async def test_stock_aiortc_rejects_what_ims_ues_do(quirk: str) -> None:
    """Pins the aiortc 1.16 behaviours ImsDtlsTransport works around: if this starts failing,
    aiortc changed and the overrides in dtls_transport.py should be reviewed."""
    ue_cert, mf_cert = CertificateStore.generate(), CertificateStore.generate()
    ue_path = await PlainUdpTransport.bind(HOST)
    mf_path = await PlainUdpTransport.bind(HOST)
    await ue_path.set_remote(_remote_of(mf_path))
    await mf_path.set_remote(_remote_of(ue_path))
    ue_dtls = ImsDtlsTransport(
        cast(RTCIceTransport, ue_path),
        [ue_cert.rtc_certificate(offer_use_srtp=quirk != "no use_srtp")],
    )
    stock = RTCDtlsTransport(cast(RTCIceTransport, mf_path), [mf_cert.rtc_certificate()])
    ue_dtls._set_role("client")
    stock._set_role("server")
    try:
        async with asyncio.timeout(STEP):
            await asyncio.gather(
                ue_dtls.start(_params(mf_cert, "sha-256")),
                stock.start(_params(ue_cert, "sha-1" if quirk == "sha-1" else "sha-256")),
            )
        assert stock.state == "failed"
    finally:
        await ue_dtls.stop()
        await stock.stop()
        await ue_path.close()
        await mf_path.close()


async def test_active_path_ignores_records_from_other_addresses() -> None:
    """As DTLS client, only the SDP address is the peer: a stray ClientHello is not queued."""
    path = await PlainUdpTransport.bind(HOST)
    try:
        await path.set_remote(
            RemoteParams(address=HOST, port=9, setup="passive", fingerprints=(("sha-256", "00"),))
        )
        path.set_dtls_role("client")
        hello = bytes([22, 0xFE, 0xFD]) + bytes(10) + bytes([1]) + bytes(40)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stray:
            stray.sendto(hello, path.local_address)
            await asyncio.sleep(0.05)
        assert path.remote_address == (HOST, 9)
        assert not path._queue
        path.set_dtls_role("server")  # a server follows a ClientHello from anywhere
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind((HOST, 0))
            peer.sendto(hello, path.local_address)
            await asyncio.sleep(0.05)
            assert path.remote_address == peer.getsockname()
        assert len(path._queue) == 1
    finally:
        await path.close()


def test_bound_socket_binds_the_literal_without_the_resolver() -> None:
    from avatar_mf.media.udp_dtls_transport import bound_socket

    sock = bound_socket(HOST)
    try:
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_DGRAM
        assert not sock.getblocking()
        address, port = sock.getsockname()
        assert address == HOST and port > 0
    finally:
        sock.close()
    if socket.has_ipv6:
        try:
            sock6 = bound_socket("::1")
        except OSError:
            pass  # no IPv6 loopback in this sandbox
        else:
            assert sock6.family == socket.AF_INET6 and sock6.getsockname()[0] == "::1"
            sock6.close()
    with pytest.raises(ValueError):
        bound_socket("localhost")  # a name: bind() leaves it to the event loop


async def test_bind_on_a_name_or_a_foreign_address() -> None:
    from avatar_mf.media.errors import MediaResourceError

    path = await PlainUdpTransport.bind("localhost")  # resolved by the loop, as before
    try:
        assert path.local_address[1] > 0 and path.open_sockets == 1
    finally:
        await path.close()
    with pytest.raises(MediaResourceError):
        await PlainUdpTransport.bind("192.0.2.1")  # TEST-NET-1: not an address of this host
