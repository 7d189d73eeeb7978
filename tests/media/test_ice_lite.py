"""The MF's ICE-lite agent (media/ice_lite.py): sans-IO refusals and nominations, then the path
against aioice's full agent and a raw UDP peer over loopback, and the factory's choice.

Requests are built, and responses read, with aioice's STUN codec (an implementation
independent of media/stun.py).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioice import Candidate
from aioice import stun as aioice_stun
from hypothesis import given, settings
from hypothesis import strategies as st

from avatar_mf.media import (
    DataChannelEndpointFactory,
    MediaParamsError,
    MediaResourceError,
    RemoteIce,
    RemoteParams,
    SessionEventQueue,
    SessionFailed,
    StreamSpec,
)
from avatar_mf.media.ice_lite import HOST_PRIORITY, IceLiteAgent, IceLitePath, is_media
from avatar_mf.media.ice_transport import IcePacketTransport, _HostOnlyConnection
from avatar_mf.media.sdp_params import answer_params
from avatar_mf.testing.clock import FakeClock

from .conftest import HOST, STEP

LOCAL_UFRAG, LOCAL_PWD = "LoCa", "l" * 24
REMOTE_UFRAG = "ReMo"
SOURCE = ("192.0.2.7", 40000)
OTHER = ("192.0.2.8", 40002)


def request(
    *,
    username: str | None = f"{LOCAL_UFRAG}:{REMOTE_UFRAG}",
    password: str | None = LOCAL_PWD,
    fingerprint: bool = True,
    controlling: bool | None = True,
    priority: int | None = 0x6E0001FF,
    use_candidate: bool = False,
    extra: dict[str, Any] | None = None,
    message_class: aioice_stun.Class = aioice_stun.Class.REQUEST,
) -> bytes:
    """A Binding request as a full agent sends it (RFC 8445 7.1)."""
    message = aioice_stun.Message(aioice_stun.Method.BINDING, message_class)
    if username is not None:
        message.attributes["USERNAME"] = username
    if priority is not None:
        message.attributes["PRIORITY"] = priority
    if controlling is True:
        message.attributes["ICE-CONTROLLING"] = 0x1122334455667788
    elif controlling is False:
        message.attributes["ICE-CONTROLLED"] = 0x1122334455667788
    if use_candidate:
        message.attributes["USE-CANDIDATE"] = None
    message.attributes.update(extra or {})
    if password is not None:
        message.add_message_integrity(password.encode())
    if fingerprint:
        message.add_fingerprint()
    else:
        message.attributes.pop("FINGERPRINT", None)
    return bytes(message)


def _flip_last_bit(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def read(reply: bytes | None) -> aioice_stun.Message:
    assert reply is not None
    return aioice_stun.parse_message(reply)  # checks the FINGERPRINT


@pytest.fixture
def agent() -> IceLiteAgent:
    agent = IceLiteAgent(LOCAL_UFRAG, LOCAL_PWD)
    agent.set_remote_ufrag(REMOTE_UFRAG)
    return agent


def test_a_valid_check_is_answered_with_the_mapped_address(agent: IceLiteAgent) -> None:
    data = request()
    outcome = agent.receive(data, SOURCE, 1.0)
    assert (outcome.status, outcome.nominated) == (200, False)
    response = read(outcome.reply)
    assert response.message_class == aioice_stun.Class.RESPONSE
    assert response.transaction_id == aioice_stun.parse_message(data).transaction_id
    assert response.attributes["XOR-MAPPED-ADDRESS"] == SOURCE
    assert response.check_message_integrity(LOCAL_PWD.encode())
    # Answered, not nominated: the source may send data, but nothing is selected yet.
    assert agent.selected is None and agent.accepts_data(SOURCE)
    assert not agent.accepts_data(OTHER)


def test_nomination_selects_the_source_and_a_later_one_switches(agent: IceLiteAgent) -> None:
    outcome = agent.receive(request(use_candidate=True), SOURCE, 1.0)
    assert (outcome.status, outcome.nominated) == (200, True)
    assert agent.selected == SOURCE and agent.last_consent == 1.0
    # A check from elsewhere without USE-CANDIDATE changes nothing; consent is the selected's.
    assert agent.receive(request(), OTHER, 2.0).status == 200
    assert agent.selected == SOURCE and agent.last_consent == 1.0
    assert agent.receive(request(), SOURCE, 3.0).status == 200
    assert agent.last_consent == 3.0
    assert agent.receive(request(use_candidate=True), OTHER, 4.0).nominated
    assert agent.selected == OTHER and agent.last_consent == 4.0


def test_ipv6_sources_are_mapped(agent: IceLiteAgent) -> None:
    source = ("2001:db8::5", 40000, 0, 0)
    response = read(agent.receive(request(), source, 0.0).reply)
    assert response.attributes["XOR-MAPPED-ADDRESS"] == ("2001:db8::5", 40000)


@pytest.mark.parametrize(
    ("kwargs", "status", "signed"),
    [
        pytest.param({"password": None}, 400, False, id="no-message-integrity"),
        pytest.param({"username": None}, 400, False, id="no-username"),
        pytest.param({"username": f"XXXX:{REMOTE_UFRAG}"}, 401, False, id="other-local-ufrag"),
        pytest.param({"username": f"{LOCAL_UFRAG}:XXXX"}, 401, False, id="other-remote-ufrag"),
        pytest.param({"username": LOCAL_UFRAG}, 401, False, id="username-without-colon"),
        pytest.param({"password": "w" * 24}, 401, False, id="wrong-password"),
        pytest.param(
            {"extra": {"CHANGE-REQUEST": 0}}, 420, True, id="unknown-comprehension-required"
        ),
        pytest.param({"priority": None}, 400, True, id="no-priority"),
        pytest.param({"controlling": None}, 400, True, id="no-role"),
        pytest.param({"extra": {"ICE-CONTROLLED": 1}}, 400, True, id="both-roles"),
        pytest.param({"controlling": False}, 487, True, id="role-conflict"),
    ],
)
def test_refused_checks_get_the_rfc_error(
    agent: IceLiteAgent, kwargs: dict[str, Any], status: int, signed: bool
) -> None:
    outcome = agent.receive(request(**kwargs), SOURCE, 0.0)
    assert (outcome.status, outcome.nominated) == (status, False)
    response = read(outcome.reply)
    assert response.message_class == aioice_stun.Class.ERROR
    assert response.error_code == status
    # RFC 8489 9.1.3: no MESSAGE-INTEGRITY on a refusal of the credentials; else signed.
    assert ("MESSAGE-INTEGRITY" in response.attributes) == signed
    if signed:
        assert response.check_message_integrity(LOCAL_PWD.encode())
    if status == 420:
        data = outcome.reply
        assert data is not None and (b"\x00\x0a\x00\x02\x00\x03" in data)  # UNKNOWN-ATTRIBUTES
    assert agent.selected is None and not agent.accepts_data(SOURCE)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(request(fingerprint=False), id="no-fingerprint"),
        pytest.param(_flip_last_bit(request()), id="bad-fingerprint"),
        pytest.param(request(message_class=aioice_stun.Class.INDICATION), id="indication"),
        pytest.param(request(message_class=aioice_stun.Class.RESPONSE), id="response"),
        pytest.param(b"\x00\x01\x00", id="truncated"),
    ],
)
def test_bad_packets_are_dropped_silently(agent: IceLiteAgent, data: bytes) -> None:
    outcome = agent.receive(data, SOURCE, 0.0)
    assert (outcome.reply, outcome.status) == (None, 0)
    assert not agent.accepts_data(SOURCE)


def test_unknown_comprehension_optional_attributes_are_ignored(agent: IceLiteAgent) -> None:
    extra = {"SOFTWARE": "a browser", "RESPONSE-ORIGIN": ("192.0.2.1", 1)}
    assert agent.receive(request(extra=extra), SOURCE, 0.0).status == 200


def test_any_remote_ufrag_before_the_remote_parameters_are_known() -> None:
    agent = IceLiteAgent(LOCAL_UFRAG, LOCAL_PWD)
    assert agent.receive(request(username=f"{LOCAL_UFRAG}:any"), SOURCE, 0.0).status == 200


def test_the_addresses_allowed_to_send_data_are_bounded() -> None:
    agent = IceLiteAgent(LOCAL_UFRAG, LOCAL_PWD, max_peers=3)
    sources = [("192.0.2.1", port) for port in range(5)]
    for source in sources:
        assert agent.receive(request(), source, 0.0).status == 200
    assert [agent.accepts_data(s) for s in sources] == [False, False, True, True, True]


def test_rfc_7983_demultiplexing() -> None:
    assert [is_media(bytes([b])) for b in (0, 3, 19, 20, 63, 64, 127, 128, 191, 192)] == [
        False,
        False,
        False,
        True,
        True,
        False,
        False,
        True,
        True,
        False,
    ]
    assert not is_media(b"")


# --------------------------------------------------------------------------------------------
# The path on a socket


def _remote(ufrag: str, pwd: str, *, lite: bool = False, port: int = 9) -> RemoteParams:
    return RemoteParams(
        address=HOST,
        port=port,
        setup="actpass",
        fingerprints=(("sha-256", "00"),),
        ice=RemoteIce(ufrag, pwd, (), ice_lite=lite),
    )


@pytest.mark.parametrize("remote_is_lite", [True, False], ids=["regular", "aggressive"])
async def test_aioice_full_agent_connects_and_data_flows_both_ways(remote_is_lite: bool) -> None:
    """aioice as the controlling full agent: regular nomination when it knows the MF is lite
    (a check, then a check with USE-CANDIDATE), aggressive when it does not."""
    clock = FakeClock()
    path = await IceLitePath.bind(HOST, clock=clock)
    full = _HostOnlyConnection(HOST, ice_controlling=True)
    try:
        await full.gather_candidates()
        ice = path.local_ice
        assert ice.ice_lite and ice.candidates == (
            f"1 1 udp {HOST_PRIORITY} {HOST} {path.local_address[1]} typ host",
        )
        await path.set_remote(_remote(full.local_username, full.local_password))
        full.remote_username, full.remote_password = ice.ufrag, ice.pwd
        full.remote_is_lite = remote_is_lite
        await full.add_remote_candidate(Candidate.from_sdp(ice.candidates[0]))
        await full.add_remote_candidate(None)
        async with asyncio.timeout(STEP):
            await asyncio.gather(full.connect(), path.connect())
        local = full.local_candidates[0]
        assert path.agent.selected == (local.host, local.port)

        await full.send(b"\x05 not media")  # RFC 7983: neither DTLS nor RTP: dropped
        await full.send(b"\x16 a DTLS record")
        await full.send(b"\x80 an RTP packet")
        async with asyncio.timeout(STEP):
            assert await path._recv() == b"\x16 a DTLS record"
            assert await path._recv() == b"\x80 an RTP packet"
            await path._send(b"\x17 from the MF")
            assert await full.recv() == b"\x17 from the MF"
        assert clock.pending == 1  # the consent timer, nothing per packet
    finally:
        await full.close()
        await path.close()
    assert path.open_sockets == 0
    with pytest.raises(ConnectionError):
        await path._recv()


class _RawPeer:
    """A full agent by hand: a blocking UDP socket sending checks built by aioice's codec."""

    def __init__(self, path: IceLitePath) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(STEP)
        self.address = self.sock.getsockname()

    async def check(self, **kwargs: Any) -> aioice_stun.Message:
        ice = self.path.local_ice
        data = request(username=f"{ice.ufrag}:peer", password=ice.pwd, **kwargs)
        self.sock.sendto(data, self.path.local_address)
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(None, self.sock.recv, 2048)
        return read(reply)


