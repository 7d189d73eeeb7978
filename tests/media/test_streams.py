"""Streams added mid-session, IPv6 loopback, uvloop, and concurrent setups."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop

from avatar_mf.media import (
    CertificateStore,
    ChannelOpened,
    DataChannelEndpointFactory,
    DataChannelSession,
    MessageReceived,
    SessionEvent,
    SessionEventQueue,
    StreamSpec,
    as_remote,
)
from avatar_mf.media.ue_side import UeDataChannels, connect_to_mf, open_ue_datachannels

from .conftest import HOST, STEP
from .helpers import exchange, wait_connected, wait_open

STREAMS = [StreamSpec(0, subprotocol="http")]


@pytest.mark.parametrize("ice", [True, False])
async def test_add_streams_mid_session(mf_factory: DataChannelEndpointFactory, ice: bool) -> None:
    """A re-INVITE adds dcmap lines: both ends add the negotiated channels, which open at once."""
    ue = UeDataChannels(HOST, ice=ice)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        mf_factory, ue, STREAMS, mf_events=mf_events, ue_events=ue_events
    )
    try:
        await wait_open(mf_events, [0])
        await wait_open(ue_events, [0])
        added = [StreamSpec(1000, label="app", ordered=False), StreamSpec(1002, max_retr=2)]
        mf.add_streams(added)
        ue_session.add_streams(added)
        assert mf_events.pending()[-2:] == [ChannelOpened(1000), ChannelOpened(1002)]
        await wait_open(mf_events, [1000, 1002])
        await wait_open(ue_events, [1000, 1002])
        assert set(mf.channels) == {0, 1000, 1002}
        assert mf.streams[1000].label == "app"
        await exchange(mf, mf_events, ue_session, ue_events, STREAMS + added)
    finally:
        await mf.close()
        await ue_session.close()


async def test_a_stream_added_mid_session_is_known_when_its_channel_opens(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    """Whoever hears ChannelOpened for an added stream finds its spec in ``streams`` (the
    call picks the channel's service by its subprotocol there): the channel opens inside
    add_streams on an established association, so the spec is stored first."""
    ue = UeDataChannels(HOST, ice=False)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    sessions: list[DataChannelSession] = []
    seen: dict[int, StreamSpec | None] = {}

    def on_event(event: SessionEvent) -> None:
        if isinstance(event, ChannelOpened) and sessions:
            seen[event.stream_id] = sessions[0].streams.get(event.stream_id)
        mf_events(event)

    mf, ue_session = await connect_to_mf(
        mf_factory, ue, STREAMS, mf_events=on_event, ue_events=ue_events
    )
    sessions.append(mf)
    try:
        await wait_open(mf_events, [0])
        await wait_open(ue_events, [0])
        added = StreamSpec(1006, label="avatar-audio", subprotocol="avatar-mf-audio")
        mf.add_streams([added])
        assert seen[1006] == added
    finally:
        await mf.close()
        await ue_session.close()


async def test_a_listener_added_to_a_channel_hears_its_messages_after_the_session(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    """The session takes its channels' events without pyee listeners; a listener other code
    adds to a channel still hears every message, once the session has reported it."""
    ue = UeDataChannels(HOST, ice=False)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        mf_factory, ue, STREAMS, mf_events=mf_events, ue_events=ue_events
    )
    try:
        await wait_open(mf_events, [0])
        await wait_open(ue_events, [0])
        heard: list[tuple[object, list[SessionEvent]]] = []

        def listener(data: object) -> None:
            reported = [e for e in mf_events.pending() if isinstance(e, MessageReceived)]
            heard.append((data, reported))

        mf.channels[0].add_listener("message", listener)
        ue_session.send(0, "hello")
        async with asyncio.timeout(STEP):
            got = await mf_events.wait_for(MessageReceived)
        assert got == MessageReceived(0, "hello")
        assert heard == [("hello", [MessageReceived(0, "hello")])]
    finally:
        await mf.close()
        await ue_session.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("ice", [True, False])
async def test_ipv6_loopback(mf_certificate: CertificateStore, ice: bool) -> None:
    factory = DataChannelEndpointFactory(mf_certificate, media_host="::1")
    ue = UeDataChannels("::1", ice=ice, fingerprint_algorithm="sha-1")
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        factory, ue, STREAMS, mf_events=mf_events, ue_events=ue_events
    )
    try:
        assert mf.local.address == "::1"
        await wait_open(mf_events, [0])
        await wait_open(ue_events, [0])
        await exchange(mf, mf_events, ue_session, ue_events, STREAMS)
    finally:
        await mf.close()
        await ue_session.close()


async def _concurrent_setups(count: int) -> list[bool]:
    certificate = CertificateStore.generate()
    mf = DataChannelEndpointFactory(certificate, media_host=HOST, setup_timeout=STEP)
    ue = UeDataChannels(HOST, ice=False, fingerprint_algorithm="sha-1", offer_use_srtp=False)
    ue_ice = UeDataChannels(HOST, ice=True)

    async def one(index: int) -> bool:
        mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
        mf_session, ue_session = await connect_to_mf(
            mf, ue_ice if index % 2 else ue, STREAMS, mf_events=mf_events, ue_events=ue_events
        )
        try:
            await wait_connected(mf_events, ue_events)
            await exchange(mf_session, mf_events, ue_session, ue_events, STREAMS)
            return mf_session.state == "connected"
        finally:
            await mf_session.close()
            await ue_session.close()

    results = await asyncio.gather(*(one(i) for i in range(count)))
    assert mf.active_sessions == 0 and mf.open_sockets == 0
    return results


async def test_concurrent_setups() -> None:
    assert sum(await _concurrent_setups(20)) == 20


def test_under_uvloop() -> None:
    """The product runs on uvloop: the same setups, on a uvloop event loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert sum(runner.run(_concurrent_setups(6))) == 6


@pytest.mark.parametrize("ice", [True, False])
async def test_mf_initiated_offer(mf_factory: DataChannelEndpointFactory, ice: bool) -> None:
    """The MF offers (an MF-initiated call); the UE answers through open_ue_datachannels."""
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf = await mf_factory.create_offer(STREAMS, ice=ice, on_event=mf_events)
    try:
        assert mf.local.setup == "actpass" and (mf.local.ice is not None) == ice
        ue_session, ue_local = await open_ue_datachannels(
            HOST, mf.local, STREAMS, ice=ice, on_event=ue_events, fingerprint_algorithm="sha-1"
        )
        try:
            assert ue_local.setup == "active"
            await mf.set_remote(as_remote(ue_local))
            assert mf.dtls_role == "server"
            mf.start()
            await wait_open(mf_events, [0])
            await wait_open(ue_events, [0])
            await exchange(mf, mf_events, ue_session, ue_events, STREAMS)
        finally:
            await ue_session.close()
    finally:
        await mf.close()
