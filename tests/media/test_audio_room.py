"""Audio rooms (rooms/audio_room.py): forwarding for two, the N-1 mix, speech, the cap."""

from __future__ import annotations

import random

import numpy as np
import pytest

from avatar_mf.codecs.registry import audio_codec
from avatar_mf.media.audio_stream import AudioStream, MediaLimits, StreamFormat
from avatar_mf.rooms.audio_room import TICK, AudioMember, AudioRoom, AudioRoomStats
from avatar_mf.rtp.packet import RtpPacket, parse_rtp
from avatar_mf.testing.clock import FakeClock

PCMU = StreamFormat(payload_type=0, codec_name="PCMU", clock_rate=8000)
PCMA = StreamFormat(payload_type=8, codec_name="PCMA", clock_rate=8000)


def level(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int32)


def constant(value: int) -> bytes:
    return np.full(320, value, dtype="<i2").tobytes()


class Member:
    """A member of a room with a wire and the codec of its format."""

    def __init__(self, key: str, fmt: StreamFormat, clock: FakeClock, seed: int) -> None:
        codec = audio_codec(fmt.codec_name, fmt.clock_rate, {})
        assert codec is not None
        self.codec = codec
        self.sent: list[bytes] = []
        self.stream = AudioStream(
            fmt,
            remote=("192.0.2.1", 4000 + seed),
            remote_rtcp=("192.0.2.1", 4001 + seed),
            rtcp_mux=False,
            send=lambda data, addr: self.sent.append(data),
            send_rtcp=None,
            now=clock.now(),
            limits=MediaLimits(jitter_buffer_ms=20),
            rng=random.Random(seed),
        )
        self.member = AudioMember(key, self.stream, codec.decoder(), codec.encoder())
        self._encoder = codec.encoder()
        self._seq = 0
        self.last_payload = b""
        self.addr = ("198.51.100.1", 5000 + seed)

    def talk(self, pcm: bytes, now: float) -> None:
        self.last_payload = self._encoder.encode(pcm)
        packet = RtpPacket(
            self.stream.format.payload_type, self._seq, self._seq * 160, 0xABC, self.last_payload
        )
        self._seq += 1
        self.stream.receive(packet.serialize(), self.addr, now)

    def heard(self) -> list[np.ndarray]:
        decoder = self.codec.decoder()
        return [level(decoder.decode(parse_rtp(d).payload)) for d in self.sent]


def room_of(clock: FakeClock, max_members: int = 8) -> AudioRoom:
    return AudioRoom("r", clock, runner=None, stats=AudioRoomStats(), max_members=max_members)


async def test_two_members_with_one_codec_forward_untouched() -> None:
    clock = FakeClock()
    room = room_of(clock)
    a, b = Member("a", PCMU, clock, 1), Member("b", PCMU, clock, 2)
    room.add(a.member)
    room.add(b.member)
    assert room.mode == "forward"
    a.talk(constant(1000), 0.0)
    assert len(b.sent) == 1 and not a.sent
    assert parse_rtp(b.sent[0]).payload == a.last_payload
    room.remove("a")
    room.remove("b")


async def test_two_members_with_different_codecs_are_transcoded() -> None:
    clock = FakeClock()
    room = room_of(clock)
    a, b = Member("a", PCMU, clock, 1), Member("b", PCMA, clock, 2)
    room.add(a.member)
    room.add(b.member)
    assert room.mode == "mix"
    for i in range(4):
        a.talk(constant(4000), i * TICK)
        clock.advance(TICK)
        await room.tick(clock.now())
    heard = b.heard()
    assert parse_rtp(b.sent[-1]).payload_type == 8
    assert abs(int(np.mean(heard[-1])) - 4000) < 200  # G.711 round trip
    room.remove("a")
    room.remove("b")