@pytest.fixture
async def lite() -> AsyncIterator[tuple[IceLitePath, FakeClock]]:
    clock = FakeClock()
    path = await IceLitePath.bind(HOST, clock=clock)
    await path.set_remote(_remote("peer", "p" * 22))
    yield path, clock
    await path.close()


async def test_consent_expires_30_s_after_the_last_check(
    lite: tuple[IceLitePath, FakeClock],
) -> None:
    """RFC 7675: the full agent's checks keep consent; the lite agent only answers them."""
    path, clock = lite
    peer = _RawPeer(path)
    try:
        assert (await peer.check(use_candidate=True)).message_class == aioice_stun.Class.RESPONSE
        async with asyncio.timeout(STEP):
            await path.connect()
        clock.advance(20.0)
        await peer.check()  # a consent check: 30 s from now
        clock.advance(29.0)
        assert path.open_sockets == 1
        reader = asyncio.ensure_future(path._recv())
        await asyncio.sleep(0)
        clock.advance(1.0)
        with pytest.raises(ConnectionError, match="consent expired"):
            async with asyncio.timeout(STEP):
                await reader
        await asyncio.sleep(0)
        assert path.open_sockets == 0 and clock.pending == 0
    finally:
        peer.sock.close()


async def test_connect_waits_for_the_nomination(lite: tuple[IceLitePath, FakeClock]) -> None:
    path, _ = lite
    peer = _RawPeer(path)
    try:
        connecting = asyncio.ensure_future(path.connect())
        await peer.check()  # answered, not nominated
        await asyncio.sleep(0.01)
        assert not connecting.done()
        error = await peer.check(controlling=False)
        assert error.error_code == 487
        assert not connecting.done()
        await peer.check(use_candidate=True)
        async with asyncio.timeout(STEP):
            await connecting
        assert path.agent.selected == peer.address
    finally:
        peer.sock.close()


