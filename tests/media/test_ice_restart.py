"""ICE restart on the MF's ICE-lite agent (RFC 8445 section 9, RFC 8839 4.4.1.1.1 and
4.4.1.2.2): the sans-IO agent with new credentials, then the path on a socket with the fake
clock (consent freshness, RFC 7675, runs on), and the session, which keeps its DTLS and SCTP.

Requests are built, and responses read, with aioice's STUN codec (as in test_ice_lite.py).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aioice import stun as aioice_stun

from avatar_mf.media import DataChannelEndpointFactory, MediaParamsError, StreamSpec
from avatar_mf.media.ice_lite import IceLiteAgent, IceLitePath, restarts_ice
from avatar_mf.media.params import RemoteIce
from avatar_mf.testing.clock import FakeClock

from .conftest import HOST, STEP
from .test_ice_lite import _remote, read, request

OLD_LOCAL, OLD_PWD, OLD_REMOTE = "LoCa", "l" * 24, "ReMo"
NEW_LOCAL, NEW_PWD, NEW_REMOTE = "NeWl", "n" * 24, "NeWr"
OLD_PAIR = ("192.0.2.7", 40000)
NEW_PAIR = ("192.0.2.7", 40004)  # a restart gathers new candidates (a new port)

OLD = {"username": f"{OLD_LOCAL}:{OLD_REMOTE}", "password": OLD_PWD}
NEW = {"username": f"{NEW_LOCAL}:{NEW_REMOTE}", "password": NEW_PWD}


@pytest.fixture
def agent() -> IceLiteAgent:
    agent = IceLiteAgent(OLD_LOCAL, OLD_PWD)
    agent.set_remote_ufrag(OLD_REMOTE)
    assert agent.receive(request(**OLD, use_candidate=True), OLD_PAIR, 1.0).nominated
    return agent


def test_after_a_restart_only_the_new_credentials_are_valid(agent: IceLiteAgent) -> None:
    assert agent.receive(request(**NEW), NEW_PAIR, 2.0).status == 401  # not yet restarted
    agent.restart(NEW_LOCAL, NEW_PWD, NEW_REMOTE)
    assert (agent.local_ufrag, agent.local_password) == (NEW_LOCAL, NEW_PWD)
    # The previous generation's checks (consent on the old pair included) are refused ...
    assert agent.receive(request(**OLD), OLD_PAIR, 3.0).status == 401
    # ... and so is any mix of old and new parts.
    for username, password in (
        (f"{NEW_LOCAL}:{OLD_REMOTE}", NEW_PWD),
        (f"{OLD_LOCAL}:{NEW_REMOTE}", NEW_PWD),
        (f"{NEW_LOCAL}:{NEW_REMOTE}", OLD_PWD),
    ):
        mixed = request(username=username, password=password)
        assert agent.receive(mixed, NEW_PAIR, 3.0).status == 401
    outcome = agent.receive(request(**NEW), NEW_PAIR, 4.0)
    assert outcome.status == 200
    assert read(outcome.reply).check_message_integrity(NEW_PWD.encode())


def test_the_old_pair_carries_data_until_a_new_pair_is_nominated(agent: IceLiteAgent) -> None:
    agent.restart(NEW_LOCAL, NEW_PWD, NEW_REMOTE)
    # RFC 8445 section 9: nothing moves until the full agent nominates a new pair.
    assert agent.selected == OLD_PAIR and agent.accepts_data(OLD_PAIR)
    assert agent.receive(request(**NEW), NEW_PAIR, 2.0).status == 200  # checked, not nominated
    assert agent.selected == OLD_PAIR and agent.accepts_data(NEW_PAIR)
    assert agent.last_consent == 1.0  # consent is the selected pair's
    assert agent.receive(request(**NEW, use_candidate=True), NEW_PAIR, 3.0).nominated
    assert agent.selected == NEW_PAIR and agent.last_consent == 3.0


def test_restarts_ice_compares_both_credentials() -> None:
    old = RemoteIce("ufra", "p" * 22)
    assert not restarts_ice(old, RemoteIce("ufra", "p" * 22, ("1 1 udp 1 127.0.0.1 9 typ host",)))
    assert restarts_ice(old, RemoteIce("UFRA", "p" * 22))
    assert restarts_ice(old, RemoteIce("ufra", "q" * 22))
    assert not restarts_ice(None, old) and not restarts_ice(old, None)


class _Peer:
    """A full agent by hand on a blocking UDP socket: checks with the credentials given."""

    def __init__(self, path: IceLitePath) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(STEP)
        self.address = self.sock.getsockname()

    async def check(self, ufrag: str, pwd: str, remote: str, **kwargs: Any) -> int:
        """Send a check made with ``ufrag``/``pwd`` (the MF's) and ``remote`` (the peer's
        own ufrag); the response's status."""
        data = request(username=f"{ufrag}:{remote}", password=pwd, **kwargs)
        self.sock.sendto(data, self.path.local_address)
        reply = await asyncio.get_running_loop().run_in_executor(None, self.sock.recv, 2048)
        message = read(reply)
        if message.message_class == aioice_stun.Class.RESPONSE:
            return 200
        return int(message.attributes["ERROR-CODE"][0])


