"""WebRTC-style audio through a real MF process: test UEs with ICE whose Opus audio is
BUNDLEd with their data channel (one ICE + DTLS transport, SRTP keyed by its handshake).

* two WebRTC UEs in a room hear each other: the speech one sends is what the other decodes
  (normalised cross-correlation peak, delay printed), as the IMS test does without ICE;
* a two-leg call, a WebRTC caller and an IMS callee (PCMU): transcoded both ways;
* a mixed room, an IMS UE (PCMU over plain RTP, no ICE) and a WebRTC UE (Opus over SRTP):
  each hears the other (the room transcodes through its mix);
* bad SRTP (garbage, packets protected with other keys) is dropped and counted, the call
  goes on;
* a re-INVITE adding a data channel keeps the bundled audio stream;
* the command line (``avatar-mf ue call --webrtc-audio``) sends and records a WAV;
* every call releases its streams and sockets (/stats ``held``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pylibsrtp
import pytest

from avatar_mf.rtp.packet import RtpPacket
from avatar_mf.sdp.datachannel import DcMap
from avatar_mf.sdp.model import serialize_sdp
from avatar_mf.testing.process import MfProcess, free_port
from avatar_mf.ue import UeCall
from avatar_mf.ue.cli import add_parser
from avatar_mf.ue.listener import AnswerPolicy, UeListener
from avatar_mf.ue.rtp_audio import UeAudio, read_wav, write_wav

from .conftest import MfPool, assert_idle
from .test_media_audio import best_correlation, held, speech_pcm, tone_pcm, wait_for

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.mf_settings({"SIP__T1": "0.005", "SIP__T4": "0.05", "MEDIA__SETUP_TIMEOUT": "5"}),
]

HOST = "127.0.0.1"


def dial(mf: MfProcess, room: str, audio: UeAudio) -> UeCall:
    return UeCall.dial(
        f"sip:{room}@{HOST}",
        HOST,
        mf.sip_port,
        ice=audio.webrtc,
        rtp_audio=audio,
        setup_timeout=5.0,
    )


def drops(mf: MfProcess) -> dict[str, float]:
    metrics = mf.http_get("/metrics")[1].decode()
    return {
        line.split('reason="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("avatar_mf_rtp_dropped_total{")
    }


async def test_two_webrtc_ues_in_a_room_hear_each_other(mf: MfProcess) -> None:
    speech = speech_pcm()
    talker = UeAudio(HOST, webrtc=True, pcm=speech)
    listener = UeAudio(HOST, webrtc=True)
    async with dial(mf, "webrtcroom", listener) as b:
        async with dial(mf, "webrtcroom", talker) as a:
            assert a.answer is not None
            audio, app = a.answer.media
            assert audio.proto == "UDP/TLS/RTP/SAVPF" and audio.port == app.port != 0
            assert talker.codec == "OPUS" and listener.codec == "OPUS"
            stats = held(mf)
            assert stats["rtp_streams"] == 2 and stats["audio_rooms"] == 1
            await wait_for(lambda: talker.first_sent is not None)
            await asyncio.sleep(len(speech) / 32000 + 0.5)
        assert b.state == "confirmed"
    peak, delay = best_correlation(speech, listener.received_pcm())
    print(
        f"room, Opus over SRTP (BUNDLE): correlation peak {peak:.3f}, delay {delay * 1000:.0f} ms"
    )
    assert peak > 0.8
    final = assert_idle(mf)
    assert final["held"]["rtp_streams"] == 0 and final["held"]["rtp_sockets"] == 0
    records = [
        json.loads(line)["cdr"]
        for line in mf.log_text().splitlines()
        if '"cdr"' in line and a.call_id in line
    ]
    (record,) = records[-1]["audio"]
    print("end record audio:", record)
    assert record["codec"] == "opus/48000" and record["packets_in"] >= 50
    assert record["packets_out"] >= 50


async def test_ims_and_webrtc_ues_in_one_room_hear_each_other(mf: MfProcess) -> None:
    speech = speech_pcm()
    tone = tone_pcm(1000, 2.0)
    ims = UeAudio(HOST, codecs=("PCMU",), pcm=speech)
    browser = UeAudio(HOST, webrtc=True, pcm=tone)
    async with dial(mf, "mixedroom", browser):
        async with dial(mf, "mixedroom", ims):
            assert ims.codec == "PCMU" and browser.codec == "OPUS"
            await wait_for(lambda: browser.first_sent is not None and ims.first_sent is not None)
            await asyncio.sleep(len(speech) / 32000 + 0.5)
    peak, delay = best_correlation(speech, browser.received_pcm())
    print(f"IMS PCMU -> WebRTC Opus: correlation peak {peak:.3f}, delay {delay * 1000:.0f} ms")
    assert peak > 0.8
    heard, delay = best_correlation(tone[:16000], ims.received_pcm())
    print(
        f"WebRTC Opus -> IMS PCMU: tone correlation peak {heard:.3f}, delay {delay * 1000:.0f} ms"
    )
    assert heard > 0.8
    assert_idle(mf)


async def test_bad_srtp_is_dropped_and_counted_the_call_goes_on(mf: MfProcess) -> None:
    talker = UeAudio(HOST, webrtc=True, pcm=tone_pcm(700, 3.0))
    listener = UeAudio(HOST, webrtc=True)
    async with dial(mf, "badsrtp", listener) as b:
        async with dial(mf, "badsrtp", talker) as a:
            await wait_for(lambda: listener.packets_in > 10)
            # Garbage that looks like RTP on the wire (first byte 0x80, RFC 7983).
            for i in range(5):
                talker.send_raw(b"\x80\x6f" + os.urandom(100 + i))
            # Well-formed SRTP protected with keys the MF never agreed.
            policy = pylibsrtp.Policy(
                key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND
            )
            stranger = pylibsrtp.Session(policy)
            for seq in range(5):
                packet = RtpPacket(111, seq, seq * 960, talker.ssrc, b"\xf8" + bytes(40))
                talker.send_raw(stranger.protect(packet.serialize()))
            await asyncio.sleep(0.5)
            before = listener.packets_in
            await asyncio.sleep(0.5)
            assert listener.packets_in > before + 10  # still flowing
            assert a.state == "confirmed" and b.state == "confirmed"
            counted = drops(mf)
    print("drops:", json.dumps(counted))
    assert counted.get("srtp_auth", 0) >= 10
    assert_idle(mf)


@pytest.fixture
def ue2_port() -> int:
    return free_port()


async def test_two_leg_call_webrtc_caller_ims_callee(mf_pool: MfPool, ue2_port: int) -> None:
    """Leg 1 a WebRTC UE (ICE, Opus over SRTP), leg 2 an IMS UE (PCMU): the MF offers leg 2
    the first leg's codec first (opus/48000/2, which the IMS UE does not take) and transcodes."""
    mf = mf_pool.get(
        {
            "SIP__T1": "0.005",
            "SIP__T4": "0.05",
            "MEDIA__SETUP_TIMEOUT": "5",
            "CALLS__ROOM_PATTERN": "room.*",
            "CALLS__OUTBOUND_PROXY": f"sip:{HOST}:{ue2_port};lr",
        }
    )
    speech1 = speech_pcm("One two three four five six seven")
    speech2 = speech_pcm("Hello from the other leg of this call")
    audio1 = UeAudio(HOST, webrtc=True, pcm=speech1)
    audio2: list[UeAudio] = []

    def make_audio() -> UeAudio:
        audio = UeAudio(HOST, codecs=("PCMU",), pcm=speech2, send_delay=1.0)
        audio2.append(audio)
        return audio

    policy = AnswerPolicy(audio=make_audio)
    async with await UeListener.open(
        HOST, mf.sip_port, user="ue2", local_port=ue2_port, register=False, policy=policy
    ) as ue2:
        call = UeCall.dial(
            f"sip:ue2@{HOST}", HOST, mf.sip_port, ice=True, from_uri=f"sip:alice@{HOST}",
            rtp_audio=audio1,
        )  # fmt: skip
        async with call:
            leg2 = await ue2.next_call(5.0)
            assert audio1.codec == "OPUS" and audio2[0].codec == "PCMU"
            offered = leg2.offer
            assert offered is not None
            assert "a=rtpmap:111 opus/48000/2" in serialize_sdp(offered)
            await asyncio.sleep(max(len(speech1), len(speech2)) / 32000 + 1.6)
            assert leg2.state == "confirmed"
    heard_by_2, delay2 = best_correlation(speech1, audio2[0].received_pcm())
    heard_by_1, delay1 = best_correlation(speech2, audio1.received_pcm())
    print(
        f"two-leg WebRTC Opus <-> IMS PCMU: UE2 hears UE1 peak {heard_by_2:.3f} delay "
        f"{delay2 * 1000:.0f} ms; UE1 hears UE2 peak {heard_by_1:.3f} delay {delay1 * 1000:.0f} ms"
    )
    assert heard_by_2 > 0.8 and heard_by_1 > 0.8
    stats = await asyncio.to_thread(assert_idle, mf)
    assert stats["held"]["rtp_streams"] == 0


