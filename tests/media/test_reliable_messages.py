"""A partially reliable channel that still never loses its configuration (media/session.py
``reliable_messages``, ``ImsSctpTransport.send_reliably``; RFC 3758 3: the PR-SCTP policy is
chosen per message).

Two real sessions on loopback, the MF's stream ``max-time=30``; the UE's path loses everything
for a while (an outage), during which the MF sends a configuration message and stale ones.
Afterwards the UE has the configuration, retransmitted, and none of the stale messages."""

from __future__ import annotations

import asyncio

from avatar_mf.media import (
    CertificateStore,
    DataChannelEndpointFactory,
    MessageReceived,
    SessionEventQueue,
    StreamSpec,
)
from avatar_mf.media.ue_side import UeDataChannels, connect_to_mf

from .conftest import HOST, STEP
from .helpers import wait_open


def is_config(data: str | bytes) -> bool:
    return isinstance(data, bytes) and data.startswith(b"CONFIG")


async def test_the_marked_message_survives_an_outage_on_a_max_time_channel(
    mf_certificate: CertificateStore,
) -> None:
    factory = DataChannelEndpointFactory(
        mf_certificate, media_host=HOST, setup_timeout=STEP, reliable_messages={"anim": is_config}
    )
    spec = StreamSpec(1002, subprotocol="anim", max_time=30)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    mf, ue = await connect_to_mf(
        factory, UeDataChannels(HOST, ice=False), [spec], mf_events=mf_events, ue_events=ue_events
    )
    try:
        await wait_open(mf_events, [1002])
        await wait_open(ue_events, [1002])

        def received() -> list[str | bytes]:
            return [e.data for e in ue_events.pending() if isinstance(e, MessageReceived)]

        # The outage: the UE's path drops what arrives (test-only reach into the session,
        # as UeCall.pause_media(lose=True) does). The read already waiting gets one datagram.
        path = ue._path
        receive = path._recv
        outage = asyncio.Event()

        async def losing() -> bytes:
            while True:
                data = await receive()
                if not outage.is_set():
                    return data

        path._recv = losing  # type: ignore[method-assign]
        mf.send(1002, b"first")  # taken by the read that was already waiting
        got = await asyncio.wait_for(ue_events.wait_for(MessageReceived), STEP)
        assert got.data == b"first"
        outage.set()
        mf.send(1002, b"CONFIG v1")
        for i in range(20):
            mf.send(1002, f"stale {i}".encode())
        await asyncio.sleep(0.1)  # every stale one is past its 30 ms
        outage.clear()
        async with asyncio.timeout(STEP):
            i = 0
            while not any(isinstance(d, bytes) and d.startswith(b"fresh") for d in received()):
                mf.send(1002, f"fresh {i}".encode())
                i += 1
                await asyncio.sleep(0.02)
        assert b"CONFIG v1" in received()
        assert not [d for d in received() if isinstance(d, bytes) and d.startswith(b"stale")]
    finally:
        await mf.close()
        await ue.close()
