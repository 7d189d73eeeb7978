"""Rooms end to end: several test UEs in one room of a real MF subprocess, on loopback.

What each test proves (rooms/rooms.py and rooms/relay.py are the MF side):

* three UEs: every participant is announced to the others (participant joined, with the SIP
  identity as display name) and never to itself; UE1's animation start is notified to the
  others; the animation units UE1 sends reach UE2 and UE3 complete, unchanged and in order,
  and never come back to UE1; a BYE is announced to those who stay (participant left);
* a slow receiver: UE3 stops reading its association while UE1 sends 30 frames a second for
  5 s (a 52-weight BLENDSHAPE and a 478-landmark LANDMARK unit per frame, ~7 kB); UE2 still
  gets every unit, in order, within milliseconds; the MF's memory stays flat, and when UE3
  reads again it gets the newest units, not the whole backlog (stale units dropped);
* the same stall with small units (the 134-byte units of the MF's own text animation): a UE
  whose path loses the datagrams of a 3 s outage gets, on a ``max-time=150`` animation
  channel (partial reliability, RFC 8831 6.1 / RFC 3758), only the fresh units once it is back,
  while on a reliable channel it gets the MF's window retransmitted seconds late; a UE that
  only stops reading (datagrams wait in its socket) gets late exactly the window already sent
  to its host when it stopped, and nothing of what the MF held meanwhile.

The UEs run in this process; "stops reading" is :meth:`UeCall.pause_media`: the UE's DTLS
transport stops taking datagrams, so its SCTP acknowledges nothing and the MF's send buffers
for that association fill up, exactly as with a stalled peer.
"""

from __future__ import annotations

import asyncio
import math
import urllib.error
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatar_mf.arf import BlendshapeUnit, ConfigUnit, LandmarkUnit, Unit, encode_unit
from avatar_mf.protocol import AnimationResumed
from avatar_mf.sdp.datachannel import DcMap
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import AvatarClient, UeCall
from avatar_mf.ue.offer import DEFAULT_STREAMS, with_partial_reliability

from .conftest import assert_idle

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.mf_settings({"SIP__T1": "0.005", "SIP__T4": "0.05", "MEDIA__SETUP_TIMEOUT": "2"}),
]

HOST = "127.0.0.1"
STEP = 5.0
"""Upper bound, in seconds, for any single wait (they take milliseconds)."""
RATE = 30.0
TIMESCALE = 1000.0


@pytest.fixture(autouse=True)
async def ue_leaves_no_task() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    for _ in range(5):  # let cancelled aiortc helpers finish
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert not leaked, f"leaked tasks: {leaked}"


def new_room() -> str:
    return f"room-{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def avatar_ue(
    mf: MfProcess, room: str, user: str, **call_options: Any
) -> AsyncIterator[tuple[UeCall, AvatarClient]]:
    """A UE ``sip:<user>@127.0.0.1`` in ``room``: channels open, hello answered."""
    call_options.setdefault("ice", False)
    call = UeCall.dial(
        f"sip:{room}@{HOST}:{mf.sip_port}",
        HOST,
        mf.sip_port,
        from_uri=f"sip:{user}@{HOST}",
        **call_options,
    )
    async with call:
        await call.wait_channels_open(STEP)
        async with AvatarClient(call, id_prefix=user) as client:
            await client.hello(timeout=STEP)
            yield call, client


async def released_everything(mf: MfProcess) -> None:
    stats = await asyncio.to_thread(assert_idle, mf, STEP)
    assert stats["held"].get("avatar_sessions", 0) == 0 and stats["held"].get("rooms", 0) == 0


