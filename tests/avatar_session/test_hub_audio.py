"""The avatar session's audio seams: decoded RTP voice in as AudioIn frames, a stage's speech
out (AudioOut) to the room's audio plane at the right time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from avatar_mf.avatar_session.hub import AvatarHub, ConfiguredStage
from avatar_mf.pipeline.executor import StageExecutor
from avatar_mf.pipeline.frames import AudioIn, AudioOut, Frame
from avatar_mf.pipeline.stage import StageBase, StageContext
from avatar_mf.storage import Authorizer, AvatarCache, MemoryStore
from avatar_mf.testing.clock import FakeClock

from .test_avatar_hub import Ue, settle


class Voice(StageBase):
    """Takes the participant's voice; answers each frame with 0.5 s of speech at 0.1 s."""

    accepts = (AudioIn,)

    def __init__(self, seen: list[AudioIn]) -> None:
        self.seen = seen

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        assert isinstance(frame, AudioIn)
        self.seen.append(frame)
        yield AudioOut(frame.participant, b"\x01\x00" * 8000, media_time=0.1)


class VoiceProvider:
    def __init__(self) -> None:
        self.seen: list[AudioIn] = []

    def open(self, context: StageContext) -> Voice:
        return Voice(self.seen)


async def test_voice_in_and_speech_out() -> None:
    clock = FakeClock(start=50.0)
    store = MemoryStore()
    provider = VoiceProvider()
    played: list[tuple[str, str, int, float]] = []

    def play(room: str, key: str, pcm: bytes, start: float) -> bool:
        played.append((room, key, len(pcm), start))
        return True

    hub = AvatarHub(
        clock=clock,
        executor=StageExecutor(workers=1),
        stages=[ConfiguredStage("animation", "voice", provider)],
        store=store,
        authorizer=Authorizer(store, FakeClock(start=time.time())),
        cache=AvatarCache(store, clock),
        play_audio=play,
    )
    ue = Ue(hub, "c1", "sip:alice@127.0.0.1", room="talk")
    hub.push_audio("c1", b"\x00" * 640, 12345, 8000)
    hub.push_audio("nobody", b"\x00" * 640, 1, 8000)  # a call without a session: ignored
    await settle(lambda: bool(played))
    (frame,) = provider.seen
    assert (frame.participant, frame.rtp_timestamp, frame.clock_rate) == ("p1", 12345, 8000)
    assert played == [("talk", "c1", 16000, 50.1)]
    ue.hang_up()
    await hub.aclose()
