"""A two-leg call with real media on both legs: the test UE -> MF A -> MF B, on loopback.

MF A takes ``sip:ue2`` for no room (``calls.room_pattern = "room.*"``) and places the second
leg to its outbound proxy, MF B, a node with the default settings, which answers any INVITE as
a room call: B is a real SIP UAS with a real DTLS/SCTP stack, so the second leg's data channels
(A the offerer) really open. Shown here:

* UE1's call comes up (data channels open with A) only after B answered; A holds two dialogs
  (UE1's and its own to B), B one;
* A's avatar session for leg 2 joins UE1's pair room: UE1 is told of a participant named with
  the callee's URI (the pair room is what both legs share);
* an animation unit UE1 sends is relayed by A on leg 2 and arrives at B over DTLS/SCTP;
* UE1's BYE ends leg 2 (B gets A's BYE), and neither node holds anything afterwards.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest

from avatar_mf.arf import ConfigUnit
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import AvatarClient, UeCall

from .conftest import MfPool, assert_idle, stats_delta

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.1"
STEP = 5.0
FAST = {"SIP__T1": "0.005", "SIP__T4": "0.05", "MEDIA__SETUP_TIMEOUT": "2"}


@pytest.fixture(autouse=True)
async def ue_leaves_no_task() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    for _ in range(5):  # let cancelled aiortc helpers finish
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert not leaked, f"leaked tasks: {leaked}"


def counter(mf: MfProcess, name: str, *labels: str) -> float:
    """The value of metric ``name`` whose labels contain every one of ``labels`` (0 if none)."""
    status, body = mf.http_get("/metrics")
    assert status == 200
    total = 0.0
    for line in body.decode().splitlines():
        match = re.match(rf"{name}\{{([^}}]*)\}} (\S+)$", line)
        if match and all(f'"{label}"' in match.group(1) for label in labels):
            total += float(match.group(2))
    return total


async def grows(mf: MfProcess, above: float, name: str, *labels: str) -> None:
    """Wait (up to STEP) until the metric exceeds ``above``; /metrics is read off the loop."""
    for _ in range(int(STEP / 0.05)):
        if await asyncio.to_thread(counter, mf, name, *labels) > above:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}{labels} stayed at {above}")


async def test_two_leg_call_with_media_on_both_legs(mf_pool: MfPool) -> None:
    b = mf_pool.get(FAST)
    a = mf_pool.get(
        {
            **FAST,
            "CALLS__ROOM_PATTERN": "room.*",
            "CALLS__OUTBOUND_PROXY": f"sip:{HOST}:{b.sip_port};lr",
        }
    )
    a_before, b_before = a.stats(), b.stats()
    b_meta_opened = counter(b, "avatar_mf_datachannels_opened_total", "3gpp-ar-metadata")
    b_anim_rx = counter(b, "avatar_mf_datachannel_messages_total", "3gpp-ar-animation", "rx")
    callee = f"sip:ue2@{HOST}:{a.sip_port}"
    call = UeCall.dial(callee, HOST, a.sip_port, ice=False, from_uri=f"sip:alice@{HOST}")
    async with call:
        await call.wait_channels_open(STEP)
        assert a.stats()["held"]["dialogs"] == 2
        assert b.stats()["held"]["dialogs"] == 1
        async with AvatarClient(call, id_prefix="alice") as client:
            await client.hello(timeout=STEP)

            def callee_joined() -> bool:
                return any(p.display_name == callee for p in client.participants.values())

            await client.wait_until(callee_joined, STEP, "leg 2 never joined the pair room")

            # Leg 2's channels are open at B (A offered, B answered; DTLS between them).
            await grows(b, b_meta_opened, "avatar_mf_datachannels_opened_total", "3gpp-ar-metadata")
            client.send_unit(ConfigUnit(0, "arf-face-v1", 1000.0))
            # A relays it on leg 2, to B's animation channel.
            await grows(
                b, b_anim_rx, "avatar_mf_datachannel_messages_total", "3gpp-ar-animation", "rx"
            )
    a_after = await asyncio.to_thread(assert_idle, a, STEP)
    b_after = await asyncio.to_thread(assert_idle, b, STEP)
    a_delta, b_delta = stats_delta(a_before, a_after), stats_delta(b_before, b_after)
    assert a_delta["calls_started"] == a_delta["calls_ended"] == 2
    assert a_delta["calls_failed"] == 0
    assert b_delta["calls_started"] == b_delta["calls_ended"] == 1
    # A ended leg 2 when UE1 hung up (a BYE retransmitted under load counts twice).
    assert b_delta["rx_request_BYE"] >= 1
