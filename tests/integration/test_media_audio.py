"""IMS-style audio through a real MF process: test UEs sending and receiving RTP (PCMU).

* two UEs in a room hear each other: the speech one sends (espeak output, generated here) is
  what the other decodes (normalised cross-correlation peak > 0.8, delay printed);
* three UEs: the N-1 mix (each hears the two others, not itself);
* bad media input is dropped and counted, the call goes on;
* a UE that stops sending is hung up with BYE, Reason "media timeout";
* every call releases its RTP streams and sockets (/stats ``held``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from avatar_mf.testing.process import MfProcess
from avatar_mf.ue import UeCall
from avatar_mf.ue.cli import add_parser
from avatar_mf.ue.rtp_audio import UeAudio, read_wav, resample, write_wav

from .conftest import assert_idle

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.mf_settings({"SIP__T1": "0.005", "SIP__T4": "0.05", "MEDIA__SETUP_TIMEOUT": "5"}),
]

HOST = "127.0.0.1"


def speech_pcm(text: str = "The quick brown fox jumps over the lazy dog") -> bytes:
    """16 kHz speech from espeak-ng (the product's own engine), for correlation tests."""
    espeak = pytest.importorskip("avatar_mf.stages.animation_data.espeak")
    try:
        engine = espeak.espeak_engine()
    except espeak.SpeechEngineUnavailable:
        pytest.skip("libespeak-ng is not installed")
    speech = engine.synthesize(text, audio=True)
    assert speech.audio
    return resample(speech.audio, speech.sample_rate)


def tone_pcm(freq: float, seconds: float, amplitude: float = 6000.0) -> bytes:
    t = np.arange(int(seconds * 16000)) / 16000.0
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def best_correlation(sent: bytes, received: bytes) -> tuple[float, float]:
    """(peak of the normalised cross-correlation, delay in seconds) of ``sent`` in
    ``received`` (16 kHz PCM)."""
    a = np.frombuffer(sent, dtype="<i2").astype(np.float64)
    b = np.frombuffer(received, dtype="<i2").astype(np.float64)
    assert len(b) >= len(a), f"received {len(b)} samples, sent {len(a)}"
    n = len(a) + len(b)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)[
        : len(b) - len(a) + 1
    ]
    # Normalise by the energy of a and of each window of b.
    cumulative = np.concatenate(([0.0], np.cumsum(b * b)))
    windows = cumulative[len(a) :] - cumulative[: len(b) - len(a) + 1]
    norm = np.sqrt(np.sum(a * a) * np.maximum(windows, 1e-9))
    ncc = corr / norm
    lag = int(np.argmax(ncc))
    return float(ncc[lag]), lag / 16000.0


def dial(mf: MfProcess, room: str, audio: UeAudio) -> UeCall:
    return UeCall.dial(
        f"sip:{room}@{HOST}", HOST, mf.sip_port, ice=False, rtp_audio=audio, setup_timeout=5.0
    )


def held(mf: MfProcess) -> dict[str, int]:
    return dict(mf.stats()["held"])


async def wait_for(predicate: object, limit: float = 5.0) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_two_ues_in_a_room_hear_each_other(mf: MfProcess) -> None:
    speech = speech_pcm()
    talker = UeAudio(HOST, codecs=("PCMU",), pcm=speech)
    listener = UeAudio(HOST, codecs=("PCMU",))
    async with dial(mf, "audioroom", listener) as b:
        async with dial(mf, "audioroom", talker) as a:
            assert a.answer is not None and a.answer.media[0].port != 0
            assert talker.codec == "PCMU" and listener.codec == "PCMU"
            stats = held(mf)
            assert stats["rtp_streams"] == 2 and stats["audio_rooms"] == 1
            seconds = len(speech) / 32000
            await asyncio.sleep(seconds + 0.5)
        assert b.state == "confirmed"
    peak, delay = best_correlation(speech, listener.received_pcm())
    print(f"room, PCMU, forwarded: correlation peak {peak:.3f}, delay {delay * 1000:.0f} ms")
    assert peak > 0.8
    final = assert_idle(mf)
    assert final["held"]["rtp_streams"] == 0 and final["held"]["rtp_sockets"] == 0
    # The call records carry the streams' figures (the MF logs them: no CDR file set).
    records = [
        json.loads(line)["cdr"]
        for line in mf.log_text().splitlines()
        if '"cdr"' in line and a.call_id in line
    ]
    (audio,) = records[-1]["audio"]
    print("end record audio:", audio)
    assert audio["codec"] == "PCMU/8000" and audio["packets_in"] >= 50
    assert audio["packets_out"] >= 50 and audio["lost"] == 0 and audio["jitter_ms"] >= 0