async def test_the_path_restarts_and_consent_timing_runs_on() -> None:
    """A check every 20 s keeps consent (RFC 7675); a restart at 20 s, the new pair nominated
    at 25 s: consent expires 30 s after that, not 30 s after the restart or the old pair's
    last check."""
    clock = FakeClock()
    path = await IceLitePath.bind(HOST, clock=clock)
    old, new = _Peer(path), _Peer(path)
    try:
        await path.set_remote(_remote("old-peer", "p" * 22))
        before = path.local_ice
        assert await old.check(before.ufrag, before.pwd, "old-peer", use_candidate=True) == 200
        async with asyncio.timeout(STEP):
            await path.connect()
        clock.advance(20.0)
        after = path.restart_ice(_remote("new-peer", "q" * 22))
        assert after == path.local_ice and after.candidates == before.candidates
        assert after.ufrag != before.ufrag and after.pwd != before.pwd and after.ice_lite
        assert await old.check(before.ufrag, before.pwd, "old-peer") == 401
        assert path.agent.selected == old.address  # data still goes to the old pair
        clock.advance(5.0)
        assert await new.check(after.ufrag, after.pwd, "new-peer", use_candidate=True) == 200
        assert path.agent.selected == new.address
        new.sock.sendto(b"\x17 data on the new pair", path.local_address)
        async with asyncio.timeout(STEP):
            assert await path._recv() == b"\x17 data on the new pair"
        clock.advance(29.0)  # 54 s: 29 s after the new pair's nomination
        assert path.open_sockets == 1
        reader = asyncio.ensure_future(path._recv())
        await asyncio.sleep(0)
        clock.advance(1.0)
        with pytest.raises(ConnectionError, match="consent expired"):
            async with asyncio.timeout(STEP):
                await reader
    finally:
        old.sock.close()
        new.sock.close()
        await path.close()


async def test_a_peer_that_never_completes_the_restart_loses_consent() -> None:
    """The previous generation's checks are refused after the restart, so they no longer keep
    consent: 30 s after the last valid one the path fails (RFC 7675 5.1)."""
    clock = FakeClock()
    path = await IceLitePath.bind(HOST, clock=clock)
    old = _Peer(path)
    try:
        await path.set_remote(_remote("old-peer", "p" * 22))
        before = path.local_ice
        assert await old.check(before.ufrag, before.pwd, "old-peer", use_candidate=True) == 200
        async with asyncio.timeout(STEP):
            await path.connect()
        clock.advance(20.0)
        path.restart_ice(_remote("new-peer", "q" * 22))
        clock.advance(5.0)
        assert await old.check(before.ufrag, before.pwd, "old-peer") == 401
        reader = asyncio.ensure_future(path._recv())
        await asyncio.sleep(0)
        clock.advance(4.9)
        await asyncio.sleep(0)
        assert not reader.done()
        clock.advance(0.1)  # 30 s after the last valid check
        with pytest.raises(ConnectionError, match="consent expired"):
            async with asyncio.timeout(STEP):
                await reader
    finally:
        old.sock.close()
        await path.close()


async def test_the_path_refuses_a_restart_it_cannot_make() -> None:
    path = await IceLitePath.bind(HOST, clock=FakeClock(), random=lambda n: bytes(n))
    try:
        with pytest.raises(MediaParamsError):  # before the first offer's parameters
            path.restart_ice(_remote("peer", "p" * 22))
        await path.set_remote(_remote("peer", "p" * 22))
        with pytest.raises(MediaParamsError):  # a lite peer: the MF must run full ICE
            path.restart_ice(_remote("peer2", "p" * 22, lite=True))
        with pytest.raises(ValueError, match="same ICE credentials"):
            path.restart_ice(_remote("peer2", "p" * 22))  # random gives the same bytes
        assert path.agent.local_ufrag == path.local_ice.ufrag  # unchanged
    finally:
        await path.close()


@pytest.mark.parametrize("ice_lite", [True, False])
async def test_a_session_restarts_ice_on_the_lite_path_only(
    mf_certificate: Any, ice_lite: bool
) -> None:
    factory = DataChannelEndpointFactory(mf_certificate, media_host=HOST, ice_lite=ice_lite)
    session = await factory.create(_remote("peer", "p" * 22), [StreamSpec(0)])
    try:
        local = session.local
        assert session.can_restart_ice == ice_lite
        if not ice_lite:
            with pytest.raises(MediaParamsError):
                session.restart_ice(_remote("peer2", "q" * 22))
            assert session.local == local
            return
        restarted = session.restart_ice(_remote("peer2", "q" * 22))
        assert restarted == session.local and local.ice is not None and restarted.ice is not None
        assert restarted.ice.ufrag != local.ice.ufrag and restarted.ice.pwd != local.ice.pwd
        # The DTLS association is kept (RFC 8842 5.4): its parameters do not change.
        assert (restarted.fingerprints, restarted.tls_id, restarted.port, restarted.setup) == (
            local.fingerprints,
            local.tls_id,
            local.port,
            local.setup,
        )
        assert session.remote is not None and session.remote.ice is not None
        assert session.remote.ice.ufrag == "peer2"
    finally:
        await session.close()
