"""A released session leaves no reference cycle: reference counting frees it, not the collector.

Each test runs a session through its life with the cyclic garbage collector off, then asks the
collector (``gc.DEBUG_SAVEALL``) what it would have had to free: none of the session's objects
may be there. Cyclic garbage per call is what made full collections pause the MF's event loop
for hundreds of milliseconds under load (docs/performance.md, "SIP call rate").
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from avatar_mf.media import (
    DataChannelEndpointFactory,
    SessionClosed,
    SessionEvent,
    SessionEventQueue,
    StreamSpec,
)
from avatar_mf.media.dtls_transport import ImsDtlsTransport
from avatar_mf.media.ice_lite import IceLiteAgent, IceLitePath
from avatar_mf.media.ice_transport import IcePacketTransport, _HostOnlyConnection
from avatar_mf.media.sctp_transport import ImsSctpTransport
from avatar_mf.media.session import DataChannelSession
from avatar_mf.media.udp_dtls_transport import PlainUdpTransport
from avatar_mf.media.ue_side import UeDataChannels, connect_to_mf

from .conftest import HOST, STEP
from .helpers import wait_open
from .test_lifecycle import _Silent, _sipp_offer

STREAMS = [StreamSpec(0, subprotocol="http"), StreamSpec(1000)]
WATCHED = (
    DataChannelSession,
    ImsDtlsTransport,
    ImsSctpTransport,
    PlainUdpTransport,
    IcePacketTransport,
    _HostOnlyConnection,
    IceLitePath,
    IceLiteAgent,
)


class _Owner:
    """Holds a session and handles its events with a bound method, as a call's media does:
    a reference cycle while the session lives, which the release must break."""

    def __init__(self) -> None:
        self.session: DataChannelSession | None = None
        self.events = SessionEventQueue()

    def on_event(self, event: SessionEvent) -> None:
        self.events(event)


@contextmanager
def collector_off() -> Iterator[list[Any]]:
    """Run the body with the cyclic GC off; the list gets the watched objects found in
    reference cycles afterwards (the garbage the collector would have had to free)."""
    gc.collect()
    gc.disable()
    found: list[Any] = []
    try:
        yield found
    finally:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found.extend(o for o in gc.garbage if isinstance(o, WATCHED))
        finally:
            gc.garbage.clear()
            gc.set_debug(0)
            gc.enable()
            gc.collect()


async def _settle() -> None:
    for _ in range(5):  # let the tasks ended by the release finish
        await asyncio.sleep(0)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Silent, local_addr=(HOST, 0))
    yield transport.get_extra_info("sockname")[1]
    transport.close()


@pytest.mark.parametrize("ice", [False, True])
async def test_session_closed_while_connecting_leaves_no_cycle(
    mf_factory: DataChannelEndpointFactory, silent_port: int, ice: bool
) -> None:
    """The SIPp case: the peer never answers DTLS (or ICE); the call ends with BYE."""
    with collector_off() as cyclic:
        owner = _Owner()
        owner.session = await mf_factory.create(
            _sipp_offer(silent_port, ice=ice), STREAMS, on_event=owner.on_event
        )
        owner.session.start()
        await asyncio.sleep(0.02)
        await owner.session.close()
        assert owner.events.pending()[-1] == SessionClosed("closed")
        del owner
        await _settle()
    assert cyclic == []


@pytest.mark.parametrize("ice", [False, True])
async def test_connected_session_closed_leaves_no_cycle(
    mf_factory: DataChannelEndpointFactory, ice: bool
) -> None:
    """Channels open, messages flowing, then closed by the MF (and the UE follows)."""
    with collector_off() as cyclic:
        owner = _Owner()
        ue = UeDataChannels(HOST, ice=ice)
        ue_events = SessionEventQueue()
        mf, ue_session = await connect_to_mf(
            mf_factory, ue, STREAMS, mf_events=owner.on_event, ue_events=ue_events
        )
        owner.session = mf
        await wait_open(owner.events, [0, 1000])
        await wait_open(ue_events, [0, 1000])
        mf.send(0, "hello")
        await mf.close()
        async with asyncio.timeout(STEP):
            await ue_events.wait_for(SessionClosed)
        await ue_session.close()
        del owner, mf, ue_session, ue
        await _settle()
    assert cyclic == []
