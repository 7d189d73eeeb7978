"""The test UE against a real MF process: SIP over UDP and TCP, data channels with and without
ICE, echo on every channel, re-INVITE adding a stream, a rejected stream, a BYE from the MF, a
rejected INVITE, and the ``ue call`` command line.

The MF is a real subprocess from the shared ``mf`` fixture (conftest: loopback, free ports, a
test fails on any ERROR the MF logs). Its SIP timers are shortened further here (T1 5 ms, T4
50 ms) so that the transactions a call leaves behind (RFC 3261 Timer J, K, L: 64*T1 = 0.32 s)
end quickly and every test can show that the call released everything: dialogs, pending
INVITEs, transactions, call and data channel sessions, media sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from avatar_mf.sdp.datachannel import DcMap
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import DEFAULT_STREAMS, CallRejected, UeCall
from avatar_mf.ue.cli import add_parser

from .conftest import assert_idle, stats_delta

MF_SETUP_TIMEOUT = 1.0
"""The MF's data channel setup timeout here: a UE that never runs DTLS is dropped after it."""

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.mf_settings(
        {"SIP__T1": "0.005", "SIP__T4": "0.05", "MEDIA__SETUP_TIMEOUT": str(MF_SETUP_TIMEOUT)}
    ),
]

HOST = "127.0.0.1"
STEP = 5.0
"""Upper bound, in seconds, for any single wait (they take milliseconds)."""
HELD = (
    "dialogs",
    "pending_invites",
    "transactions",
    "call_sessions",
    "dc_sessions",
    "media_sockets",
)


def _udp_sockets() -> int:
    """UDP sockets this process holds (Linux /proc): the UE must close all of its own."""
    inodes: set[str] = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        inodes.update(line.split()[9] for line in lines)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


@pytest.fixture(autouse=True)
async def ue_leaves_nothing() -> AsyncIterator[None]:
    """The UE side must not leak asyncio tasks or UDP sockets either."""
    before = asyncio.all_tasks()
    sockets = _udp_sockets()
    yield
    for _ in range(5):  # let cancelled aiortc helpers finish
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    assert not leaked, f"leaked tasks: {leaked}"
    assert _udp_sockets() == sockets, "the UE leaked UDP sockets"


async def released_everything(mf: MfProcess) -> dict[str, Any]:
    """The MF holds nothing any more (checked off the event loop: the wait polls /stats)."""
    stats = await asyncio.to_thread(assert_idle, mf, STEP)
    assert {k: stats["held"][k] for k in HELD} == dict.fromkeys(HELD, 0), stats
    return stats


def dial(mf: MfProcess, **options: Any) -> UeCall:
    return UeCall.dial(f"sip:avatar@{HOST}:{mf.sip_port}", HOST, mf.sip_port, **options)


ECHO = DcMap(1010, label="diagnostic", subprotocol="x-avatar-mf-echo")
"""An application stream whose subprotocol no service claims: the MF runs its echo service."""
STREAMS = (*DEFAULT_STREAMS, ECHO)
HTTP_GET = "GET / HTTP/1.1\r\nHost: mf.invalid\r\n\r\n"


async def echo_round(call: UeCall, stream_ids: list[int] | tuple[int, ...]) -> None:
    """A text and a binary message on every stream; each comes back on its own stream."""
    for sid in stream_ids:
        call.send(sid, f"text on {sid} \u263a")
        call.send(sid, bytes([sid & 0xFF, sid >> 8, 0, 255]) * 100)
    for sid in stream_ids:
        assert await call.receive(sid, STEP) == f"text on {sid} \u263a"
        assert await call.receive(sid, STEP) == bytes([sid & 0xFF, sid >> 8, 0, 255]) * 100
        assert call.pending_messages(sid) == 0


