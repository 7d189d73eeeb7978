"""Session life cycle: setup timeout, close, remote close, resource release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from avatar_mf.media import (
    CertificateStore,
    ChannelClosed,
    ChannelNotOpenError,
    DataChannelEndpointFactory,
    MediaParamsError,
    MessageReceived,
    RemoteIce,
    RemoteParams,
    SessionClosed,
    SessionEvent,
    SessionEventQueue,
    SessionFailed,
    SessionStateError,
    StreamSpec,
    UnknownStreamError,
)
from avatar_mf.media.ue_side import UeDataChannels, as_remote, connect_to_mf
from avatar_mf.testing.clock import FakeClock

from .conftest import HOST, STEP, udp_socket_count
from .helpers import wait_connected, wait_open

STREAMS = [StreamSpec(0, subprotocol="http"), StreamSpec(1000)]


class _Silent(asyncio.DatagramProtocol):
    """A peer that receives and never answers (SIPp: SDP yes, DTLS no)."""

    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received += 1


@pytest.fixture
async def silent_peer() -> AsyncIterator[tuple[int, _Silent]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Silent, local_addr=(HOST, 0))
    yield transport.get_extra_info("sockname")[1], protocol
    transport.close()


def _sipp_offer(port: int, *, ice: bool) -> RemoteParams:
    return RemoteParams(
        address=HOST,
        port=port,
        setup="actpass",
        fingerprints=(("sha-1", CertificateStore.generate().fingerprint("sha-1")),),
        ice=RemoteIce(
            "sipp", "p" * 22, (f"1 1 udp 2130706431 {HOST} {port} typ host",)
        )
        if ice
        else None,
    )


@pytest.mark.parametrize(("ice", "setup"), [(False, "active"), (False, "passive"), (True, None)])
async def test_setup_timeout_with_silent_peer_releases_everything(
    mf_certificate: CertificateStore,
    silent_peer: tuple[int, _Silent],
    ice: bool,
    setup: str | None,
) -> None:
    port, peer = silent_peer
    clock = FakeClock()
    factory = DataChannelEndpointFactory(
        mf_certificate, media_host=HOST, setup_timeout=10.0, clock=clock
    )
    events = SessionEventQueue()
    sockets_before = udp_socket_count()
    session = await factory.create(
        _sipp_offer(port, ice=ice), STREAMS, on_event=events, setup=setup  # type: ignore[arg-type]
    )
    assert udp_socket_count() == sockets_before + 1
    assert (factory.active_sessions, factory.open_sockets) == (1, 1)
    session.start()
    await asyncio.sleep(0.05)
    if ice:
        # The MF is an ICE-lite agent: it sends no checks (RFC 8445 2.5), and DTLS and SCTP
        # wait for the peer's nomination.
        assert peer.received == 0 and not session.transports_created
    elif setup != "passive":
        assert peer.received > 0  # the ClientHello went out, unanswered
        assert session.transports_created  # DTLS and SCTP exist at once without ICE
    else:
        # The DTLS server without ICE waits for the peer's first record: nothing is sent,
        # and no DTLS transport, SCTP association or channel object exists (issue 16).
        assert peer.received == 0 and not session.transports_created
        assert dict(session.channels) == {} and set(session.streams) == {0, 1000}
    clock.advance(9.9)
    state_before: str = session.state
    assert state_before == "connecting"
    clock.advance(0.1)
    async with asyncio.timeout(STEP):
        failed = await events.wait_for(SessionFailed)
    # The reason names the layer still not up when the timer fired (issue 9: ICE, DTLS, SCTP).
    assert failed.reason in ("setup timeout in ICE", "setup timeout in DTLS")
    assert session.state == "failed" and clock.pending == 0
    assert (factory.active_sessions, factory.open_sockets, session.open_sockets) == (0, 0, 0)
    assert udp_socket_count() == sockets_before
    assert events.pending() == []  # the terminal event is the last one
    await session.close()  # idempotent after a failure
    assert events.pending() == []


async def test_close_is_idempotent_and_releases_everything(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    ue = UeDataChannels(HOST, ice=True)
    sockets_before = udp_socket_count()
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        mf_factory, ue, STREAMS, mf_events=mf_events, ue_events=ue_events
    )
    await wait_open(mf_events, [0, 1000])
    await wait_open(ue_events, [0, 1000])
    assert udp_socket_count() == sockets_before + 2

    await asyncio.gather(mf.close(), mf.close())  # concurrent closes share one release
    await mf.close()
    closed = [e for e in mf_events.pending() if isinstance(e, SessionClosed | SessionFailed)]
    assert closed == [SessionClosed("closed")]
    assert {e.stream_id for e in mf_events.pending() if isinstance(e, ChannelClosed)} == {0, 1000}
    assert mf.state == "closed" and dict(mf.channels) == {}
    assert (mf_factory.active_sessions, mf_factory.open_sockets) == (0, 0)

    # The UE notices (SCTP ABORT) and releases itself.
    async with asyncio.timeout(STEP):
        assert await ue_events.wait_for(SessionClosed) == SessionClosed("sctp closed")
    assert ue.factory.active_sessions == 0 and ue.factory.open_sockets == 0
    assert udp_socket_count() == sockets_before

    with pytest.raises(UnknownStreamError):
        mf.send(0, "late")
    with pytest.raises(SessionStateError):
        mf.start()
    with pytest.raises(SessionStateError):
        mf.add_streams([StreamSpec(2000)])


async def test_close_before_start_and_while_connecting(
    mf_factory: DataChannelEndpointFactory, silent_peer: tuple[int, _Silent]
) -> None:
    events = SessionEventQueue()
    unstarted = await mf_factory.create(_sipp_offer(silent_peer[0], ice=False), STREAMS,
                                        on_event=events)
    connecting = await mf_factory.create(_sipp_offer(silent_peer[0], ice=True), STREAMS,
                                         on_event=events)
    connecting.start()
    await asyncio.sleep(0.02)
    assert mf_factory.open_sockets == 2
    await unstarted.close()
    await connecting.close()
    assert events.pending() == [SessionClosed("closed"), SessionClosed("closed")]
    assert (mf_factory.active_sessions, mf_factory.open_sockets) == (0, 0)


async def test_remote_close_of_a_channel_and_bad_calls(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    ue = UeDataChannels(HOST, ice=False)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        mf_factory, ue, STREAMS, mf_events=mf_events, ue_events=ue_events
    )
    try:
        await wait_open(mf_events, [0, 1000])
        await wait_open(ue_events, [0, 1000])
        ue_session.close_stream(1000)  # SCTP stream reset, both directions
        async with asyncio.timeout(STEP):
            await mf_events.wait_for(ChannelClosed)
            await ue_events.wait_for(ChannelClosed)
        assert set(mf.channels) == {0} and mf.state == "connected"
        with pytest.raises(UnknownStreamError):
            mf.send(1000, "gone")
        with pytest.raises(MediaParamsError):
            mf.add_streams([StreamSpec(0)])
    finally:
        await mf.close()
        await ue_session.close()


async def test_send_before_open_and_faulty_handler(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    hello = asyncio.Event()

    def faulty(event: SessionEvent) -> None:
        if isinstance(event, MessageReceived) and event.data == "hello":
            hello.set()
        raise RuntimeError("consumer bug")

    ue = UeDataChannels(HOST, ice=False)
    ue_events = SessionEventQueue()
    mf, ue_session = await connect_to_mf(mf_factory, ue, STREAMS, mf_events=faulty,
                                         ue_events=ue_events)
    try:
        with pytest.raises(ChannelNotOpenError):
            mf.send(0, "too early")
        await wait_connected(ue_events)
        await wait_open(ue_events, [0, 1000])
        ue_session.send(0, "hello")
        async with asyncio.timeout(STEP):
            await hello.wait()
        assert mf.state == "connected"
    finally:
        await mf.close()
        await ue_session.close()


async def test_unusable_parameters_release_the_socket(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    ipv6_remote = RemoteParams(
        address="::1", port=9, setup="actpass", fingerprints=(("sha-256", "AA"),)
    )
    with pytest.raises(MediaParamsError) as info:
        await mf_factory.create(ipv6_remote, STREAMS)
    assert info.value.status_hint == 488
    with pytest.raises(MediaParamsError):
        await mf_factory.create(_sipp_offer(9, ice=False), [StreamSpec(1), StreamSpec(1)])
    disabled = RemoteParams(address=HOST, port=0, setup="actpass", fingerprints=(("sha-1", "A"),))
    with pytest.raises(MediaParamsError):
        await mf_factory.create(disabled, STREAMS)
    assert (mf_factory.active_sessions, mf_factory.open_sockets) == (0, 0)


async def test_offerer_rejects_bad_answers(mf_factory: DataChannelEndpointFactory) -> None:
    offer = await mf_factory.create_offer(STREAMS, ice=True)
    try:
        with pytest.raises(MediaParamsError):  # actpass is not an answer
            await offer.set_remote(_sipp_offer(9, ice=True))
        answer_without_ice = RemoteParams(
            address=HOST, port=9, setup="active", fingerprints=(("sha-1", "AA"),)
        )
        with pytest.raises(MediaParamsError):
            await offer.set_remote(answer_without_ice)
        with pytest.raises(SessionStateError):
            offer.start()  # no remote parameters yet
    finally:
        await offer.close()


async def test_passive_session_is_built_when_the_peers_first_record_arrives(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    ue = UeDataChannels(HOST, ice=False)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    ue_session = await ue.offer(STREAMS, on_event=ue_events, setup="actpass")
    mf = await mf_factory.create(
        as_remote(ue_session.local), STREAMS, on_event=mf_events, setup="passive"
    )
    try:
        await ue_session.set_remote(as_remote(mf.local))
        assert (mf.dtls_role, ue_session.dtls_role) == ("server", "client")
        mf.start()
        await asyncio.sleep(0.05)
        assert mf.state == "connecting" and not mf.transports_created
        assert dict(mf.channels) == {} and set(mf.streams) == {0, 1000}
        with pytest.raises(ChannelNotOpenError):
            mf.send(0, "too early")
        assert mf.buffered_amount(0) == 0
        mf.close_stream(1000)  # a stream without a channel yet is just forgotten
        assert set(mf.streams) == {0}
        mf.add_streams([StreamSpec(1000)])
        ue_session.start()  # the UE's ClientHello starts the MF's side
        await wait_open(mf_events, [0, 1000])
        await wait_open(ue_events, [0, 1000])
        assert mf.transports_created and set(mf.channels) == {0, 1000}
        mf.send(1000, "hello")
        async with asyncio.timeout(STEP):
            assert (await ue_events.wait_for(MessageReceived)).data == "hello"
    finally:
        await mf.close()
        await ue_session.close()