async def everyone_knows_everyone(clients: Sequence[AvatarClient]) -> None:
    ids = {c.session_id for c in clients}
    for client in clients:
        others = ids - {client.session_id}

        def knows(client: AvatarClient = client, others: set[str | None] = others) -> bool:
            return others <= set(client.participants)

        await client.wait_until(knows, STEP, f"{client.id_prefix} does not know {others}")


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def stale_dropped(mf: MfProcess) -> int | None:
    """The MF's ``avatar_mf_relay_stale_dropped_total`` (None if /metrics lacks it)."""
    try:
        status, body = mf.http_get("/metrics")
    except (OSError, urllib.error.URLError):
        return None
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith("avatar_mf_relay_stale_dropped_total"):
            return int(float(line.split()[-1]))
    return None


def frame_weights(i: int, count: int = 52) -> tuple[float, ...]:
    """Weights that differ per frame (so a unit identifies its frame)."""
    return tuple(round(0.5 + 0.5 * math.sin(i / 7 + k), 4) for k in range(count))


def face_landmarks(i: int) -> LandmarkUnit:
    """478 3D landmarks (a MediaPipe face mesh): a 6.7 kB unit."""
    coords = tuple((k / 478, (k * 7 % 478) / 478, 0.01 * math.sin(i + k)) for k in range(478))
    return LandmarkUnit(timestamp=0, set_id=0, is_3d=True, indices=tuple(range(478)), coords=coords)


async def send_frames(
    client: AvatarClient,
    frames: int,
    *,
    landmarks: bool,
    weights: int = 52,
) -> list[tuple[float, bytes]]:
    """A CONFIG, then ``frames`` frames at 30/s (a BLENDSHAPE unit, and a LANDMARK unit if
    asked, per frame); each unit's timestamp is its send time in ms since the first frame.
    Returns (send time, unit bytes) for every unit sent."""
    sent = [(client.call.now(), client.send_unit(ConfigUnit(0, "arf-face-v1", TIMESCALE)))]
    mesh = face_landmarks(0) if landmarks else None
    t0 = client.call.now()
    for i in range(frames):
        delay = t0 + i / RATE - client.call.now()
        if delay > 0:
            await asyncio.sleep(delay)
        now = client.call.now()
        tick = round((now - t0) * TIMESCALE)
        units: list[Unit] = [BlendshapeUnit.dense(tick, frame_weights(i, weights))]
        if mesh is not None:
            units.append(
                LandmarkUnit(tick, mesh.set_id, True, mesh.indices, face_landmarks(i).coords)
            )
        for unit in units:
            data = encode_unit(unit)
            sent.append((client.call.now(), data))
            client.send_unit(data)
    return sent


# --------------------------------------------------------------------------- 4. three UEs


async def test_three_ue_room_relays_units_in_order_and_announces_joins_and_byes(
    mf: MfProcess,
) -> None:
    room = new_room()
    async with avatar_ue(mf, room, "trio1") as (_, ue1):
        async with avatar_ue(mf, room, "trio2") as (_, ue2):
            async with avatar_ue(mf, room, "trio3") as (call3, ue3):
                trio = (ue1, ue2, ue3)
                p1, p2, p3 = (str(c.session_id) for c in trio)
                assert None not in {c.session_id for c in trio} and len({p1, p2, p3}) == 3
                await everyone_knows_everyone(trio)
                for client in trio:
                    assert client.session_id not in client.participants  # never to itself
                    assert len(client.participants) == 2
                assert ue1.participants[p2].display_name == "sip:trio2@127.0.0.1"
                assert ue3.participants[p1].display_name == "sip:trio1@127.0.0.1"

                ue1.animation_start()
                for client in (ue2, ue3):
                    resumed = await client.wait_message(AnimationResumed, timeout=STEP)
                    assert resumed.participant_id == p1
                sent = await send_frames(ue1, 60, landmarks=False)
                for client in (ue2, ue3):
                    await client.wait_units(len(sent), STEP)
                    assert [u.data for u in client.units] == [data for _, data in sent]
                    timestamps = [
                        u.unit.timestamp for u in client.units if isinstance(u.unit, BlendshapeUnit)
                    ]
                    assert timestamps == sorted(timestamps)
                    assert client.failures == []
                await asyncio.sleep(0.2)
                assert ue1.units == []  # not echoed to the sender
            # UE3 hung up: its BYE is announced to the two that stay.
            for client in (ue1, ue2):

                def gone(client: AvatarClient = client) -> bool:
                    return p3 in [m.participant_id for m in client.left]

                await client.wait_until(gone, STEP, "UE3's departure not announced")
                assert p3 not in client.participants
            assert call3.ended_by == "ue" and call3.bye_status == 200
        await ue1.wait_until(
            lambda: p2 in [m.participant_id for m in ue1.left], STEP, "UE2's departure"
        )
        assert ue1.participants == {}
        assert ue1.failures == []
    await released_everything(mf)