async def every_channel_answers(call: UeCall) -> None:
    """A text and a binary message on every channel, each answered by the channel's service:
    HTTP on the bootstrap channels (TS 26.114 6.2.10), an error report on the metadata channel
    for what the avatar services cannot parse, echo on the diagnostic channel."""
    for sid in (0, 10):
        call.send(sid, HTTP_GET)
        call.send(sid, HTTP_GET.encode())
    for sid in (0, 10):
        for _ in range(2):  # one response per request: the app's page fits in one message
            reply = await call.receive(sid, STEP)
            head = reply.encode() if isinstance(reply, str) else reply
            assert head.startswith(b"HTTP/1.1 200 "), head[:80]
    # Metadata is JSON text and animation is binary ARF units: the opposite kinds, and
    # garbage, are refused, and every refusal is reported on the metadata channel.
    for sid in (1000, 1002):
        call.send(sid, f"not json on {sid}")
        call.send(sid, b"\x00\x01")
    for _ in range(4):
        report = json.loads(await call.receive(1000, STEP))
        assert report["type"].endswith(":error"), report
    await echo_round(call, [ECHO.stream_id])


CALL_STYLES = {
    "udp-ice": {"transport": "udp", "ice": True},
    # IMS style: AMR-WB audio first, no ICE, SHA-1 fingerprint, no use_srtp in the DTLS hello.
    "udp-no-ice-ims": {
        "transport": "udp",
        "ice": False,
        "audio": True,
        "fingerprint_algorithm": "sha-1",
        "offer_use_srtp": False,
    },
    "tcp-ice": {"transport": "tcp", "ice": True},
    "tcp-no-ice": {"transport": "tcp", "ice": False},
}


@pytest.mark.parametrize("style", list(CALL_STYLES))
async def test_call_opens_every_channel_and_each_answers(mf: MfProcess, style: str) -> None:
    options = CALL_STYLES[style]
    async with dial(mf, streams=STREAMS, **options) as call:
        assert call.final_status == 200
        assert call.accepted_ids == (0, 10, 1000, 1002, 1010)
        assert call.rejected_ids == ()
        assert call.answer is not None
        if options.get("audio"):
            assert [m.media for m in call.answer.media] == ["audio", "application"]
            assert call.answer.media[0].port != 0  # speech (AMR-WB) is served
        dc_line = call.answer.media[-1]
        assert dc_line.has_attribute("ice-ufrag") is options["ice"]
        # With ICE the MF answers as an ICE-lite agent (RFC 8839 5.3: session level).
        assert call.answer.has_attribute("ice-lite") is options["ice"]
        assert not dc_line.has_attribute("ice-lite")
        await call.wait_channels_open(STEP)
        assert sorted(call.open_ids) == [0, 10, 1000, 1002, 1010]
        await every_channel_answers(call)

    assert call.ended_by == "ue"
    assert call.bye_status == 200
    assert call.errors == []
    assert call.ok
    timing = call.timing
    assert timing.answer_seconds is not None and timing.setup_seconds is not None
    assert 0 < timing.answer_seconds <= timing.setup_seconds < STEP
    summary = call.summary()
    assert summary["channels_opened"] == 5
    channels = summary["channels"]
    assert isinstance(channels, dict)
    assert all(c["messages_sent"] == 2 for c in channels.values())
    assert channels["1010"]["messages_received"] == 2
    await released_everything(mf)


async def test_reinvite_adds_stream_1004(mf: MfProcess) -> None:
    async with dial(mf, ice=True) as call:
        await call.wait_channels_open(STEP)
        extra = DcMap(1004, label="extra", subprotocol="x-avatar-mf-echo")
        added = await call.add_streams([extra])
        assert added == (extra,)
        assert call.accepted_ids == (0, 10, 1000, 1002, 1004)
        await call.wait_channels_open(STEP)
        await echo_round(call, [1004])
        assert call.answer is not None and call.answer.origin.sess_version == "2"
    assert call.errors == [] and call.bye_status == 200
    await released_everything(mf)


