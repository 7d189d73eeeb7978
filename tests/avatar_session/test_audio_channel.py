"""Raw audio on an ``avatar-mf-audio`` data channel (issue 13, UEs without RTP), on the fake
clock: messages -> the session's ``AudioIn`` -> the real voice stage's units, only when the
hello agreed voice; one voice source per session (the first heard); bad messages answered
``bad-audio`` (at most one error per reason a second), counted, never raised.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avatar_mf.arf import ARKIT_INDEX
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, decode_unit
from avatar_mf.avatar_session.hub import AUDIO, AvatarHub, ConfiguredStage
from avatar_mf.channels.base import ChannelService
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.pipeline.frames import AudioIn, Frame
from avatar_mf.pipeline.stage import StageBase, StageContext
from avatar_mf.protocol.metadata import Hello
from avatar_mf.stages.scene.stage import RoomScenes
from avatar_mf.stages.voice.corpus import load_corpus
from avatar_mf.storage import MemoryStore
from avatar_mf.testing.channels import RecordingChannel, channel_info
from avatar_mf.testing.clock import FakeClock

from .test_avatar_hub import ListScene, Ue, settle

DATA = Path(__file__).parents[1] / "stages" / "voice" / "data"
FRAME = 320  # samples in 20 ms


class AudioUe(Ue):
    """A test call with an ``avatar-mf-audio`` channel besides its metadata and animation."""

    def __init__(self, hub: AvatarHub, call: str, identity: str, room: str = "r") -> None:
        super().__init__(hub, call, identity, room)
        self.audio = RecordingChannel(
            channel_info(
                stream_id=1006,
                subprotocol=AUDIO,
                call_id=call,
                identity=identity,
                request_uri=f"sip:{room}@127.0.0.1",
            )
        )
        self.audio_service: ChannelService = hub.services()[AUDIO](self.audio)
        self.sequence = random.Random(call).getrandbits(16)
        self.timestamp = random.Random(call + "ts").getrandbits(32)

    def speak(self, pcm: bytes, *, version: int = 1) -> None:
        """One message of ``pcm`` (little-endian samples), the next on the sender's clock."""
        header = bytes([version, 1]) + self.sequence.to_bytes(2, "big")
        self.audio_service.on_message(header + self.timestamp.to_bytes(4, "big") + pcm)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(pcm) // 2) & 0xFFFFFFFF

    def errors(self) -> list[tuple[str, str]]:
        return [(e["code"], e["message"]) for e in self.of_type(":error")]

    def hang_up(self) -> None:
        self.audio_service.on_close()
        super().hang_up()


def _hub(store: MemoryStore, clock: FakeClock, *data: ConfiguredStage) -> AvatarHub:
    return AvatarHub(
        clock=clock,
        executor=StageExecutor(workers=1),
        stages=[*data, ConfiguredStage("scene", "list", RoomScenes(ListScene))],
        store=store,
    )


def hello(ue: Ue, *inputs: str) -> None:
    ue.send(Hello(id=f"h-{len(ue.of_type('capabilities'))}", role="both", animation_inputs=inputs))


class Heard(StageBase):
    accepts = (AudioIn,)

    def __init__(self, seen: list[AudioIn]) -> None:
        self.seen = seen

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        assert isinstance(frame, AudioIn)
        self.seen.append(frame)
        return
        yield


class Ears:
    """A voice animation-data stage that records the AudioIn frames it takes."""

    animation_inputs = ("voice",)

    def __init__(self) -> None:
        self.seen: list[AudioIn] = []

    def open(self, context: StageContext) -> Heard:
        return Heard(self.seen)


def _speech() -> np.ndarray:
    (utterance,) = [u for u in load_corpus(DATA) if u.name.endswith("0870")]
    return utterance.pcm[: 3 * 16000]


