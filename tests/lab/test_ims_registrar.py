"""Kamailio as the lab's IMS core: registrar (usrloc) and proxy, and the room hash.

* Registrar routing, with a stand-in for an MF node (a test UE bound to the port the dispatcher
  list names, so the proxy takes its INVITEs for an MF's second leg): a registered UE2 (UDP and
  TCP) receives the call, answers with its data channels (real DTLS between the two ends), and
  its BYE goes back through the proxy (Record-Route); a user with no registration gets 404; UE2's
  486 and a CANCEL while UE2 rings cross the proxy; a UE's own INVITE to sip:ue2 goes to an MF
  node, never straight to UE2.
* Rooms stay on one node (two real MF nodes): two test UEs calling one room land on the same
  node and see each other join; ten rooms called twice each spread over both nodes, each room
  on the same node both times.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import pytest

from avatar_mf.testing.kamailio import KamailioProxy
from avatar_mf.testing.process import free_port
from avatar_mf.ue import AvatarClient, CallRejected, UeCall
from avatar_mf.ue.listener import AnswerPolicy, UeListener
from avatar_mf.ue.sip_client import SipTransportName

from .conftest import DOCKER_DIR, HOST, REPO, Lab, assert_calls_ok

pytestmark = pytest.mark.timeout(90)

STEP = 5.0
CALL = DOCKER_DIR / "sipp" / "uac_call.xml"
SRC = REPO / "src"


@pytest.fixture
def core(tmp_path: Path, lab_tools: dict[str, str]) -> Iterator[tuple[KamailioProxy, int]]:
    """Kamailio whose only "MF node" is a free port the test binds itself: (proxy, port)."""
    node_port = free_port()
    proxy = KamailioProxy.start(
        tmp_path / "kamailio",
        [f"{HOST}:{node_port}"],
        kamailio=lab_tools["kamailio"],
        reg_min_expires=1,
    )
    try:
        yield proxy, node_port
    finally:
        proxy.stop()


async def _ue2(
    proxy: KamailioProxy, transport: SipTransportName = "udp", **policy: object
) -> UeListener:
    ue2 = await UeListener.open(
        proxy.host,
        proxy.port,
        user="ue2",
        transport=transport,
        expires=60,
        policy=AnswerPolicy(**policy),  # type: ignore[arg-type]
    )
    status = await ue2.registered(STEP)
    assert status.granted == 60
    return ue2


def _second_leg(proxy: KamailioProxy, node_port: int, user: str = "ue2") -> UeCall:
    """The stand-in MF node calling ``user`` through the proxy, from the node's own port."""
    return UeCall.dial(
        f"sip:{user}@{proxy.address}",
        proxy.host,
        proxy.port,
        ice=False,
        local_port=node_port,
        from_uri=f"sip:ue1@{HOST}",
    )


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_second_leg_reaches_the_registered_ue(
    core: tuple[KamailioProxy, int], transport: SipTransportName
) -> None:
    proxy, node_port = core
    ue2 = await _ue2(proxy, transport)
    try:
        async with _second_leg(proxy, node_port) as leg:
            callee = await ue2.next_call(STEP)
            await asyncio.gather(leg.wait_channels_open(STEP), callee.wait_channels_open(STEP))
            leg.send(1000, "through the core")
            assert await callee.receive(1000, STEP) == "through the core"
            assert callee.call_id == leg.call_id
            assert leg.timing.provisional is not None  # UE2's 180 crossed the proxy
            assert leg.answer is not None
            # UE2 hangs up: its BYE follows the route set through the proxy to the caller
            await callee.hangup()
            assert callee.bye_status == 200
            await leg.wait_ended(STEP)
        assert re.search(r"INVITE sip:ue2@\S+ from MF => contact sip:ue2@", proxy.log_text())
    finally:
        await ue2.close()


async def test_unregistered_user_gets_404(core: tuple[KamailioProxy, int]) -> None:
    proxy, node_port = core
    ue2 = await _ue2(proxy)
    await ue2.close()  # REGISTER Expires: 0 removes the binding
    assert ue2.registration is not None and ue2.registration.state == "unregistered"
    for user in ("ue2", "nobody"):
        with pytest.raises(CallRejected) as rejected:
            await _second_leg(proxy, node_port, user).connect()
        assert rejected.value.status == 404