async def test_rejected_stream_is_left_out_of_the_answer(mf: MfProcess) -> None:
    # The field offer of standards.md: 7216 has no subprotocol, so the MF's policy rejects it.
    low_loss = DcMap(7216, label="low loss", max_retr=5)
    async with dial(mf, ice=False, streams=[*DEFAULT_STREAMS, low_loss]) as call:
        assert call.rejected_ids == (7216,)
        assert 7216 not in call.accepted_ids
        assert call.answer is not None
        dcmaps = call.answer.media[-1].attributes("dcmap")
        assert [a.value.split()[0] for a in dcmaps if a.value] == ["0", "10", "1000", "1002"]
        await call.wait_channels_open(STEP)
        assert 7216 not in call.open_ids
    assert call.ok
    await released_everything(mf)


async def test_bye_from_the_mf_is_answered(mf: MfProcess) -> None:
    # A UE that never starts DTLS: the MF gives up after its setup timeout and sends BYE.
    before = await asyncio.to_thread(mf.stats)
    async with dial(mf, ice=False, start_media=False) as call:
        reason = await call.wait_ended(MF_SETUP_TIMEOUT + STEP)
        assert call.state == "ended"
        assert "setup timeout" in reason
    assert call.ended_by == "mf"
    assert call.bye_status is None  # the UE sent no BYE of its own
    delta = stats_delta(before, await released_everything(mf))
    assert delta["tx_request_BYE"] == 1 and delta["rx_response_200"] == 1  # the UE's 200
    assert "rx_request_BYE" not in delta


async def test_rejected_invite_raises_and_releases(mf: MfProcess) -> None:
    call = dial(mf, extra_headers=[("Require", "no-such-extension")])
    with pytest.raises(CallRejected) as caught:
        async with call:
            pytest.fail("the MF must not answer an INVITE requiring an unknown extension 2xx")
    assert caught.value.status == 420  # RFC 3261 8.2.2.3 Bad Extension
    assert call.final_status == 420 and call.state == "ended"
    await released_everything(mf)


async def test_cli_call_prints_a_json_summary(mf: MfProcess) -> None:
    parser = argparse.ArgumentParser(prog="avatar-mf ue")
    add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(
        [
            "call",
            f"sip:avatar@{HOST}:{mf.sip_port};transport=tcp",
            "--no-ice",
            "--duration",
            "0.2",
            "--stream",
            "0:http",
            "--stream",
            "1010:x-avatar-mf-echo:diagnostic",
            "--send",
            "1010:hello",
            "--send-hex",
            "1010:00ff",
        ]
    )
    out, err = io.StringIO(), io.StringIO()
    context = SimpleNamespace(stdout=out, stderr=err)
    code = await asyncio.to_thread(args.run, args, context)
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert code == 0, err.getvalue()
    assert summary["ok"] is True and summary["transport"] == "tcp" and summary["ice"] is False
    assert summary["channels_opened"] == 2 and summary["errors"] == []
    assert summary["channels"]["1010"]["label"] == "diagnostic"
    assert summary["channels"]["1010"]["messages_received"] == 2
    assert summary["channels"]["1010"]["bytes_received"] == 7
    assert 0 < summary["setup_seconds"] < STEP
    await released_everything(mf)


# --------------------------------------------------------------------------- MF bugs found here


def test_stage_factories_are_not_rescanned_per_room(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by bench/dc_setup.py: the MF's CPU per call set-up went from ~4 to ~7 ms when the
    avatar hub was wired in; a profile puts 2.3 of 11 s in importlib.metadata.entry_points,
    called through registry.create("scene", ...) for each new room. Resolving a factory once
    (at start-up, or cached) makes a new room cost microseconds."""
    from avatar_mf.pipeline import registry
    from avatar_mf.testing.pipeline import stage_context

    scans = 0
    real = registry.entry_points

    def counting(**selection: Any) -> Any:
        nonlocal scans
        scans += 1
        return real(**selection)

    monkeypatch.setattr(registry, "entry_points", counting)
    registry.refresh()
    # The provider is built once per node; a new room opens a stage from it, no lookup.
    provider = registry.create("scene", "gltf", {})
    registry.create("scene", "gltf", {})
    for room in ("room-1", "room-2", "room-3"):
        provider.open(stage_context(room=room))
    assert scans <= 1, f"{scans} entry point scans for 3 rooms"