# --------------------------------------------------------------------------- 7. slow receiver


async def _stall_receiver(
    mf: MfProcess,
    *,
    frames: int,
    landmarks: bool,
    weights: int = 52,
    streams: Sequence[DcMap] = DEFAULT_STREAMS,
    lose: bool = False,
) -> dict[str, Any]:
    """UE1 sends ``frames`` frames at 30/s into a room of three while UE3 reads nothing; then
    UE3 reads again. Returns what was measured."""
    room = new_room()
    result: dict[str, Any] = {}
    dropped_before = await asyncio.to_thread(stale_dropped, mf)
    async with (
        avatar_ue(mf, room, "slow1") as (_, ue1),
        avatar_ue(mf, room, "slow2") as (_, ue2),
        avatar_ue(mf, room, "slow3", streams=streams) as (call3, ue3),
    ):
        await everyone_knows_everyone((ue1, ue2, ue3))
        await asyncio.sleep(0.3)  # let the MF settle before measuring its memory
        rss_before = await asyncio.to_thread(vm_rss_kib, mf.proc.pid)
        call3.pause_media(lose=lose)
        sent = await send_frames(ue1, frames, landmarks=landmarks, weights=weights)
        await ue2.wait_units(len(sent), STEP)
        rss_stalled = await asyncio.to_thread(vm_rss_kib, mf.proc.pid)
        result["ue3_while_stalled"] = len(ue3.units)
        result["dropped"] = await asyncio.to_thread(stale_dropped, mf)
        # UE2, reading normally, got every unit in order, each soon after it was sent.
        assert [u.data for u in ue2.units] == [data for _, data in sent]
        delays = np.array([u.at - at for u, (at, _) in zip(ue2.units, sent, strict=True)])
        result["delay_ms"] = {
            "p50": float(np.percentile(delays, 50) * 1000),
            "p99": float(np.percentile(delays, 99) * 1000),
            "max": float(delays.max() * 1000),
        }
        # UE3 reads again: SCTP retransmits (after its backed-off RTO), and UE3 gets what the
        # MF still had for it.
        call3.resume_media()
        last = sent[-1][1]
        await ue3.wait_until(
            lambda: any(u.data == last for u in ue3.units), 12.0, "UE3 never caught up"
        )
        await asyncio.sleep(0.2)
        result["sent"] = len(sent)
        result["ue3_after"] = len(ue3.units)
        result["ue3_units"] = [u.data for u in ue3.units]
        result["sent_units"] = [data for _, data in sent]
        result["rss_kib"] = (rss_before, rss_stalled)
        result["ue3_answer"] = call3.accepted
        assert ue1.failures == [] and ue2.failures == []
    if dropped_before is not None and result["dropped"] is not None:
        result["dropped"] -= dropped_before
    await released_everything(mf)
    return result


