"""SRTP on the data channel's DTLS transport (media/srtp_path.py): a UE and the MF over real
loopback ICE + DTLS, RTP and RTCP both ways, bad SRTP counted, use_srtp only when asked."""

from __future__ import annotations

import asyncio
import os
from collections import Counter

from avatar_mf.media import (
    DataChannelEndpointFactory,
    DataChannelSession,
    SessionEventQueue,
    StreamSpec,
)
from avatar_mf.media.srtp_path import BUNDLE_ADDRESS, SrtpPath
from avatar_mf.media.ue_side import UeDataChannels, as_remote
from avatar_mf.rtp.packet import RtpPacket

from .conftest import HOST
from .helpers import wait_connected

STREAMS = [StreamSpec(1000)]
RTCP_RR = b"\x80\xc9\x00\x01" + (0x1234).to_bytes(4, "big")  # an empty receiver report


class _Side:
    def __init__(self, node: Counter[str] | None = None) -> None:
        self.path = SrtpPath(node_drops=node)
        self.rtp: list[tuple[bytes, tuple[str, int]]] = []
        self.rtcp: list[bytes] = []
        self.keys = asyncio.Event()
        self.path.on_rtp = lambda data, addr: self.rtp.append((data, addr))
        self.path.on_rtcp = lambda data, addr: self.rtcp.append(data)
        self.path.on_ready = self.keys.set


async def _until(predicate: object) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _pair(
    factory: DataChannelEndpointFactory, *, srtp: bool | None
) -> tuple[DataChannelSession, DataChannelSession, SessionEventQueue, SessionEventQueue]:
    ue = UeDataChannels(HOST, ice=True)
    mf_events, ue_events = SessionEventQueue(), SessionEventQueue()
    ue_session = await ue.offer(STREAMS, on_event=ue_events)
    mf_session = await factory.create(
        as_remote(ue_session.local), STREAMS, on_event=mf_events, srtp=srtp
    )
    await ue_session.set_remote(as_remote(mf_session.local))
    return mf_session, ue_session, mf_events, ue_events