def _jaw_and_ticks(sent: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    units = [decode_unit(u) for u in sent]
    shapes = [u for u in units if isinstance(u, BlendshapeUnit)]
    jaw = np.array([s.weights[s.indices.index(ARKIT_INDEX["jawOpen"])] for s in shapes])
    return jaw, np.array([s.timestamp for s in shapes], dtype=np.int64)


async def test_messages_drive_the_voice_stage_exactly_as_rtp_voice_does() -> None:
    """The same speech, once as audio messages and once as RTP voice (same timestamps):
    the listeners get the same mouth on the same ticks."""
    from avatar_mf.stages.voice.stage import VoiceToAnimation

    clock = FakeClock()
    hub = _hub(MemoryStore(), clock, ConfiguredStage("animation_data", "voice", VoiceToAnimation()))
    speaker = AudioUe(hub, "c-dc", "sip:a@127.0.0.1", room="dc")
    dc_listener = Ue(hub, "c-dl", "sip:b@127.0.0.1", room="dc")
    rtp_speaker = Ue(hub, "c-rtp", "sip:c@127.0.0.1", room="rtp")
    rtp_listener = Ue(hub, "c-rl", "sip:d@127.0.0.1", room="rtp")
    hello(speaker, "voice")
    hello(rtp_speaker, "voice")
    first = speaker.timestamp
    pcm = _speech().astype("<i2").tobytes()
    for offset in range(0, len(pcm) - 2 * FRAME + 1, 2 * FRAME):
        frame = pcm[offset : offset + 2 * FRAME]
        hub.push_audio("c-rtp", frame, speaker.timestamp, 16000)
        speaker.speak(frame)
        clock.advance(0.02)
        await settle()
    await settle()
    assert speaker.errors() == []
    session = hub.session_of("c-dc")
    assert session is not None and session.voice_source == "datachannel"
    assert not hub.wants_audio("c-dc") and hub.wants_audio("c-rtp")
    assert hub.session_stats.audio_messages == {"accepted": len(pcm) // (2 * FRAME)}

    units = [decode_unit(u) for u in dc_listener.anim.sent]
    assert isinstance(units[0], ConfigUnit)
    jaw, ticks = _jaw_and_ticks(dc_listener.anim.sent)
    rtp_jaw, rtp_ticks = _jaw_and_ticks(rtp_listener.anim.sent)
    assert jaw.size >= 30 * 2.5
    n = min(jaw.size, rtp_jaw.size)
    assert np.array_equal(ticks[:n], rtp_ticks[:n]) and np.allclose(jaw[:n], rtp_jaw[:n])
    # The ticks are the sender's audio clock (timescale 1000): lip-sync to what it sent.
    assert ticks[0] == round(first / 16000 * 1000) % (1 << 32)
    # And the mouth follows the speech's loudness.
    x = _speech().astype(np.float64)
    hop = 16000 // 30
    rms = np.array([np.sqrt(np.mean(x[i * hop : (i + 1) * hop] ** 2)) for i in range(n)])
    best = max(float(np.corrcoef(jaw[lag:n], rms[: n - lag])[0, 1]) for lag in range(4))
    assert best > 0.5 and jaw.max() > 0.2
    for ue in (speaker, dc_listener, rtp_speaker, rtp_listener):
        ue.hang_up()
    await hub.aclose()


async def test_audio_is_refused_unsupported_until_a_hello_agrees_voice() -> None:
    clock, ears = FakeClock(), Ears()
    hub = _hub(MemoryStore(), clock, ConfiguredStage("animation_data", "voice", ears))
    ue = AudioUe(hub, "c1", "sip:a@127.0.0.1")
    for _ in range(10):  # 200 ms before any hello: one error
        ue.speak(bytes(2 * FRAME))
        clock.advance(0.02)
    hello(ue, "text")  # not voice: still refused
    clock.advance(1.0)
    ue.speak(bytes(2 * FRAME))
    await settle()
    assert ears.seen == []
    assert [code for code, _ in ue.errors()] == ["unsupported", "unsupported"]
    assert "did not agree the voice animation input" in ue.errors()[0][1]
    hello(ue, "voice")
    ue.speak(bytes(2 * FRAME))
    await settle(lambda: len(ears.seen) == 1)
    assert ears.seen[0].clock_rate == 16000 and ears.seen[0].pcm == bytes(2 * FRAME)
    assert hub.session_stats.audio_messages == {"unsupported": 11, "accepted": 1}
    assert hub.session_stats.error_replies["unsupported"] == 2
    ue.hang_up()
    await hub.aclose()


async def test_rtp_voice_heard_first_keeps_the_session_and_audio_messages_are_refused() -> None:
    clock, ears = FakeClock(), Ears()
    hub = _hub(MemoryStore(), clock, ConfiguredStage("animation_data", "voice", ears))
    ue = AudioUe(hub, "c1", "sip:a@127.0.0.1")
    hello(ue, "voice")
    hub.push_audio("c1", bytes(640), 8000, 8000)
    ue.speak(bytes(2 * FRAME))
    ue.speak(bytes(2 * FRAME))
    hub.push_audio("c1", bytes(640), 8160, 8000)
    await settle(lambda: len(ears.seen) == 2)
    await settle()
    assert [(f.rtp_timestamp, f.clock_rate) for f in ears.seen] == [(8000, 8000), (8160, 8000)]
    assert [code for code, _ in ue.errors()] == ["conflict"]
    assert "comes from its RTP audio stream" in ue.errors()[0][1]
    assert hub.wants_audio("c1")
    assert hub.session_stats.audio_messages == {"conflict": 2}
    ue.hang_up()
    await hub.aclose()


async def test_audio_messages_heard_first_keep_the_session_and_rtp_voice_is_not_taken() -> None:
    clock, ears = FakeClock(), Ears()
    hub = _hub(MemoryStore(), clock, ConfiguredStage("animation_data", "voice", ears))
    ue = AudioUe(hub, "c1", "sip:a@127.0.0.1")
    hello(ue, "voice")
    assert hub.wants_audio("c1")
    first = ue.timestamp
    ue.speak(bytes(2 * FRAME))
    assert not hub.wants_audio("c1")  # the room need not decode the call's RTP for it
    hub.push_audio("c1", bytes(640), 8000, 8000)
    ue.speak(bytes(2 * FRAME))
    await settle(lambda: len(ears.seen) == 2)
    await settle()
    assert [(f.rtp_timestamp, f.clock_rate) for f in ears.seen] == [
        (first, 16000),
        ((first + FRAME) & 0xFFFFFFFF, 16000),
    ]
    hello(ue, "voice")  # a new hello does not move the voice back to RTP
    assert not hub.wants_audio("c1")
    assert ue.errors() == []
    ue.hang_up()
    await hub.aclose()


async def test_bad_messages_are_answered_once_a_second_per_reason_and_all_counted() -> None:
    clock, ears = FakeClock(), Ears()
    hub = _hub(MemoryStore(), clock, ConfiguredStage("animation_data", "voice", ears))
    ue = AudioUe(hub, "c1", "sip:a@127.0.0.1")
    hello(ue, "voice")
    service = ue.audio_service
    bad = [
        b"\x01\x01\x00",  # short
        bytes([2, 1]) + bytes(6 + 640),  # version
        bytes([1, 9]) + bytes(6 + 640),  # format
        bytes([1, 1]) + bytes(6 + 641),  # odd length
        bytes([1, 1]) + bytes(6 + 100),  # too short
        bytes([1, 1]) + bytes(6 + 4000),  # too long
    ]
    for message in bad * 3:
        service.on_message(message)
    service.on_message("hello?")
    ue.speak(bytes(2 * FRAME))
    ue.timestamp += 1000 * 16000  # far off
    ue.speak(bytes(2 * FRAME))
    await settle(lambda: len(ears.seen) == 1)
    reasons = [message.split(": ")[1] for code, message in ue.errors() if code == "bad-audio"]
    assert reasons == [
        "short",
        "version",
        "format",
        "odd-length",
        "too-short",
        "too-long",
        "text",
        "far-timestamp",
    ]
    clock.advance(1.0)
    service.on_message(b"")
    assert len(ue.errors()) == 9  # a second later, the next one is answered again
    assert hub.session_stats.audio_messages == {
        "short": 4,
        "version": 3,
        "format": 3,
        "odd-length": 3,
        "too-short": 3,
        "too-long": 3,
        "text": 1,
        "far-timestamp": 1,
        "accepted": 1,
    }
    assert hub.session_stats.error_replies["bad-audio"] == 9
    ue.hang_up()
    await hub.aclose()


@pytest.mark.parametrize("samples", [160, 480, 960])
async def test_10_to_60_ms_messages_are_taken(samples: int) -> None:
    clock, ears = FakeClock(), Ears()
    hub = _hub(MemoryStore(), clock, ConfiguredStage("animation_data", "voice", ears))
    ue = AudioUe(hub, "c1", "sip:a@127.0.0.1")
    hello(ue, "voice")
    ue.speak(bytes(2 * samples))
    ue.speak(bytes(2 * samples))
    await settle(lambda: len(ears.seen) == 2)
    assert ears.seen[1].rtp_timestamp - ears.seen[0].rtp_timestamp in (samples, samples - 2**32)
    assert ue.errors() == []
    ue.hang_up()
    await hub.aclose()
