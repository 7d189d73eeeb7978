"""A listening test UE over real loopback sockets: it answers an INVITE with its usual data
channels (the channels open and carry messages both ways), rejects with the status it was
given, answers a CANCEL while it rings with 487, and ends a call with BYE or takes the
caller's BYE. The caller is the test UE's own UAC (UeCall.dial straight to the listener, no
registrar), which offers DEFAULT_STREAMS as the MF's second leg will."""

from __future__ import annotations

import asyncio

import pytest

from avatar_mf.sdp.datachannel import DcMap
from avatar_mf.testing.process import free_port
from avatar_mf.ue import CallRejected, UeCall
from avatar_mf.ue.listener import AnswerPolicy, UeListener
from avatar_mf.ue.offer import DEFAULT_STREAMS

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.1"
STEP = 5.0


_CALLER_PORT: dict[int, int] = {}


async def _listener(**policy: object) -> UeListener:
    """UE2, not registered, whose outbound proxy is the caller's SIP port (its BYE goes there)."""
    caller_port = free_port()
    listener = await UeListener.open(
        HOST,
        caller_port,
        user="ue2",
        register=False,
        policy=AnswerPolicy(**policy),  # type: ignore[arg-type]
    )
    _CALLER_PORT[id(listener)] = caller_port
    return listener


def _dial(listener: UeListener, **options: object) -> UeCall:
    """UE1 calling UE2 straight (no proxy), from the port UE2 takes as its proxy."""
    return UeCall.dial(
        f"sip:ue2@{HOST}:{listener.sip.local_port}",
        HOST,
        listener.sip.local_port,
        ice=False,
        from_uri=f"sip:ue1@{HOST}",
        local_port=_CALLER_PORT[id(listener)],
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("ring", [0.0, 0.3])
async def test_incoming_call_is_answered_and_carries_messages(ring: float) -> None:
    listener = await _listener(ring_seconds=ring)
    try:
        async with _dial(listener) as caller:
            callee = await listener.next_call(STEP)
            await asyncio.gather(caller.wait_channels_open(STEP), callee.wait_channels_open(STEP))
            assert caller.timing.provisional is not None  # 180 Ringing arrived first
            assert set(callee.accepted_ids) == {d.stream_id for d in DEFAULT_STREAMS}
            assert set(caller.accepted_ids) == set(callee.accepted_ids)
            assert callee.direction == "incoming" and callee.target_uri == f"sip:ue1@{HOST}"
            caller.send(1000, "from ue1")
            assert await callee.receive(1000, STEP) == "from ue1"
            callee.send(1002, b"\x01\x02from ue2")
            assert await caller.receive(1002, STEP) == b"\x01\x02from ue2"
            if ring:
                answered = caller.timing.answer_seconds
                assert answered is not None and answered >= ring
        # the caller's BYE ended the callee's call
        assert await callee.wait_ended(STEP) == "BYE from the MF"
        assert caller.bye_status == 200
        (record,) = listener.history
        assert (record.status, record.cancelled, record.caller) == (200, False, f"sip:ue1@{HOST}")
    finally:
        await listener.close()


async def test_callee_hangs_up_with_bye() -> None:
    listener = await _listener()
    try:
        async with _dial(listener) as caller:
            callee = await listener.next_call(STEP)
            await callee.wait_channels_open(STEP)
            await callee.hangup()
            assert callee.bye_status == 200
            await caller.wait_ended(STEP)
            assert caller.ended_by == "mf"
        assert not listener.sip.closed  # the call does not close the listener's endpoint
    finally:
        await listener.close()
    assert listener.sip.closed


async def test_only_the_ue_usual_streams_are_taken() -> None:
    listener = await _listener()
    extra = DcMap(1004, label="other", subprotocol="something-else")
    try:
        async with _dial(listener, streams=(*DEFAULT_STREAMS, extra)) as caller:
            callee = await listener.next_call(STEP)
            await caller.wait_channels_open(STEP)
            assert 1004 not in callee.accepted_ids and caller.rejected_ids == (1004,)
    finally:
        await listener.close()


@pytest.mark.parametrize("status", [486, 603])
async def test_rejects_with_the_given_status(status: int) -> None:
    listener = await _listener(reject=status)
    try:
        call = _dial(listener)
        with pytest.raises(CallRejected) as rejected:
            await call.connect()
        assert rejected.value.status == status
        assert [r.status for r in listener.history] == [status]
        assert listener.calls == []
    finally:
        await listener.close()


async def test_cancel_while_ringing_gets_487() -> None:
    listener = await _listener(ring_seconds=30)
    try:
        call = _dial(listener)
        connecting = asyncio.ensure_future(call.connect())
        await asyncio.sleep(0.3)
        assert await call.cancel() == 200
        with pytest.raises(CallRejected) as rejected:
            await connecting
        assert rejected.value.status == 487
        (record,) = await listener.wait_for_record(1, STEP)
        assert (record.status, record.cancelled) == (487, True)
    finally:
        await listener.close()


async def test_a_listening_ue_places_calls_from_its_own_endpoint() -> None:
    """UE1 and UE2 are both listeners (each the other's "proxy"): UE1 dials from its own
    socket and Contact, UE2 answers; hanging up leaves both endpoints open, and UE1 can be
    called back on the same socket."""
    port1 = free_port()
    ue2 = await UeListener.open(HOST, port1, user="ue2", register=False)
    ue1 = await UeListener.open(
        HOST, ue2.sip.local_port, user="ue1", local_port=port1, register=False
    )
    try:
        async with ue1.dial(f"sip:ue2@{HOST}", ice=False) as call:
            callee = await ue2.next_call(STEP)
            await call.wait_channels_open(STEP)
            assert call.sip is ue1.sip and callee.target_uri == ue1.aor
        await callee.wait_ended(STEP)
        assert not ue1.sip.closed
        async with ue2.dial(f"sip:ue1@{HOST}", ice=False) as back:
            await back.wait_channels_open(STEP)
            assert (await ue1.next_call(STEP)).call_id == back.call_id
    finally:
        await ue1.close()
        await ue2.close()


async def test_the_transfer_channel_is_taken() -> None:
    """An offer with the avatar-mf-transfer channel (as the MF's second leg makes): UE2 takes
    it with the other streams it speaks; a policy of DEFAULT_STREAMS leaves it out."""
    transfer = DcMap(1004, label="avatar-transfer", subprotocol="avatar-mf-transfer")
    for policy, taken in ((None, True), (DEFAULT_STREAMS, False)):
        options = {} if policy is None else {"streams": policy}
        listener = await _listener(**options)
        try:
            async with _dial(listener, streams=(*DEFAULT_STREAMS, transfer)) as caller:
                callee = await listener.next_call(STEP)
                await caller.wait_channels_open(STEP)
                assert (1004 in callee.accepted_ids) is taken
                assert (1004 in caller.accepted_ids) is taken
        finally:
            await listener.close()


async def test_a_cancelled_connect_cancels_the_invite() -> None:
    """Ctrl-C (the task cancelled) while the callee rings: the INVITE is CANCELled, so the
    callee stops ringing (487) instead of answering a caller who left."""
    listener = await _listener(ring_seconds=30)
    try:
        call = _dial(listener)
        connecting = asyncio.ensure_future(call.connect())
        await asyncio.sleep(0.3)
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        (record,) = await listener.wait_for_record(1, STEP)
        assert (record.status, record.cancelled) == (487, True)
        assert call.sip.closed
    finally:
        await listener.close()