async def test_media_goes_to_the_fast_receiver_while_the_dtls_task_waits(
    lite: tuple[IceLitePath, FakeClock],
) -> None:
    """The per-datagram fast path (docs/design.md): from the socket callback straight to the
    DTLS layer when its task waits and nothing is queued; declined or failed datagrams as the
    queue path has them; ``send_now`` to the nominated peer only."""
    path, _ = lite
    peer = _RawPeer(path)
    taken: list[bytes] = []

    def receiver(data: bytes) -> bool:
        if data.startswith(b"\x17 boom"):
            raise RuntimeError("a bug in the fast path")
        if data.startswith(b"\x17"):
            taken.append(data)
            return True
        return False

    async def arrive(data: bytes) -> None:
        peer.sock.sendto(data, path.local_address)
        for _ in range(200):
            await asyncio.sleep(0.005)
            if taken[-1:] == [data] or path._queue:
                return

    try:
        with pytest.raises(ConnectionError):
            path.send_now(b"\x17 before any nomination")
        await peer.check(use_candidate=True)
        async with asyncio.timeout(STEP):
            await path.connect()
        path.set_fast_receiver(receiver)
        reader = asyncio.ensure_future(path._recv())
        await asyncio.sleep(0)
        await arrive(b"\x17 application data")
        assert taken == [b"\x17 application data"] and not reader.done()
        await arrive(b"\x16 a handshake record")  # declined: queued for the task
        async with asyncio.timeout(STEP):
            assert await reader == b"\x16 a handshake record"
        await arrive(b"\x17 while nobody reads")  # no reader waits: queued, in order
        await arrive(b"\x17 boom")  # queued behind it, not offered
        async with asyncio.timeout(STEP):
            assert await path._recv() == b"\x17 while nobody reads"
            assert await path._recv() == b"\x17 boom"
        reader = asyncio.ensure_future(path._recv())
        await asyncio.sleep(0)
        peer.sock.sendto(b"\x17 boom", path.local_address)  # the receiver raises: dropped
        await asyncio.sleep(0.05)
        assert not reader.done() and not path._queue
        reader.cancel()
        path.send_now(b"\x17 from the MF")
        assert peer.sock.recv(2048) == b"\x17 from the MF"
    finally:
        peer.sock.close()


