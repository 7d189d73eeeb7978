"""The test UE's voice without RTP: ``DcAudioSender`` and ``ue call --audio-dc``."""

from __future__ import annotations

import argparse
import random
import wave
from pathlib import Path

import pytest

from avatar_mf.protocol.audio import AudioFormat, parse_audio
from avatar_mf.sdp.datachannel import format_dcmap
from avatar_mf.ue.cli import _streams, add_parser, hello_inputs
from avatar_mf.ue.dc_audio import AUDIO_STREAM, DcAudioSender
from avatar_mf.ue.offer import DEFAULT_STREAMS


def call_args(*options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="avatar-mf ue")
    add_parser(parser.add_subparsers(required=True))
    return parser.parse_args(["call", "sip:room@127.0.0.1", *options])


def test_the_messages_carry_the_pcm_on_one_sender_clock() -> None:
    pcm = bytes(range(256)) * 3 + b"\x07"  # 769 bytes: odd, and not whole frames
    sender = DcAudioSender(lambda sid, data: None, pcm, rng=random.Random(1))
    messages = [parse_audio(m) for m in sender.messages()]
    assert len(messages) == sender.frames == 2
    first_seq, first_ts = sender.first_sequence, sender.first_timestamp
    assert [m.sequence for m in messages] == [first_seq, (first_seq + 1) & 0xFFFF]
    assert [m.timestamp for m in messages] == [first_ts, (first_ts + 320) & 0xFFFFFFFF]
    assert b"".join(m.pcm for m in messages) == pcm[:768] + bytes(1280 - 768)


@pytest.mark.parametrize(("frame_ms", "samples"), [(10, 160), (60, 960)])
def test_other_frame_lengths_and_l16(frame_ms: int, samples: int) -> None:
    pcm = bytes(4 * samples)
    sender = DcAudioSender(
        lambda sid, data: None, pcm, frame_ms=frame_ms, audio_format=AudioFormat.L16
    )
    messages = [parse_audio(m) for m in sender.messages()]
    assert [m.samples for m in messages] == [samples, samples]
    assert {m.format for m in messages} == {AudioFormat.L16}
    assert sender.seconds == pytest.approx(2 * frame_ms / 1000)  # what run() takes
    with pytest.raises(ValueError):
        DcAudioSender(lambda sid, data: None, pcm, frame_ms=80)


async def test_run_sends_every_message_on_its_stream() -> None:
    sent: list[tuple[int, bytes]] = []
    sender = DcAudioSender(lambda sid, data: sent.append((sid, data)), bytes(3 * 640))
    assert await sender.run() == 3
    assert [sid for sid, _ in sent] == [1006] * 3
    assert [data for _, data in sent] == list(sender.messages())
    assert sender.summary() == {"stream": 1006, "messages_sent": 3, "seconds_sent": 0.06}


async def test_the_summary_counts_seconds_by_the_frame_length() -> None:
    sender = DcAudioSender(lambda sid, data: None, bytes(2 * 2 * 960), frame_ms=60)
    assert await sender.run() == 2
    assert sender.summary()["seconds_sent"] == 0.12  # 2 x 60 ms, not 2 x 20 ms


def test_the_audio_channel_is_offered_unordered_and_never_retransmitted(tmp_path: Path) -> None:
    assert (
        format_dcmap(AUDIO_STREAM)
        == '1006 label="avatar-audio";subprotocol="avatar-mf-audio";ordered=0;max-retr=0'
    )
    assert _streams(call_args()) == DEFAULT_STREAMS
    wav = tmp_path / "a.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(1600))
    args = call_args("--audio-dc", str(wav))
    assert _streams(args) == (*DEFAULT_STREAMS, AUDIO_STREAM)
    assert args.audio_dc == wav


@pytest.mark.parametrize(
    ("options", "inputs"),
    [
        ((), ("text",)),
        (("--say", "hello"), ("text",)),
        (("--audio-in", "speech.wav"), ("voice",)),
        (("--audio-dc", "speech.wav"), ("voice",)),
        (("--audio-in", "speech.wav", "--say", "hello"), ("text", "voice")),
    ],
)
def test_the_hello_asks_for_voice_when_the_ue_sends_its_voice(
    options: tuple[str, ...], inputs: tuple[str, ...]
) -> None:
    # RTP voice (--audio-in) drives the MF's voice stage only when the hello agrees voice:
    # the hello used to ask for text alone unless --audio-dc was given.
    assert hello_inputs(call_args(*options)) == inputs


def test_rtp_audio_files_may_be_named_relative_to_the_working_directory() -> None:
    # docs/media.md runs `ue call ... --audio-in speech.wav --audio-out heard.wav`: the two
    # options took the bootstrap GET path's type and refused any name not starting with "/".
    args = call_args("--audio-in", "speech.wav", "--audio-out", "out/heard.wav")
    assert (args.audio_in, args.audio_out) == ("speech.wav", "out/heard.wav")
