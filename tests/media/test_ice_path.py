"""ICE path: a browser-style UE (full ICE, host candidates on loopback) against the MF."""

from __future__ import annotations

import asyncio

import pytest

from avatar_mf.media import (
    CertificateStore,
    DataChannelEndpointFactory,
    MessageReceived,
    SessionEventQueue,
    StreamSpec,
)
from avatar_mf.media.ue_side import UeDataChannels, connect_to_mf

from .conftest import HOST, STEP
from .helpers import exchange, wait_connected, wait_open

STREAMS = [
    StreamSpec(0, label="bootstrap", subprotocol="http"),
    StreamSpec(10, label="bootstrap-local", subprotocol="http", ordered=False),
    StreamSpec(1000, label="low latency", ordered=False, max_time=150),
    StreamSpec(1002, label="low loss", max_retr=5, priority=256),
]


@pytest.mark.parametrize("ice_lite", [True, False], ids=["ice-lite", "aioice-full"])
async def test_ice_messages_flow_both_ways_on_every_stream(
    mf_certificate: CertificateStore, ice_lite: bool
) -> None:
    """The MF's ICE-lite agent (media.ice_lite, the default) and aioice's full agent."""
    mf_factory = DataChannelEndpointFactory(
        mf_certificate, media_host=HOST, setup_timeout=STEP, ice_lite=ice_lite
    )
    ue = UeDataChannels(HOST, ice=True)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue_session = await connect_to_mf(
        mf_factory, ue, STREAMS, mf_events=mf_events, ue_events=ue_events
    )
    try:
        assert mf.local.ice is not None and ue_session.local.ice is not None
        assert mf.local.address == HOST  # loopback works as the media host
        assert mf.local.ice.ice_lite is ice_lite
        assert mf.local.ice.candidates[0].split()[4:6] == [HOST, str(mf.local.port)]
        assert mf.local.setup == "active" and mf.dtls_role == "client"
        assert mf_factory.open_sockets == 1 and mf.open_sockets == 1
        await wait_connected(mf_events, ue_events)
        ids = [s.stream_id for s in STREAMS]
        await wait_open(mf_events, ids)
        await wait_open(ue_events, ids)

        channel = mf.channels[1000]
        assert (channel.negotiated, channel.id, channel.ordered) == (True, 1000, False)
        assert channel.maxPacketLifeTime == 150 and mf.channels[1002].maxRetransmits == 5
        assert mf.channels[0].protocol == "http" and mf.channels[0].label == "bootstrap"

        await exchange(mf, mf_events, ue_session, ue_events, STREAMS)
    finally:
        await mf.close()
        await ue_session.close()
    assert mf_factory.active_sessions == 0 and mf_factory.open_sockets == 0


@pytest.mark.parametrize("chunk", [None, 256])
async def test_large_message_fragmented(
    mf_certificate: object, chunk: int | None
) -> None:
    """Messages larger than a DATA chunk, with aiortc's chunk size and a small configured one."""
    from avatar_mf.media import CertificateStore

    assert isinstance(mf_certificate, CertificateStore)
    mf_factory = DataChannelEndpointFactory(
        mf_certificate, media_host=HOST, user_data_max_length=chunk
    )
    ue = UeDataChannels(HOST, ice=True, user_data_max_length=chunk)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    streams = [StreamSpec(1000)]
    mf, ue_session = await connect_to_mf(
        mf_factory, ue, streams, mf_events=mf_events, ue_events=ue_events
    )
    try:
        await wait_open(mf_events, [1000])
        await wait_open(ue_events, [1000])
        payload = bytes(range(256)) * 64  # 16 KiB
        mf.send(1000, payload)
        ue_session.send(1000, payload.hex())
        async with asyncio.timeout(STEP):
            assert (await ue_events.wait_for(MessageReceived)).data == payload
            assert (await mf_events.wait_for(MessageReceived)).data == payload.hex()
    finally:
        await mf.close()
        await ue_session.close()


def test_ice_credentials_are_ice_chars_of_the_rfc_lengths() -> None:
    import base64
    import re

    from avatar_mf.media.ice_transport import ice_credentials

    # Every byte value reaches the encoding; the result is base64's alphabet, no padding.
    random = bytes(range(0, 252, 12))
    ufrag, password = ice_credentials(random)
    assert ufrag + password == base64.b64encode(random).decode()
    assert (len(ufrag), len(password)) == (4, 24)  # RFC 8445 5.3: >= 24 and 128 bits
    assert re.fullmatch(r"[A-Za-z0-9+/]+", ufrag + password)  # RFC 8839 ice-char
    assert ice_credentials(bytes(21)) == ("AAAA", "A" * 24)
    with pytest.raises(ValueError):
        ice_credentials(bytes(16))


async def test_ice_connection_uses_fresh_credentials_each_time() -> None:
    from avatar_mf.media.ice_transport import IcePacketTransport

    paths = [await IcePacketTransport.gather(HOST, controlling=False) for _ in range(2)]
    try:
        ices = [path.local_ice for path in paths]
        assert all(ice is not None for ice in ices)
        ufrags = {ice.ufrag for ice in ices if ice is not None}
        passwords = {ice.pwd for ice in ices if ice is not None}
        assert len(ufrags) == 2 and len(passwords) == 2
        assert all(len(p) == 24 for p in passwords)
    finally:
        for path in paths:
            await path.close()