async def test_rejection_and_cancel_cross_the_proxy(core: tuple[KamailioProxy, int]) -> None:
    proxy, node_port = core
    busy = await _ue2(proxy, reject=486)
    try:
        with pytest.raises(CallRejected) as rejected:
            await _second_leg(proxy, node_port).connect()
        assert rejected.value.status == 486
    finally:
        await busy.close()

    ringing = await _ue2(proxy, ring_seconds=30)
    try:
        leg = _second_leg(proxy, node_port)
        connecting = asyncio.ensure_future(leg.connect())
        await asyncio.sleep(0.5)
        assert leg.timing.provisional is not None  # UE2 rings
        assert await leg.cancel() == 200
        with pytest.raises(CallRejected) as cancelled:
            await connecting
        assert cancelled.value.status == 487
        (record,) = await ringing.wait_for_record(1, STEP)
        assert record.cancelled and record.status == 487
    finally:
        await ringing.close()


async def test_a_ue_invite_goes_to_an_mf_node_not_to_the_contact(
    core: tuple[KamailioProxy, int],
) -> None:
    proxy, node_port = core
    ue2 = await _ue2(proxy)
    node = await UeListener.open(
        proxy.host, proxy.port, user="mf", local_port=node_port, register=False
    )
    try:
        async with UeCall.dial(
            f"sip:ue2@{proxy.address}", proxy.host, proxy.port, ice=False
        ) as ue1:
            await ue1.wait_channels_open(STEP)
            answered = await node.next_call(STEP)
            assert answered.call_id == ue1.call_id
        assert ue2.history == []  # the proxy sent UE1's call to the node, not to UE2
    finally:
        await node.close()
        await ue2.close()


# --------------------------------------------------------------------------- rooms


@asynccontextmanager
async def _room_ue(proxy: KamailioProxy, room: str, user: str) -> AsyncIterator[AvatarClient]:
    """A UE registered with the proxy calling ``room`` from its registered endpoint."""
    ue = await UeListener.open(proxy.host, proxy.port, user=user, expires=60)
    try:
        await ue.registered(STEP)
        async with ue.dial(f"sip:{room}@{proxy.address}", ice=False) as call:
            await call.wait_channels_open(STEP)
            async with AvatarClient(call, id_prefix=user) as client:
                await client.hello(timeout=STEP)
                yield client
    finally:
        await ue.close()


async def test_two_ues_of_one_room_meet_behind_two_nodes(lab: Callable[..., Lab]) -> None:
    """Two registered UEs call one room through the proxy: both calls reach the same node (the
    hash of the room's name), where each UE sees the other join."""
    the_lab = lab()
    before = the_lab.answered()
    room = f"room-{uuid4().hex[:8]}"
    async with _room_ue(the_lab.proxy, room, "alice") as alice:
        async with _room_ue(the_lab.proxy, room, "bob") as bob:
            for me, other in ((alice, bob), (bob, alice)):
                await me.wait_until(
                    lambda me=me, other=other: other.session_id in me.participants,
                    STEP,
                    f"{me.id_prefix} to see the other join",
                )
            assert alice.participants[str(bob.session_id)].display_name == bob.call.from_uri
    delta = [after - b for b, after in zip(before, the_lab.answered(), strict=True)]
    assert sorted(delta) == [0, 2], delta  # both calls on one node


def _room_nodes(proxy: KamailioProxy) -> dict[str, list[int]]:
    """room -> the node port of every INVITE the proxy dispatched for it, in order."""
    nodes: dict[str, list[int]] = {}
    for match in re.finditer(r"INVITE sip:(room\d+)@\S+ -> sip:[\d.]+:(\d+)", proxy.log_text()):
        nodes.setdefault(match.group(1), []).append(int(match.group(2)))
    return nodes


def test_ten_rooms_spread_over_both_nodes_and_stay_put(lab: Callable[..., Lab]) -> None:
    the_lab = lab()
    for _ in range(2):  # room1 .. room10, twice
        assert_calls_ok(the_lab.sipp(CALL, calls=10, rate=20), 10)
    rooms = _room_nodes(the_lab.proxy)
    assert sorted(rooms) == sorted(f"room{i}" for i in range(1, 11))
    assert all(len(ports) == 2 and ports[0] == ports[1] for ports in rooms.values()), rooms
    used = {ports[0] for ports in rooms.values()}
    assert used == set(the_lab.ports), rooms


