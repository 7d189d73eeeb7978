"""Two-leg avatar calls through the lab's IMS core: UE1 - Kamailio - MF node - Kamailio - UE2.

Two MF nodes with two-leg calls on (``lab(two_legs=True)``: users matching ``room.*`` are
rooms, second legs go to the proxy), Kamailio as registrar and proxy, and two test UEs
registered with it (:class:`~avatar_mf.ue.listener.UeListener`). UE1 calls ``sip:ue2`` from its
registered endpoint; the proxy sends the INVITE to the node ``ue2`` hashes to; that node answers
UE1 and calls UE2 through the proxy, which delivers the second leg to UE2's registered Contact.

* the avatar call: data channels open on both legs; an animation unit from UE1 reaches UE2
  unchanged; an avatar UE1 selects is delivered to UE2 (digest checked); text from UE1 becomes
  animation units at UE2;
* BYE from either side ends both legs; a CANCEL from UE1 while UE2 rings reaches UE2 (487 at
  both); UE2's 486 reaches UE1; UE2 not registered: 404 or 480 at UE1;
* afterwards both nodes hold nothing (calls, transactions, media, avatar sessions, rooms).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from avatar_mf.arf import BlendshapeUnit, ConfigUnit, encode_unit
from avatar_mf.protocol import AvatarSelected
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import AvatarClient, CallRejected, UeCall
from avatar_mf.ue.listener import AnswerPolicy, UeListener

from .conftest import HOST, REPO, Lab

pytestmark = pytest.mark.timeout(120)

STEP = 5.0
SENTENCE = "Bob met Pam by the map"

LabFactory = Callable[..., Lab]

#: Short SIP timers, so that the nodes' transactions end within a second of the call (the
#: proxy's OPTIONS probe, one a second, lives 64*T1 = 0.32 s in a node).
FAST = {"SIP__T1": "0.005", "SIP__T4": "0.05"}


async def _registered(the_lab: Lab, user: str, **policy: Any) -> UeListener:
    ue = await UeListener.open(
        the_lab.proxy.host,
        the_lab.proxy.port,
        user=user,
        expires=60,
        policy=AnswerPolicy(**policy),
    )
    await ue.registered(STEP)
    return ue


def _dial_ue2(ue1: UeListener, the_lab: Lab) -> UeCall:
    return ue1.dial(f"sip:ue2@{the_lab.proxy.address}", ice=False)


async def _nothing_held(the_lab: Lab) -> None:
    for node in the_lab.nodes:
        stats = await asyncio.to_thread(node.wait_idle, 10.0)
        held = {name: n for name, n in stats["held"].items() if n}
        assert not held, f"node {node.sip_port} still holds {held}"


def _generate_avatar(node: MfProcess, owner: str) -> str:
    """``avatar-mf avatar generate`` on the node's own store; returns the avatar id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVATAR_MF_")}
    env["AVATAR_MF_STORAGE__PATH"] = node.env["STORAGE__PATH"]
    done = subprocess.run(
        [sys.executable, "-m", "avatar_mf", "avatar", "generate", "--owner", owner],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


async def test_two_leg_avatar_call(lab: LabFactory) -> None:
    the_lab = lab(two_legs=True, settings=FAST)
    ue2 = await _registered(the_lab, "ue2")
    ue1 = await _registered(the_lab, "ue1")
    try:
        async with _dial_ue2(ue1, the_lab) as leg1:
            leg2 = await ue2.next_call(STEP)
            await asyncio.gather(leg1.wait_channels_open(STEP), leg2.wait_channels_open(STEP))
            assert leg1.timing.provisional is not None  # UE2's ringing reached UE1
            # Both legs on one node (the one "ue2" hashes to), which stores UE1's avatar.
            (node,) = [n for n in the_lab.nodes if n.stats()["held"].get("dialogs", 0)]
            assert node.stats()["held"]["dialogs"] == 2
            avatar_id = await asyncio.to_thread(_generate_avatar, node, ue1.aor)
            async with (
                AvatarClient(leg1, id_prefix="ue1") as c1,
                AvatarClient(leg2, id_prefix="ue2") as c2,
            ):
                await asyncio.gather(c1.hello(timeout=STEP), c2.hello(timeout=STEP))

                # An animation unit from UE1 reaches UE2 as it was sent.
                sent = [
                    encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0)),
                    encode_unit(BlendshapeUnit.dense(40, tuple(i / 100 for i in range(52)))),
                ]
                for data in sent:
                    c1.send_unit(data)
                units = await c2.wait_units(2, STEP)
                assert [u.data for u in units[:2]] == sent

                # An avatar UE1 selects is delivered to UE2.
                reply = await c1.select(avatar_id, timeout=STEP)
                assert isinstance(reply, AvatarSelected), reply
                transfer = await c2.wait_transfer(avatar_id=avatar_id, timeout=30)
                assert transfer.state == "complete" and transfer.digest_ok, transfer.as_dict()

                # Text from UE1 animates UE1's avatar at UE2.
                before = len(c2.units)
                c1.say(SENTENCE, "en-US")
                await c2.wait_until(
                    lambda: (
                        sum(isinstance(u.unit, BlendshapeUnit) for u in c2.units[before:]) >= 10
                    ),
                    STEP * 2,
                    "text-driven units at UE2",
                )
                assert c1.failures == [] and c2.failures == []
        await leg2.wait_ended(STEP)  # UE1's BYE ended the second leg too
    finally:
        await ue1.close()
        await ue2.close()
    await _nothing_held(the_lab)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("who", ["ue1", "ue2"])
