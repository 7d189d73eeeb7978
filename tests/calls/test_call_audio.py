"""A call's RTP audio (calls/audio.py) on loopback sockets: open, keep on a re-offer, replace,
close, the room cap, and everything released."""

from __future__ import annotations

import asyncio

from avatar_mf.calls.audio import AudioPlane, CallAudio, RegistryAudioCaps
from avatar_mf.media.rtp_ports import PortRange
from avatar_mf.rooms.audio_room import AudioRooms
from avatar_mf.sdp.audio import AudioPlan, plan_audio
from avatar_mf.sdp.model import parse_sdp
from avatar_mf.testing.clock import FakeClock


def plan(formats: str, *extra: str, port: int = 49170) -> AudioPlan:
    lines = [
        "v=0", "o=ue 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {port} RTP/AVP {formats}", *extra,
    ]  # fmt: skip
    offer = parse_sdp(("\r\n".join(lines) + "\r\n").encode())
    outcome = plan_audio(offer, 0, RegistryAudioCaps())
    assert isinstance(outcome, AudioPlan)
    return outcome


def plane(max_members: int = 8) -> AudioPlane:
    clock = FakeClock()
    return AudioPlane(
        clock=clock,
        host="127.0.0.1",
        advertised_host="127.0.0.1",
        ports=PortRange(41000, 41099),
        rooms=AudioRooms(clock, max_members=max_members),
    )


async def test_reoffer_keeps_the_port_a_new_codec_replaces_the_stream() -> None:
    audio_plane = plane()
    failures: list[str] = []
    call = CallAudio(audio_plane, "c1", "room", failures.append)
    ports, refused = await call.apply([plan("0")])
    assert not refused and 41000 <= ports[0] <= 41099 and ports[0] % 2 == 0
    assert audio_plane.ledger.open_count == 2  # RTP and RTCP (no rtcp-mux)
    again, _ = await call.apply([plan("0", port=50000)])  # the UE moved: same codec
    assert again == ports and audio_plane.open_streams == 1
    changed, _ = await call.apply([plan("8")])  # PCMA now: a new stream
    assert changed[0] != ports[0] and audio_plane.open_streams == 1
    assert [r.codec for r in call.summary()] == ["PCMU/8000", "PCMA/8000"]
    await call.apply([])  # the re-offer disabled audio
    assert audio_plane.open_streams == 0 and audio_plane.ledger.open_count == 0
    call.close()
    assert not audio_plane.rooms.rooms and audio_plane.ports.in_use == 0
    assert failures == []


async def test_rtcp_mux_binds_one_socket_and_the_room_cap_refuses() -> None:
    audio_plane = plane(max_members=2)
    calls = [CallAudio(audio_plane, f"c{i}", "small", lambda reason: None) for i in range(3)]
    results = [await c.apply([plan("0", "a=rtcp-mux")]) for c in calls]
    assert [bool(refused) for _, refused in results] == [False, False, True]
    assert audio_plane.ledger.open_count == 2  # one muxed socket per admitted stream
    for c in calls:
        c.close()
    assert audio_plane.open_streams == 0 and audio_plane.ledger.open_count == 0


async def test_calls_opening_at_once_past_the_cap_are_refused_not_failed() -> None:
    # Every call passes the cap check before any socket has opened (the SIPp load: one room,
    # many INVITEs at once); the ones that find the room full after their await get port 0.
    audio_plane = plane(max_members=2)
    calls = [CallAudio(audio_plane, f"c{i}", "busy", lambda reason: None) for i in range(4)]
    results = await asyncio.gather(*(c.apply([plan("0", "a=rtcp-mux")]) for c in calls))
    assert sorted(bool(refused) for _, refused in results) == [False, False, True, True]
    assert audio_plane.open_streams == 2 and audio_plane.ledger.open_count == 2
    assert len(audio_plane.rooms.rooms["busy"].members) == 2
    for c in calls:
        c.close()
    assert audio_plane.open_streams == 0 and audio_plane.ledger.open_count == 0