async def test_three_ues_hear_the_two_others(mf: MfProcess) -> None:
    tones = {"a": tone_pcm(440, 1.5), "b": tone_pcm(1000, 1.5), "c": b""}
    audios = {name: UeAudio(HOST, codecs=("PCMU",), pcm=pcm) for name, pcm in tones.items()}
    calls = [dial(mf, "mixroom", audios[name]) for name in "cab"]
    for call in calls:
        await call.connect()
    try:
        await asyncio.sleep(2.0)
    finally:
        for call in calls:
            await call.hangup()

    def level(pcm: bytes, freq: float) -> float:
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        spectrum = np.abs(np.fft.rfft(x))
        bins = np.fft.rfftfreq(len(x), 1 / 16000)
        return float(spectrum[np.argmin(np.abs(bins - freq))] / max(np.sum(spectrum), 1.0))

    c_heard = audios["c"].received_pcm()
    a_heard = audios["a"].received_pcm()
    b_heard = audios["b"].received_pcm()
    # C hears both tones; A hears B's and not its own; B hears A's and not its own.
    assert level(c_heard, 440) > 10 * level(c_heard, 700)
    assert level(c_heard, 1000) > 10 * level(c_heard, 700)
    assert level(a_heard, 1000) > 10 * level(a_heard, 440)
    assert level(b_heard, 440) > 10 * level(b_heard, 1000)
    assert_idle(mf)


def _bad_packets(remote_ssrc: int, pt: int) -> Sequence[bytes]:
    header = struct.pack("!BBHII", 0x80, pt, 1, 160, 0x1234)
    return [
        b"\x00" * 3,  # truncated
        struct.pack("!BBHII", 0x40, pt, 2, 320, 0x1234) + b"\xff" * 160,  # version 1
        struct.pack("!BBHII", 0x8F, pt, 3, 480, 0x1234),  # 15 CSRCs that are not there
        struct.pack("!BBHII", 0x80, 99, 4, 640, remote_ssrc) + b"\xff" * 160,  # PT 99
        struct.pack("!BBHII", 0x80, pt, 5, 800, 0xDEAD) + b"\xff" * 160,  # another SSRC
        header + b"\xff" * 4000,  # huge
    ]


async def test_bad_media_is_dropped_and_counted_the_call_goes_on(mf: MfProcess) -> None:
    speech = tone_pcm(700, 2.5)
    talker = UeAudio(HOST, codecs=("PCMU",), pcm=speech)
    listener = UeAudio(HOST, codecs=("PCMU",))
    async with dial(mf, "badroom", listener) as b:
        async with dial(mf, "badroom", talker) as a:
            await wait_for(lambda: listener.packets_in > 10)
            for packet in _bad_packets(talker.ssrc, 0):
                talker.send_raw(packet)
            # A flood: far past the per-stream packet rate.
            for i in range(2000):
                talker.send_raw(struct.pack("!BBHII", 0x80, 0, i, i * 160, 0x5555) + b"\xff")
            await asyncio.sleep(1.0)
            before = listener.packets_in
            await asyncio.sleep(0.5)
            assert listener.packets_in > before + 10  # still flowing
            assert a.state == "confirmed" and b.state == "confirmed"
        metrics = mf.http_get("/metrics")[1].decode()
    drops = {
        line.split('reason="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("avatar_mf_rtp_dropped_total{")
    }
    print("drops:", json.dumps(drops))
    for reason in ("malformed", "payload_type", "ssrc", "oversize", "rate"):
        assert drops.get(reason, 0) >= 1, (reason, drops)
    assert_idle(mf)


@pytest.mark.mf_settings({"MEDIA__RTP_TIMEOUT": "1.0"})
async def test_a_ue_that_stops_sending_is_hung_up_media_timeout(mf: MfProcess) -> None:
    quiet = UeAudio(HOST, codecs=("PCMU",), pcm=tone_pcm(500, 0.4), keep_sending=False)
    async with dial(mf, "quietroom", quiet) as call:
        reason = await call.wait_ended(timeout=5.0)
        assert call.ended_by == "mf"
    print("ended:", reason)
    assert "media timeout" in reason
    stats = assert_idle(mf)
    assert stats["calls"].get("failure_reasons", {}) is not None


async def test_cli_call_sends_a_wav_and_records_one(mf: MfProcess, tmp_path: Path) -> None:
    tone = tone_pcm(800, 1.0)
    wav_in, wav_out = tmp_path / "in.wav", tmp_path / "out.wav"
    write_wav(wav_in, resample(tone, 16000, 8000), rate=8000)  # any rate is resampled
    other_sends = tone_pcm(300, 2.0)
    other = UeAudio(HOST, codecs=("PCMU",), pcm=other_sends)
    parser = argparse.ArgumentParser(prog="avatar-mf ue")
    add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(
        [
            "call", f"sip:cliroom@{HOST}:{mf.sip_port}", "--no-ice", "--duration", "2.0",
            "--audio-in", str(wav_in), "--audio-out", str(wav_out), "--audio-codecs", "PCMU",
        ]
    )  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    async with dial(mf, "cliroom", other):
        code = await asyncio.to_thread(args.run, args, SimpleNamespace(stdout=out, stderr=err))
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert code == 0, err.getvalue()
    assert summary["audio"]["codec"] == "PCMU" and summary["audio"]["packets_sent"] >= 50
    heard, _ = best_correlation(tone, other.received_pcm())
    recorded = read_wav(wav_out)
    got, _ = best_correlation(other_sends[:16000], recorded)
    print(
        f"CLI: the other UE heard the WAV (peak {heard:.3f}); the WAV out has its audio ({got:.3f})"
    )
    assert heard > 0.8 and got > 0.8
    assert_idle(mf)
