"""The random Retry-After of 500 to an overlapping INVITE (RFC 3261 14.2) comes from the
``random.Random`` given to the user agent: a seeded one makes the values repeat."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from avatar_mf.testing.sip import UacDialogState, UaHarness

OFFER = (
    Path(__file__).parents[1] / "fixtures" / "sdp" / "ims-avatar-offer-no-ice.sdp"
).read_bytes()


async def overlapping_retry_afters(seed: int, count: int) -> list[int]:
    """``count`` re-INVITEs overlapping a pending one; the Retry-After of each 500."""
    mf = UaHarness(rng=random.Random(seed))
    try:
        ue = UacDialogState()
        await mf.call(ue, OFFER)
        media = mf.sessions.sessions[0]
        media.reoffer_gate = gate = asyncio.Event()
        await mf.deliver(ue.invite(OFFER))
        values: list[int] = []
        for _ in range(count):
            await mf.deliver(ue.invite(OFFER))
            refused = mf.wire.final("INVITE")
            assert refused.status == 500
            values.append(int(refused.headers.get("Retry-After") or "-1"))
            await mf.deliver(ue.ack(refused))
        gate.set()
        await mf.settle()
        await mf.deliver(ue.request("ACK", cseq=2))
        await mf.deliver(ue.bye())
        await mf.assert_idle()
        return values
    finally:
        mf.close()


async def test_retry_after_values_come_from_the_injected_random() -> None:
    values = await overlapping_retry_afters(seed=7, count=12)
    expected = random.Random(7)
    assert values == [expected.randint(0, 10) for _ in values]
    assert all(0 <= v <= 10 for v in values)
    assert await overlapping_retry_afters(seed=7, count=12) == values
    assert await overlapping_retry_afters(seed=8, count=12) != values