async def test_n_minus_1_mix_each_hears_the_others_not_itself() -> None:
    clock = FakeClock()
    room = room_of(clock)
    members = {k: Member(k, PCMU, clock, i) for i, k in enumerate("abc")}
    for m in members.values():
        room.add(m.member)
    values = {"a": 1000, "b": 3000, "c": 30000}
    for i in range(4):
        for k, m in members.items():
            m.talk(constant(values[k]), i * TICK)
        clock.advance(TICK)
        await room.tick(clock.now())
    got = {k: int(np.mean(m.heard()[-1])) for k, m in members.items()}
    assert abs(got["c"] - 4000) < 250  # a + b
    assert got["a"] > 31000 and got["b"] > 30000  # b + c and a + c: clipped at 32767
    for k in members:
        room.remove(k)


async def test_speech_starts_on_time_and_goes_to_the_others_only() -> None:
    clock = FakeClock()
    room = room_of(clock)
    a, b = Member("a", PCMU, clock, 1), Member("b", PCMU, clock, 2)
    room.add(a.member)
    room.add(b.member)
    start = 0.1 + 0.007  # between two ticks: the lead-in silence absorbs the 7 ms
    room.play("a", constant(8000) * 5, start_at=start)
    assert room.mode == "mix"
    times = []
    for _ in range(12):
        clock.advance(TICK)
        times.append(clock.now())
        await room.tick(clock.now())
    heard_b = b.heard()
    samples = np.concatenate(heard_b)
    onset = int(np.argmax(np.abs(samples) > 2000))
    onset_time = times[0] + onset / 16000
    # G.711's 16 <-> 8 kHz resampling filters delay the signal by ~4 ms end to end.
    assert onset_time == pytest.approx(start, abs=0.005)
    assert all(np.max(np.abs(x)) < 100 for x in a.heard())  # a does not hear itself
    room.remove("a")
    room.remove("b")


async def test_the_room_cap() -> None:
    clock = FakeClock()
    room = room_of(clock, max_members=2)
    room.add(Member("a", PCMU, clock, 1).member)
    room.add(Member("b", PCMU, clock, 2).member)
    assert room.full
    with pytest.raises(OverflowError):
        room.add(Member("c", PCMU, clock, 3).member)
    room.remove("a")
    room.remove("b")