async def test_bye_from_either_side_ends_both_legs(
    lab: LabFactory, who: str, transport: str
) -> None:
    """Over UDP and TCP between the node and the proxy (an MF's TCP connection comes from an
    ephemeral port: the proxy knows the node by its Via)."""
    the_lab = lab(two_legs=transport, settings=FAST)
    ue2 = await _registered(the_lab, "ue2")
    ue1 = await _registered(the_lab, "ue1")
    try:
        leg1 = _dial_ue2(ue1, the_lab)
        await leg1.connect()
        leg2 = await ue2.next_call(STEP)
        await asyncio.gather(leg1.wait_channels_open(STEP), leg2.wait_channels_open(STEP))
        ender, other = (leg1, leg2) if who == "ue1" else (leg2, leg1)
        await ender.hangup()
        assert ender.bye_status == 200
        await other.wait_ended(STEP)
        assert other.ended_by == "mf"
        await other.hangup()
    finally:
        await ue1.close()
        await ue2.close()
    await _nothing_held(the_lab)


async def test_cancel_while_ue2_rings(lab: LabFactory) -> None:
    # Second legs over TCP: an INVITE client transaction ended by a non-2xx waits Timer D
    # (32 s) over UDP, 0 over TCP (RFC 3261 17.1.1.2), and the test checks the node is idle.
    the_lab = lab(two_legs="tcp", settings=FAST)
    ue2 = await _registered(the_lab, "ue2", ring_seconds=30)
    ue1 = await _registered(the_lab, "ue1")
    try:
        leg1 = _dial_ue2(ue1, the_lab)
        connecting = asyncio.ensure_future(leg1.connect())
        for _ in range(100):  # until UE2's 180 came back through the MF
            if leg1.timing.provisional is not None:
                break
            await asyncio.sleep(0.05)
        assert leg1.timing.provisional is not None
        assert await leg1.cancel() == 200
        with pytest.raises(CallRejected) as cancelled:
            await connecting
        assert cancelled.value.status == 487
        (record,) = await ue2.wait_for_record(1, STEP)
        assert record.cancelled and record.status == 487
    finally:
        await ue1.close()
        await ue2.close()
    await _nothing_held(the_lab)