async def test_rtp_and_rtcp_both_ways_and_bad_srtp_counted(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    node: Counter[str] = Counter()
    mf_side, ue_side = _Side(node), _Side()
    mf, ue, mf_events, ue_events = await _pair(mf_factory, srtp=True)
    try:
        mf.attach_srtp(mf_side.path)
        ue.attach_srtp(ue_side.path)
        # Before the handshake there are no keys: nothing leaves, counted on the path only.
        mf_side.path.send_rtp(b"\x80\x00" + bytes(10), BUNDLE_ADDRESS)
        assert mf_side.path.drops["srtp_not_ready"] == 1 and not node
        mf.start()
        ue.start()
        await wait_connected(mf_events, ue_events)
        await mf_side.keys.wait()
        await ue_side.keys.wait()
        assert mf_side.path.ready and ue_side.path.ready

        packet = RtpPacket(111, 7, 960, 0xABCD, b"opus payload").serialize()
        ue_side.path.send_rtp(packet, ("ignored", 1))
        mf_side.path.send_rtp(packet, ("ignored", 1))
        mf_side.path.send_rtcp(RTCP_RR, ("ignored", 1))
        await _until(lambda: mf_side.rtp and ue_side.rtp and ue_side.rtcp)
        # Decrypted exactly as sent, from the one BUNDLE source.
        assert mf_side.rtp == [(packet, BUNDLE_ADDRESS)]
        assert ue_side.rtp == [(packet, BUNDLE_ADDRESS)] and ue_side.rtcp == [RTCP_RR]

        # Garbage that looks like RTP, and a replay of what was already received.
        ue_side.path.send_unprotected(b"\x80\x6f" + os.urandom(60))
        ue_side.path.send_unprotected(b"\x80\xc9" + os.urandom(60))  # "SRTCP"
        await _until(lambda: mf_side.path.drops["srtp_auth"] >= 2)
        assert node["srtp_auth"] == 2 and len(mf_side.rtp) == 1
        # The association goes on: data channels and SRTP.
        ue_side.path.send_rtp(RtpPacket(111, 8, 1920, 0xABCD, b"more").serialize(), BUNDLE_ADDRESS)
        await _until(lambda: len(mf_side.rtp) == 2)
        assert mf.state == "connected"

        # A closed path is detached: nothing more reaches it.
        mf_side.path.close()
        ue_side.path.send_rtp(RtpPacket(111, 9, 2880, 0xABCD, b"late").serialize(), BUNDLE_ADDRESS)
        await asyncio.sleep(0.1)
        assert len(mf_side.rtp) == 2
    finally:
        await mf.close()
        await ue.close()


async def test_data_only_association_offers_no_use_srtp(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    mf_side = _Side()
    mf, ue, mf_events, ue_events = await _pair(mf_factory, srtp=False)
    try:
        mf.attach_srtp(mf_side.path)
        mf.start()
        ue.start()
        await wait_connected(mf_events, ue_events)  # data channels come up without SRTP
        assert not mf_side.path.ready and not mf_side.keys.is_set()
        mf_side.path.send_rtp(b"\x80\x00" + bytes(10), BUNDLE_ADDRESS)
        assert mf_side.path.drops["srtp_not_ready"] == 1
    finally:
        await mf.close()
        await ue.close()


async def test_srtp_keys_derived_only_when_a_path_needs_them(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    # A browser-style UE offers use_srtp and the MF's hello accepts it (srtp=None: the
    # factory's default), but no audio is BUNDLEd: the handshake derives no SRTP keys (issue
    # 16: ~25 us of every set-up); the first path attached after the handshake gets them.
    mf_side, ue_side = _Side(), _Side()
    mf, ue, mf_events, ue_events = await _pair(mf_factory, srtp=None)
    try:
        mf.start()
        ue.start()
        await wait_connected(mf_events, ue_events)
        dtls = mf._dtls  # the MF's transport: no public view of its SRTP sessions
        assert dtls is not None and not dtls.has_srtp_keys
        calls: list[None] = []
        mf_side.path.on_ready = lambda: calls.append(None)
        mf.attach_srtp(mf_side.path)
        assert calls == [None] and mf_side.path.ready and dtls.has_srtp_keys
        ue.attach_srtp(ue_side.path)
        await ue_side.keys.wait()
        packet = RtpPacket(111, 7, 960, 0xABCD, b"opus payload").serialize()
        ue_side.path.send_rtp(packet, BUNDLE_ADDRESS)
        mf_side.path.send_rtp(packet, BUNDLE_ADDRESS)
        await _until(lambda: mf_side.rtp and ue_side.rtp)
        assert mf_side.rtp == [(packet, BUNDLE_ADDRESS)] and ue_side.rtp == mf_side.rtp
    finally:
        await mf.close()
        await ue.close()


async def test_srtp_before_any_path_derives_the_keys_and_is_counted(
    mf_factory: DataChannelEndpointFactory,
) -> None:
    # SRTP arriving while the MF has no path: the keys are derived on the first packet, which
    # is authenticated and dropped as RTP of no path, as when the keys came with the handshake.
    ue_side = _Side()
    mf, ue, mf_events, ue_events = await _pair(mf_factory, srtp=None)
    try:
        mf.start()
        ue.start()
        await wait_connected(mf_events, ue_events)
        ue.attach_srtp(ue_side.path)
        await ue_side.keys.wait()
        dtls = mf._dtls
        assert dtls is not None and not dtls.has_srtp_keys
        ue_side.path.send_rtp(RtpPacket(111, 7, 960, 0xABCD, b"x").serialize(), BUNDLE_ADDRESS)
        await _until(lambda: dtls.srtp.drops["bundle_unknown_pt"] == 1)
        assert dtls.has_srtp_keys and not dtls.srtp.drops["srtp_auth"]
    finally:
        await mf.close()
        await ue.close()