async def test_a_failed_tick_costs_one_tick_not_the_room() -> None:
    import asyncio

    clock = FakeClock()
    calls = 0

    async def runner(job: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("worker pool full")
        assert callable(job)
        return job()

    room = AudioRoom("r", clock, runner=runner, stats=AudioRoomStats())
    members = [Member(k, PCMU, clock, i) for i, k in enumerate("abc")]
    for m in members:
        m.member.cheap = False  # as AMR-WB: the tick goes through the runner
        room.add(m.member)
    await asyncio.sleep(0)  # the room's task starts
    for _ in range(5):
        clock.advance(TICK)
        for _ in range(5):
            await asyncio.sleep(0)
    assert room.stats.failed_ticks == 1 and calls == room.stats.ticks == 5
    assert all(len(m.sent) == 4 for m in members)  # every tick but the failed one sent
    for k in "abc":
        room.remove(k)
    await asyncio.sleep(0)


# -- forwarding rooms decode for a session that wants the voice ------------------------------

AMRWB = StreamFormat(payload_type=97, codec_name="AMR-WB", clock_rate=16000, samples_per_frame=320)


def tone(amplitude: float, frame: int) -> bytes:
    t = (np.arange(320) + frame * 320) / 16000
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


def listen(member: Member, wanted: list[bool]) -> list[tuple[bytes, int]]:
    """Make ``member`` a member whose session wants its voice while ``wanted[0]``."""
    got: list[tuple[bytes, int]] = []
    member.member.on_pcm = lambda pcm, ts: got.append((pcm, ts))
    member.member.wants_pcm = lambda: wanted[0]
    member.member.pcm_decoder = member.codec.decoder()
    return got


async def test_a_forwarding_room_without_an_audio_consumer_decodes_nothing() -> None:
    clock = FakeClock()
    room = room_of(clock)
    a, b = Member("a", PCMU, clock, 1), Member("b", PCMU, clock, 2)
    got_a: list[tuple[bytes, int]] = []
    a.member.on_pcm = lambda pcm, ts: got_a.append((pcm, ts))  # a sink, but no wants_pcm
    got_b = listen(b, [False])  # a session whose pipeline takes no AudioIn
    room.add(a.member)
    room.add(b.member)
    assert room.mode == "forward"
    for i in range(10):
        a.talk(tone(8000, i), i * TICK)
        b.talk(tone(8000, i), i * TICK)
        clock.advance(TICK)
        await room.tick(clock.now())
    assert len(b.sent) == 10 and len(a.sent) == 10  # forwarded both ways
    assert got_a == [] and got_b == []
    assert room.stats.forward_decoded == 0 and room.stats.decoded_frames == 0
    room.remove("a")
    room.remove("b")


async def test_a_forwarding_room_decodes_g711_inline_for_a_session_that_wants_it() -> None:
    clock = FakeClock()
    room = room_of(clock)
    a, b = Member("a", PCMU, clock, 1), Member("b", PCMU, clock, 2)
    wanted = [False]
    got = listen(a, wanted)
    room.add(a.member)
    room.add(b.member)
    assert room.mode == "forward"
    a.talk(tone(8000, 0), 0.0)  # before the session takes voice: not decoded
    assert got == []
    wanted[0] = True
    sent = [tone(8000, i) for i in range(1, 6)]
    for i, pcm in enumerate(sent, start=1):
        a.talk(pcm, i * TICK)
    assert len(b.sent) == 6  # every packet still forwarded, untouched
    assert parse_rtp(b.sent[-1]).payload == a.last_payload
    assert [ts for _, ts in got] == [i * 160 for i in range(1, 6)]  # at once, in order
    heard = np.concatenate([level(pcm) for pcm, _ in got]).astype(np.float64)
    truth = np.concatenate([level(pcm) for pcm in sent]).astype(np.float64)
    # G.711 at 8 kHz with its resampling filters: the same tone, ~2 ms late.
    best = max(
        float(np.corrcoef(heard[lag:], truth[: truth.size - lag])[0, 1]) for lag in range(48)
    )
    assert best > 0.95
    assert room.stats.forward_decoded == 5 and room.stats.decoded_frames == 0
    room.remove("a")
    room.remove("b")


async def test_a_forwarding_room_decodes_amr_wb_in_the_pool_in_order() -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    clock = FakeClock()
    pool = ThreadPoolExecutor(1)
    jobs = 0

    async def runner(job: object) -> object:
        nonlocal jobs
        jobs += 1
        assert callable(job)
        return await asyncio.get_running_loop().run_in_executor(pool, job)

    room = AudioRoom("r", clock, runner=runner, stats=AudioRoomStats())
    a, b = Member("a", AMRWB, clock, 1), Member("b", AMRWB, clock, 2)
    a.member.cheap = b.member.cheap = False
    got = listen(a, [True])
    room.add(a.member)
    room.add(b.member)
    assert room.mode == "forward"
    sent = [tone(8000, i) for i in range(8)]
    for i, pcm in enumerate(sent):
        a.talk(pcm, i * TICK)
    assert len(b.sent) == 8 and got == []  # forwarded at once; decoding is off the loop
    for _ in range(50):
        if len(got) == 8:
            break
        await asyncio.sleep(0.01)
    assert [ts for _, ts in got] == [i * 160 for i in range(8)]
    assert 1 <= jobs < 8  # batched: the packets waiting when a job starts go together
    heard = np.concatenate([level(pcm) for pcm, _ in got])[1280:].astype(np.float64)
    assert np.sqrt(np.mean(heard**2)) > 2000  # the tone, not silence
    room.remove("a")
    room.remove("b")
    pool.shutdown()
