"""Every core of a host: ``avatar-mf node spawn`` behind a real Kamailio (loopback).

``node spawn --nodes 2`` starts two MF nodes on consecutive SIP and admin ports and writes the
dispatcher list; Kamailio (``docker/kamailio/kamailio.cfg``, the lab's proxy) is started on
exactly the destinations that list names. Then:

* ten SIPp calls to ten rooms spread over both nodes, and a room called again goes to the same
  node (the dispatcher hashes the Request-URI user);
* two test UEs calling one room through the proxy meet on one node (each sees the other join);
* SIGTERM to ``node spawn`` drains both nodes, and it exits 0 once they have.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest

from avatar_mf.testing.kamailio import KamailioProxy
from avatar_mf.testing.lab import LAB_SETTINGS
from avatar_mf.ue import AvatarClient, UeCall

from .conftest import DOCKER_DIR, HOST, REPO, Lab, assert_calls_ok

pytestmark = pytest.mark.timeout(120)

STEP = 5.0
CALL = DOCKER_DIR / "sipp" / "uac_call.xml"
SRC = REPO / "src"


def consecutive_free_ports(count: int, avoid: frozenset[int] = frozenset()) -> int:
    """A base port such that base .. base+count-1 are free for UDP and TCP on loopback."""
    for base in range(21000 + os.getpid() % 2000 * 4, 65000, 7):
        ports = range(base, base + count)
        if avoid & set(ports):
            continue
        try:
            for port in ports:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((HOST, port))
        except OSError:
            continue
        return base
    raise RuntimeError("no consecutive free ports")


@dataclass
class Host:
    proc: subprocess.Popen[str]
    sip_ports: list[int]
    admin_ports: list[int]
    proxy: KamailioProxy
    lab: Lab

    def answered(self) -> list[int]:
        counts = []
        for port in self.admin_ports:
            with urllib.request.urlopen(f"http://{HOST}:{port}/stats", timeout=2) as r:
                counts.append(int(json.load(r)["calls"]["calls_answered"]))
        return counts


@pytest.fixture
def host(tmp_path: Path, lab_tools: dict[str, str]) -> Iterator[Host]:
    sip = consecutive_free_ports(2)
    admin = consecutive_free_ports(2, avoid=frozenset({sip, sip + 1}))
    listing = tmp_path / "dispatcher.list"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATAR_MF_")}
    env.update({f"AVATAR_MF_{k}": v for k, v in LAB_SETTINGS.items()})
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "avatar_mf", "node", "spawn", "--nodes", "2",
        "--base-port", str(sip), "--admin-base-port", str(admin),
        "--storage-root", str(tmp_path / "nodes"), "--dispatcher-list", str(listing),
    ]  # fmt: skip
    log = (tmp_path / "spawn.log").open("w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    proxy: KamailioProxy | None = None
    try:
        deadline = time.monotonic() + 60
        while not listing.exists():
            assert proc.poll() is None, (tmp_path / "spawn.log").read_text()
            assert time.monotonic() < deadline, "node spawn wrote no dispatcher list"
            time.sleep(0.1)
        # The proxy gets exactly the destinations the spawned list names.
        uris = [line.split()[1] for line in listing.read_text().splitlines() if line[:1] == "1"]
        assert uris == [f"sip:{HOST}:{sip}", f"sip:{HOST}:{sip + 1}"]
        proxy = KamailioProxy.start(
            tmp_path / "kamailio",
            [uri.removeprefix("sip:") for uri in uris],
            kamailio=lab_tools["kamailio"],
        )
        lab = Lab(tmp_path / "lab", lab_tools, dict(LAB_SETTINGS), [], [sip, sip + 1], proxy)
        yield Host(proc, [sip, sip + 1], [admin, admin + 1], proxy, lab)
        # SIGTERM: both nodes drain (no calls left), then node spawn exits 0.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "spawn.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        if proxy is not None:
            proxy.stop()


def test_rooms_spread_over_the_nodes_of_one_host_and_stay_put(host: Host) -> None:
    before = host.answered()
    for _ in range(2):  # room1 .. room10, twice
        assert_calls_ok(host.lab.sipp(CALL, calls=10, rate=20), 10)
    rooms: dict[str, list[int]] = {}
    text = host.proxy.log_text()
    for match in re.finditer(r"INVITE sip:(room\d+)@\S+ -> sip:[\d.]+:(\d+)", text):
        rooms.setdefault(match.group(1), []).append(int(match.group(2)))
    assert sorted(rooms) == sorted(f"room{i}" for i in range(1, 11))
    assert all(len(ports) == 2 and ports[0] == ports[1] for ports in rooms.values()), rooms
    assert {ports[0] for ports in rooms.values()} == set(host.sip_ports), rooms
    delta = [a - b for a, b in zip(host.answered(), before, strict=True)]
    assert sum(delta) == 20 and min(delta) > 0, delta


@asynccontextmanager
async def room_ue(proxy: KamailioProxy, room: str, user: str) -> AsyncIterator[AvatarClient]:
    async with UeCall.dial(
        f"sip:{room}@{proxy.address}", proxy.host, proxy.port, ice=False,
        from_uri=f"sip:{user}@{HOST}",
    ) as call:  # fmt: skip
        await call.wait_channels_open(STEP)
        async with AvatarClient(call, id_prefix=user) as client:
            await client.hello(timeout=STEP)
            yield client


async def test_the_ues_of_one_room_meet_on_one_node_of_the_host(host: Host) -> None:
    before = host.answered()
    room = f"room-{uuid4().hex[:8]}"
    async with room_ue(host.proxy, room, "alice") as alice, room_ue(host.proxy, room, "bob") as bob:
        for me, other in ((alice, bob), (bob, alice)):
            await me.wait_until(
                lambda me=me, other=other: other.session_id in me.participants,
                STEP,
                f"{me.id_prefix} to see the other join",
            )
    delta = [a - b for a, b in zip(host.answered(), before, strict=True)]
    assert sorted(delta) == [0, 2], delta  # both calls on one node