async def test_busy_ue2_and_unregistered_ue2(lab: LabFactory) -> None:
    the_lab = lab(two_legs="tcp", settings=FAST)  # TCP: no Timer D (see above)
    ue1 = await _registered(the_lab, "ue1")
    try:
        busy = await _registered(the_lab, "ue2", reject=486)
        try:
            with pytest.raises(CallRejected) as rejected:
                await _dial_ue2(ue1, the_lab).connect()
            assert rejected.value.status == 486
        finally:
            await busy.close()  # removes the binding: UE2 is not registered any more
        with pytest.raises(CallRejected) as missing:
            await _dial_ue2(ue1, the_lab).connect()
        assert missing.value.status in (404, 480)
    finally:
        await ue1.close()
    await _nothing_held(the_lab)


def test_rooms_still_work_with_two_leg_calls(lab: LabFactory) -> None:
    """``room.*`` users stay rooms on the two-leg lab (nothing calls a second leg for them)."""
    from .conftest import assert_calls_ok
    from .test_kamailio_dispatcher import CALL

    the_lab = lab(two_legs=True)
    assert_calls_ok(the_lab.sipp(CALL, calls=10, rate=20), 10)
    assert sum(the_lab.answered()) == 10
    assert HOST in the_lab.proxy.address


def _avatar_mf(*args: str) -> list[str]:
    return [sys.executable, "-m", "avatar_mf", *args]


def test_the_docs_walkthrough_with_the_cli(lab: LabFactory) -> None:
    """docs/lab.md's two terminals: ``ue listen`` registers UE2 and answers; ``ue call
    sip:ue2 --register ue1 --hello --say`` calls it through the proxy and the node. UE2 gets
    UE1's text as animation units; UE1 hangs up after 3 s (UE2 would stay 20 s), which ends
    UE2's leg too; both print a JSON summary."""
    the_lab = lab(two_legs=True, settings=FAST)
    at = the_lab.proxy.address
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    listen = subprocess.Popen(
        _avatar_mf(
            "ue", "listen", "--registrar", at, "--user", "ue2", "--calls", "1",
            "--wait", "30", "--duration", "20", "--hello",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        assert listen.stderr is not None
        assert listen.stderr.readline().startswith("registered sip:ue2@")
        call = subprocess.run(
            _avatar_mf(
                "ue", "call", f"sip:ue2@{at}", "--register", "ue1", "--no-ice", "--hello",
                "--say", SENTENCE, "--duration", "3",
            ),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )  # fmt: skip
        out, err = listen.communicate(timeout=30)
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.communicate()
    assert call.returncode == 0, call.stderr
    ue1 = json.loads(call.stdout.strip().splitlines()[-1])
    ue2 = json.loads(out.strip().splitlines()[-1])
    assert ue1["ok"] and ue1["call_id"] != ue2["call_id"], (ue1, ue2)  # two legs
    assert ue2["status"] == 200 and ue2["channels_opened"] == ue2["channels_accepted"], ue2
    assert ue2["avatar"]["units_received"].get("BLENDSHAPE", 0) >= 10, ue2["avatar"]
    seen = ue2["avatar"]["participants"] + ue2["avatar"]["participants_left"]
    assert ue1["avatar"]["session_id"] in seen, (ue1, ue2)  # UE2 saw UE1 join
    # Known MF behaviour, not the lab's: UE1 says its text as soon as its own hello is
    # answered; when that is before UE2's hello, the MF's text animation starts (CONFIG
    # first) before UE2 takes animation, and UE2 gets the BLENDSHAPE units without the
    # CONFIG that should open the stream, which the test UE reports as an error.
    config_missing = "the first animation unit is BLENDSHAPE, not CONFIG"
    assert ue2.get("errors", []) in ([], [config_missing]), ue2
    assert listen.returncode == (0 if ue2["ok"] else 1), err
