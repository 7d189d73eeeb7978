"""WebRTC-style audio through a real MF process: test UEs with ICE whose Opus audio is
BUNDLEd with their data channel (one ICE + DTLS transport, SRTP keyed by its handshake).

* two WebRTC UEs in a room hear each other: the speech one sends is what the other decodes
  (normalised cross-correlation peak, delay printed), as the IMS test does without ICE;
* a mixed room, an IMS UE (PCMU over plain RTP, no ICE) and a WebRTC UE (Opus over SRTP):
  each hears the other (the room transcodes through its mix);
* bad SRTP (garbage, packets protected with other keys) is dropped and counted, the call
  goes on;
* every call releases its streams and sockets (/stats ``held``).
"""

from __future__ import annotations

import asyncio
import json
import os

import pylibsrtp
import pytest

from avatar_mf.rtp.packet import RtpPacket
from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import UeCall
from avatar_mf.ue.rtp_audio import UeAudio

from .conftest import assert_idle
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