async def test_cli_call_with_webrtc_audio(mf: MfProcess, tmp_path: Path) -> None:
    tone = tone_pcm(800, 1.0)
    wav_in, wav_out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_wav(wav_in, tone)
    other = UeAudio(HOST, codecs=("PCMU",), pcm=tone_pcm(300, 2.0))
    parser = argparse.ArgumentParser(prog="avatar-mf ue")
    add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(
        [
            "call", f"sip:clirtc@{HOST}:{mf.sip_port}", "--duration", "2.0", "--webrtc-audio",
            "--audio-in", str(wav_in), "--audio-out", str(wav_out),
        ]
    )  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    async with dial(mf, "clirtc", other):
        code = await asyncio.to_thread(args.run, args, SimpleNamespace(stdout=out, stderr=err))
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert code == 0, err.getvalue()
    assert summary["audio"]["codec"] == "OPUS" and summary["audio"]["packets_sent"] >= 50
    heard, _ = best_correlation(tone, other.received_pcm())
    print(f"CLI --webrtc-audio: the IMS UE heard the WAV (peak {heard:.3f})")
    assert heard > 0.8 and read_wav(wav_out)
    no_ice = parser.parse_args(["call", f"sip:x@{HOST}:5060", "--no-ice", "--webrtc-audio"])
    assert no_ice.run(no_ice, SimpleNamespace(stdout=out, stderr=err)) != 0
    assert "--webrtc-audio needs ICE" in err.getvalue()
    assert_idle(mf)