async def test_close_ends_a_pending_connect(lite: tuple[IceLitePath, FakeClock]) -> None:
    path, _ = lite
    connecting = asyncio.ensure_future(path.connect())
    await asyncio.sleep(0)
    await path.close()
    with pytest.raises(ConnectionError):
        async with asyncio.timeout(STEP):
            await connecting


async def test_the_path_refuses_a_lite_peer_and_a_second_set_remote() -> None:
    path = await IceLitePath.bind(HOST, clock=FakeClock())
    try:
        with pytest.raises(MediaParamsError):
            await path.set_remote(_remote("peer", "p" * 22, lite=True))
        await path.set_remote(_remote("peer", "p" * 22))
        with pytest.raises(MediaParamsError):
            await path.set_remote(_remote("peer", "p" * 22))
    finally:
        await path.close()


# --------------------------------------------------------------------------------------------
# The factory's choice and the answer


@pytest.mark.parametrize(
    ("ice_lite", "remote_lite", "expected"),
    [
        (True, False, IceLitePath),
        (True, True, IcePacketTransport),  # two lite agents: the MF runs full ICE
        (False, False, IcePacketTransport),
    ],
)
async def test_the_factory_answers_ice_lite_unless_told_or_facing_lite(
    mf_certificate: Any, ice_lite: bool, remote_lite: bool, expected: type
) -> None:
    factory = DataChannelEndpointFactory(mf_certificate, media_host=HOST, ice_lite=ice_lite)
    session = await factory.create(_remote("peer", "p" * 22, lite=remote_lite), [StreamSpec(0)])
    try:
        assert isinstance(session._path, expected)
        local = session.local.ice
        assert local is not None and local.ice_lite == (expected is IceLitePath)
        # The answer's ICE parameters say so (a=ice-lite at session level, RFC 8839 5.3).
        answer_ice = answer_params(session.local).ice
        assert answer_ice is not None and answer_ice.ice_lite == local.ice_lite
        if expected is IcePacketTransport:
            assert session._path.role == ("controlling" if remote_lite else "controlled")
    finally:
        await session.close()