async def test_slow_receiver_does_not_delay_the_others_and_loses_only_stale_units(
    mf: MfProcess,
) -> None:
    r = await _stall_receiver(mf, frames=150, landmarks=True)
    sent, delay = r["sent"], r["delay_ms"]
    assert sent == 1 + 2 * 150
    # UE2 unaffected: every unit, within milliseconds (p50 3 ms, p99 5 ms on an idle 2-core
    # machine; a UE3 holding UE2 up would show seconds). Bounds loose for a busy CI box.
    assert delay["p50"] < 25 and delay["p99"] < 100 and delay["max"] < 500, delay
    # The MF held a bounded backlog for UE3: its memory did not grow with the stall.
    before, stalled = r["rss_kib"]
    assert stalled - before < 16 * 1024, r["rss_kib"]
    # At most the datagram being read when it stopped (the CONFIG and the first frame's
    # units, which SCTP bundles into one packet).
    assert r["ue3_while_stalled"] <= 3
    # UE3 got the newest units and a bounded backlog, not the ~2 MB sent meanwhile.
    got = r["ue3_units"]
    assert got[0] == r["sent_units"][0]  # the CONFIG is never dropped
    assert got[-1] == r["sent_units"][-1]
    assert len(got) < sent // 3, f"UE3 got {len(got)} of {sent} units"
    positions = [r["sent_units"].index(u) for u in got]
    assert positions == sorted(positions)  # what it got is in order
    if r["dropped"] is not None:
        assert r["dropped"] >= sent - len(got) - 1, r["dropped"]


def positions(r: dict[str, Any]) -> list[int]:
    """Where each unit UE3 got stands in what UE1 sent."""
    return [r["sent_units"].index(u) for u in r["ue3_units"]]


async def test_lossy_receiver_on_a_max_time_channel_gets_only_fresh_units(mf: MfProcess) -> None:
    # UE3 offers its animation stream as TS 26.264's example does (max-time=150); the MF's
    # answer repeats it, so the MF's SCTP abandons what UE3 could not take in time.
    streams = with_partial_reliability(DEFAULT_STREAMS, max_time=150)
    r = await _stall_receiver(
        mf, frames=90, landmarks=False, weights=20, streams=streams, lose=True
    )
    got, sent = r["ue3_units"], r["sent"]
    assert r["ue3_answer"] == streams
    assert got[-1] == r["sent_units"][-1]
    # Besides the datagram UE3 was reading when the outage began (the CONFIG, and the first
    # frame's unit bundled with it), only the relay's newest units of the last frames:
    # nothing from the 3 s of the outage.
    before = r["ue3_while_stalled"]
    assert before <= 3 and got[:before] == r["sent_units"][:before]
    after = positions(r)[before:]
    assert len(after) <= 6 and all(p >= sent - 6 for p in after), positions(r)


async def test_lossy_receiver_on_a_reliable_channel_gets_a_stale_backlog(mf: MfProcess) -> None:
    # The same outage on the default (reliable) channel: the MF's SCTP retransmits every unit
    # it had sent into the outage (its congestion window), seconds late.
    r = await _stall_receiver(mf, frames=90, landmarks=False, weights=20, lose=True)
    got, sent = r["ue3_units"], r["sent"]
    assert got[-1] == r["sent_units"][-1]
    stale = [p for p in positions(r) if p < sent - 6]
    assert len(stale) >= 10, positions(r)
    assert stale == list(range(len(stale)))  # the window, in order


async def test_stalled_reader_gets_only_what_was_already_in_its_socket(mf: MfProcess) -> None:
    # A reader that stops (datagrams wait in its socket, not lost): what it gets late is the
    # window the MF sent before it could know, a run from the start of the stall; max-time
    # cannot recall datagrams already delivered to the peer's host, but nothing the MF held
    # for the rest of the stall follows them.
    streams = with_partial_reliability(DEFAULT_STREAMS, max_time=150)
    r = await _stall_receiver(mf, frames=90, landmarks=False, weights=20, streams=streams)
    got, sent = r["ue3_units"], r["sent"]
    assert got[-1] == r["sent_units"][-1]
    window = [p for p in positions(r) if p < sent - 6]
    assert window == list(range(len(window))), positions(r)
    assert len(got) < sent * 2 // 3, positions(r)