# --------------------------------------------------------------------------- ue listen


def _listen(proxy: KamailioProxy, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "avatar_mf",
            "ue",
            "listen",
            "--registrar",
            proxy.address,
            "--user",
            "ue2",
            "--expires",
            "60",
            "--calls",
            "1",
            "--wait",
            "20",
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )


async def _registered(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 20)
    assert line.startswith("registered sip:ue2@"), line
    return line


@pytest.mark.parametrize(
    ("options", "status"), [(("--duration", "0.5"), 200), (("--reject", "486"), 486)]
)
async def test_ue_listen_command(
    core: tuple[KamailioProxy, int], options: tuple[str, ...], status: int
) -> None:
    proxy, node_port = core
    proc = _listen(proxy, *options)
    try:
        await _registered(proc)
        leg = _second_leg(proxy, node_port)
        if status == 200:
            async with leg:
                await leg.wait_channels_open(STEP)
                await leg.wait_ended(STEP)  # the listener hangs up after --duration
        else:
            with pytest.raises(CallRejected) as rejected:
                await leg.connect()
            assert rejected.value.status == status
        out, err = await asyncio.to_thread(proc.communicate, timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["status"] == status, summary
    assert summary["call_id"] == leg.call_id


def _raw_invite(proxy: KamailioProxy, transport: str, via_port: int, user: str) -> str:
    return (
        f"INVITE sip:{user}@{proxy.address} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {HOST}:{via_port};branch=z9hG4bK{uuid4().hex};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:ue1@{HOST}>;tag={uuid4().hex[:8]}\r\n"
        f"To: <sip:{user}@{proxy.address}>\r\n"
        f"Call-ID: {uuid4().hex}@{HOST}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:mf@{HOST}:{via_port};transport={transport.lower()}>\r\n"
        "Content-Length: 0\r\n\r\n"
    )


def _final_over_tcp(proxy: KamailioProxy, request: str) -> str:
    """Send ``request`` on a fresh TCP connection (an ephemeral source port); the first final
    response's status line."""
    with socket.create_connection((proxy.host, proxy.port), timeout=10) as conn:
        conn.sendall(request.encode())
        data = b""
        while True:
            data += conn.recv(65535)
            for head in data.decode(errors="replace").split("\r\n\r\n"):
                if head.startswith("SIP/2.0 ") and not head.startswith("SIP/2.0 1"):
                    return head.split("\r\n", 1)[0]


def test_mf_requests_over_tcp_are_known_by_their_via_port(
    core: tuple[KamailioProxy, int],
) -> None:
    """Over TCP an MF node's connection comes from an ephemeral port, but its Via names its
    listening port (RFC 3261 18.1.1): the proxy takes such a request as the MF's (location
    lookup: 404 for a user with no binding), and the same request with another Via port as a
    UE's (dispatcher: the only node, nobody listening there over TCP, cannot take it)."""
    proxy, node_port = core
    from_mf = _final_over_tcp(proxy, _raw_invite(proxy, "TCP", node_port, "nobody"))
    assert from_mf.startswith("SIP/2.0 404"), from_mf
    from_ue = _final_over_tcp(proxy, _raw_invite(proxy, "TCP", free_port(), "nobody"))
    assert not from_ue.startswith("SIP/2.0 404"), from_ue
    assert "INVITE sip:nobody@" in proxy.log_text() and " -> sip:" in proxy.log_text()


def test_ue_call_register_places_a_room_call_from_a_registered_endpoint(
    lab: Callable[..., Lab],
) -> None:
    """``ue call --register ue1``: REGISTER with the proxy, the call (to a room on a real MF
    node, avatar hello included) from that endpoint, the binding removed at the end."""
    the_lab = lab()
    proxy = the_lab.proxy
    done = subprocess.run(
        [
            sys.executable, "-m", "avatar_mf", "ue", "call",
            f"sip:room-cli@{proxy.address}", "--register", "ue1",
            "--no-ice", "--hello", "--duration", "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True and summary["status"] == 200, summary
    assert "registered sip:ue1@" in done.stderr
    assert summary["avatar"]["session_id"], summary
    registers = re.findall(r"REGISTER sip:ue1@\S+ from", proxy.log_text())
    assert len(registers) == 2, registers  # the binding, and its removal