async def test_a_session_whose_peer_never_checks_times_out_in_ice(mf_certificate: Any) -> None:
    clock = FakeClock()
    factory = DataChannelEndpointFactory(
        mf_certificate, media_host=HOST, setup_timeout=10.0, clock=clock
    )
    events = SessionEventQueue()
    session = await factory.create(_remote("peer", "p" * 22), [StreamSpec(0)], on_event=events)
    session.start()
    await asyncio.sleep(0)
    clock.advance(10.0)
    async with asyncio.timeout(STEP):
        assert (await events.wait_for(SessionFailed)).reason == "setup timeout in ICE"
    assert factory.open_sockets == 0 and clock.pending == 0


# --------------------------------------------------------------------------------------------
# Any datagram: never an exception, nothing kept from a refused one


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        # A valid check with a few bytes overwritten: mostly refused or dropped, never a crash.
        st.tuples(
            st.sampled_from([request(), request(use_candidate=True), request(controlling=False)]),
            st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
        ).map(lambda case: _mutate(*case)),
    )
)
def test_any_datagram_is_answered_or_dropped(data: bytes) -> None:
    agent = IceLiteAgent(LOCAL_UFRAG, LOCAL_PWD)
    agent.set_remote_ufrag(REMOTE_UFRAG)
    outcome = agent.receive(data, SOURCE, 0.0)
    assert (outcome.reply is None) == (outcome.status == 0)
    if outcome.reply is not None:
        response = read(outcome.reply)  # well formed, with a correct FINGERPRINT
        assert response.transaction_id == data[8:20]
    # Only a request answered with success lets its source send data.
    assert agent.accepts_data(SOURCE) == (outcome.status == 200)


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    mutable = bytearray(data)
    for index, value in edits:
        if index < len(mutable):
            mutable[index] = value
    return bytes(mutable)


async def test_the_host_candidate_binds_a_host_name_and_refuses_a_foreign_address() -> None:
    """One way to open the media sockets (udp_dtls_transport.open_endpoint): an IP literal's
    socket bound directly, a host name resolved by the loop, a failure said in the MF's terms."""
    path = await IceLitePath.bind("localhost", clock=FakeClock())
    try:
        assert path.local_address[0] in ("127.0.0.1", "::1") and path.open_sockets == 1
    finally:
        await path.close()
    with pytest.raises(MediaResourceError, match="cannot bind an ICE host candidate on"):
        await IceLitePath.bind("192.0.2.1", clock=FakeClock())  # TEST-NET-1: not this host's