async def test_reinvite_keeps_the_bundled_audio(mf: MfProcess) -> None:
    """A re-INVITE on the same DTLS association (a data channel added) keeps the audio stream
    and its SRTP path (RFC 3264 8.3.1): the audio flows on, one stream in the end record."""
    talker = UeAudio(HOST, webrtc=True, pcm=tone_pcm(600, 4.0))
    listener = UeAudio(HOST, webrtc=True)
    async with dial(mf, "rtcreinvite", listener):
        async with dial(mf, "rtcreinvite", talker) as a:
            await wait_for(lambda: listener.packets_in > 20)
            added = await a.add_streams([DcMap(1004, label="extra", subprotocol="echo")])
            assert [d.stream_id for d in added] == [1004]
            assert a.answer is not None and a.answer.media[0].port != 0
            before = listener.packets_in
            await asyncio.sleep(1.0)
            assert listener.packets_in > before + 30  # still flowing after the re-INVITE
            assert held(mf)["rtp_streams"] == 2
    records = [
        json.loads(line)["cdr"]
        for line in mf.log_text().splitlines()
        if '"cdr"' in line and a.call_id in line
    ]
    (record,) = records[-1]["audio"]  # one stream: kept, not replaced
    assert record["codec"] == "opus/48000" and record["packets_in"] >= 60
    assert_idle(mf)
