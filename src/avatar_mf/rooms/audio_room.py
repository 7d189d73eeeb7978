"""Who hears whom: the audio of a room (N-1 mixing) and of a two-leg call (forwarding).

Every call with an accepted audio m-line is an :class:`AudioMember` of the :class:`AudioRoom`
its room name names (the two legs of a two-leg call share the room made for the pair). A room
runs one clock-paced task, a tick every 20 ms (:data:`TICK`), while it has members:

* **Forwarding.** With exactly two members that negotiated the same codec and fmtp, and no
  synthesized speech to add, each accepted packet is relayed to the other member as it
  arrives (``AudioStream.forward``: payload untouched, header rewritten): no decoding, no
  added delay. The tick only checks the timeouts. A member whose session wants its decoded
  voice (a pipeline stage takes ``AudioIn``: :attr:`AudioMember.wants_pcm`) has its packets
  decoded as well, as they are forwarded, with a decoder of its own
  (:attr:`AudioMember.pcm_decoder`): inline for G.711, in the media worker pool otherwise
  (one job per batch of waiting packets, in order). Nobody wanting it: nothing is decoded.
* **Mixing.** Otherwise each tick takes one payload per member from its jitter buffer,
  decodes it (or conceals a lost one), and sends each member the sum of the *others* (N-1),
  clipped to 16 bits, plus any speech the MF synthesizes for another participant, encoded in
  that member's codec. A member that sent nothing yet adds nothing; a member with nobody to
  hear gets silence (so its UE's own inactivity timer does not fire).

The decode + mix + encode of one tick is one job: run inline when every member's codec is
cheap (G.711: table look-ups, ~10 us per frame), otherwise in the node's media worker pool
(``runner``), never on the event loop (AMR-WB decode + encode costs a few hundred us).

Speech (:meth:`AudioRoom.play`) starts at a given clock time: the frames are prefixed with
silence so the first sample lands exactly at that time on the room's 20 ms grid.

:data:`MAX_AUDIO_PARTICIPANTS` is the default room cap (``[media] max_audio_participants``):
an N-1 mix costs N decodes and N encodes per tick; past the cap a call's audio m-line is
answered port 0 (its data channels still work).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import numpy as np

from avatar_mf.clock import Clock, sleep
from avatar_mf.codecs.base import FRAME_BYTES, SILENCE, AudioDecoder, AudioEncoder, CodecError
from avatar_mf.media.audio_stream import AudioStream, Playout
from avatar_mf.rtp.jitter import JitterFrame
from avatar_mf.rtp.packet import RtpPacket

log = logging.getLogger(__name__)

#: The mixing period (one 20 ms frame).
TICK: Final = 0.020
#: Default cap on the audio members of one room.
MAX_AUDIO_PARTICIPANTS: Final = 8
#: A tick later than this re-anchors the grid instead of catching up.
_RESYNC: Final = 0.2

_T = TypeVar("_T")
Runner = Callable[[Callable[[], Any]], Awaitable[Any]]


@dataclass
class AudioMember:
    """One call's audio in a room."""

    key: str
    stream: AudioStream
    decoder: AudioDecoder
    encoder: AudioEncoder
    #: True when decoding and encoding one frame costs next to nothing (G.711).
    cheap: bool = True
    #: Decoded incoming audio (16 kHz PCM, 20 ms) with its RTP timestamp, for the session.
    on_pcm: Callable[[bytes, int], None] | None = None
    #: True while the participant's session wants its decoded voice (some stage of its
    #: pipeline takes it): then a forwarding room decodes the packets too. None: never.
    wants_pcm: Callable[[], bool] | None = None
    #: The decoder of forwarded packets (its own state: the mix's may be busy in the pool).
    pcm_decoder: AudioDecoder | None = None
    #: Called once when the stream's RTP inactivity timeout expires.
    on_timeout: Callable[[], None] | None = None
    timed_out: bool = False


@dataclass
class AudioRoomStats:
    """Node-wide counters of the audio plane."""

    ticks: int = 0
    late_ticks: int = 0
    #: Ticks that raised (worker pool full ...): their 20 ms of audio is skipped.
    failed_ticks: int = 0
    #: Frames decoded (or concealed) and encoded by the mixing ticks.
    decoded_frames: int = 0
    mixed_frames: int = 0
    decode_errors: int = 0
    #: Forwarded packets decoded as well, for a session that wants the voice.
    forward_decoded: int = 0
    #: Forwarded packets not decoded because the pool fell behind (the oldest go first).
    forward_decode_dropped: int = 0
    #: Wall time of each mixing tick's job (decode + mix + encode, the pool hop included),
    #: seconds (``time.perf_counter``), the last 1000.
    job_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    by_mode: Counter[str] = field(default_factory=Counter)


@dataclass
class _Speech:
    frames: deque[bytes]
    start: float


def _frames(pcm: bytes) -> deque[bytes]:
    if len(pcm) % FRAME_BYTES:
        pcm += bytes(FRAME_BYTES - len(pcm) % FRAME_BYTES)
    return deque(pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES))


#: At most this many forwarded packets wait for the pool (0.5 s); older ones are dropped.
_TAP_BACKLOG: Final = 25


@dataclass
class _Tap:
    """The forwarded packets of one member waiting for their decode in the pool."""

    member: AudioMember
    pending: deque[tuple[bytes, int]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


def decode_frames(
    decoder: AudioDecoder, frames: list[tuple[bytes, int]], stats: AudioRoomStats
) -> list[tuple[bytes, int]]:
    """Decode forwarded payloads in order: (16 kHz PCM of 20 ms, RTP timestamp) each."""
    out: list[tuple[bytes, int]] = []
    for payload, timestamp in frames:
        try:
            pcm = decoder.decode(payload)[:FRAME_BYTES]
        except CodecError:
            stats.decode_errors += 1
            continue
        if len(pcm) != FRAME_BYTES:
            pcm = (pcm + SILENCE)[:FRAME_BYTES]
        stats.forward_decoded += 1
        out.append((pcm, timestamp))
    return out


@dataclass(frozen=True, slots=True)
class _Pull:
    member: AudioMember
    item: Playout


@dataclass(frozen=True, slots=True)
class _Out:
    member: AudioMember
    payload: bytes | None
    decoded: bytes | None
    timestamp: int


def mix_job(pulls: list[_Pull], speech: dict[str, bytes], stats: AudioRoomStats) -> list[_Out]:
    """Decode, mix N-1 and encode one tick (pure apart from the codec states it advances)."""
    decoded: dict[str, np.ndarray[Any, np.dtype[np.int32]]] = {}
    raw: dict[str, bytes] = {}
    stamps: dict[str, int] = {}
    for pull in pulls:
        item, member = pull.item, pull.member
        if item is None:
            continue
        try:
            if isinstance(item, JitterFrame):
                pcm = member.decoder.decode(item.payload)[:FRAME_BYTES]
                stamps[member.key] = item.timestamp
            else:
                pcm = member.decoder.conceal()
        except CodecError:
            stats.decode_errors += 1
            pcm = member.decoder.conceal()
        if len(pcm) != FRAME_BYTES:
            pcm = (pcm + SILENCE)[:FRAME_BYTES]
        stats.decoded_frames += 1
        raw[member.key] = pcm
        decoded[member.key] = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    synth = {k: np.frombuffer(v, dtype="<i2").astype(np.int32) for k, v in speech.items()}
    total = np.zeros(FRAME_BYTES // 2, dtype=np.int32)
    for array in decoded.values():
        total += array
    for array in synth.values():
        total += array
    out: list[_Out] = []
    for pull in pulls:
        member = pull.member
        payload: bytes | None = None
        if member.stream.sends:
            mix = total.copy()
            own = decoded.get(member.key)
            if own is not None:
                mix -= own
            own_speech = synth.get(member.key)
            if own_speech is not None:
                mix -= own_speech
            pcm = np.clip(mix, -32768, 32767).astype("<i2").tobytes()
            payload = member.encoder.encode(pcm)
            stats.mixed_frames += 1
        out.append(_Out(member, payload, raw.get(member.key), stamps.get(member.key, 0)))
    return out


class AudioRoom:
    """The audio of one room (see the module docstring)."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        *,
        runner: Runner | None,
        stats: AudioRoomStats,
        max_members: int = MAX_AUDIO_PARTICIPANTS,
        on_empty: Callable[[AudioRoom], None] | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._runner = runner
        self.stats = stats
        self.max_members = max_members
        self.members: dict[str, AudioMember] = {}
        self._speech: dict[str, deque[_Speech]] = {}
        self._task: asyncio.Task[None] | None = None
        self._taps: dict[str, _Tap] = {}
        self._on_empty = on_empty
        self.mode = "idle"
        self._next_tick: float | None = None

    @property
    def full(self) -> bool:
        return len(self.members) >= self.max_members

    def add(self, member: AudioMember) -> None:
        if self.full:
            raise OverflowError(f"audio room {self.name} is full ({self.max_members})")
        self.members[member.key] = member
        self._route()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, key: str) -> None:
        member = self.members.pop(key, None)
        self._speech.pop(key, None)
        if member is not None:
            member.stream.forward_to = None
            member.stream.tap = None
        self._drop_tap(key)
        self._route()
        if not self.members:
            task, self._task = self._task, None
            if task is not None and task is not asyncio.current_task():
                task.cancel()
            if self._on_empty is not None:
                self._on_empty(self)

    def play(self, key: str, pcm: bytes, start_at: float) -> None:
        """Speech for participant ``key`` (16 kHz PCM) to the others, from ``start_at``."""
        if not pcm:
            return
        grid = self._next_tick if self._next_tick is not None else self._clock.now()
        start = max(start_at, grid)
        # Align the first sample on the room's 20 ms grid: prefix the part of a tick.
        ticks_ahead = int((start - grid) / TICK)
        tick_time = grid + ticks_ahead * TICK
        lead = int(round((start - tick_time) * 16000)) * 2
        queue = self._speech.setdefault(key, deque())
        queue.append(_Speech(_frames(bytes(lead) + pcm), tick_time))
        self._route()

    def _speaking(self) -> bool:
        return any(queue for queue in self._speech.values())

    def _route(self) -> None:
        members = list(self.members.values())
        forward = (
            len(members) == 2
            and members[0].stream.format.codec_key == members[1].stream.format.codec_key
            and not self._speaking()
        )
        if forward:
            a, b = members
            a.stream.forward_to, b.stream.forward_to = b.stream, a.stream
            a.stream.tap, b.stream.tap = self._tap_of(a), self._tap_of(b)
            self.mode = "forward"
        else:
            for m in members:
                m.stream.forward_to = None
                m.stream.tap = None
            self.mode = "mix" if members else "idle"

    # -- forwarded packets decoded for the session -----------------------------------------

    def _tap_of(self, member: AudioMember) -> Callable[[RtpPacket, float], None] | None:
        wants, on_pcm, decoder = member.wants_pcm, member.on_pcm, member.pcm_decoder
        if wants is None or on_pcm is None or decoder is None:
            return None

        def tap(packet: RtpPacket, now: float) -> None:
            if not wants():
                return
            if self._runner is None or member.cheap:
                for pcm, timestamp in decode_frames(
                    decoder, [(packet.payload, packet.timestamp)], self.stats
                ):
                    on_pcm(pcm, timestamp)
                return
            state = self._taps.get(member.key)
            if state is None:
                state = self._taps[member.key] = _Tap(member)
            if len(state.pending) >= _TAP_BACKLOG:
                state.pending.popleft()
                self.stats.forward_decode_dropped += 1
            state.pending.append((packet.payload, packet.timestamp))
            if state.task is None or state.task.done():
                state.task = asyncio.get_running_loop().create_task(self._drain(state))

        return tap

    async def _drain(self, state: _Tap) -> None:
        """Decode a member's waiting packets in the pool, a batch per job, in order."""
        member, runner, stats = state.member, self._runner, self.stats
        decoder, on_pcm = member.pcm_decoder, member.on_pcm
        assert runner is not None and decoder is not None and on_pcm is not None
        while state.pending and self.members.get(member.key) is member:
            batch = list(state.pending)
            state.pending.clear()
            try:
                decoded: list[tuple[bytes, int]] = await runner(
                    functools.partial(decode_frames, decoder, batch, stats)
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                # The pool is full or failed: this batch is lost to the session, not the call.
                stats.forward_decode_dropped += len(batch)
                continue
            if self.members.get(member.key) is not member:
                return
            for pcm, timestamp in decoded:
                on_pcm(pcm, timestamp)

    def _drop_tap(self, key: str) -> None:
        state = self._taps.pop(key, None)
        if (
            state is not None
            and state.task is not None
            and state.task is not asyncio.current_task()
        ):
            state.task.cancel()

    def _take_speech(self, now: float) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for key, queue in list(self._speech.items()):
            while queue and not queue[0].frames:
                queue.popleft()
            if not queue:
                del self._speech[key]
                continue
            head = queue[0]
            if head.start <= now + 1e-6:
                out[key] = head.frames.popleft()
        if not self._speech:
            self._route()
        return out

    async def _run(self) -> None:
        clock = self._clock
        self._next_tick = clock.now() + TICK
        failures = 0
        while self.members:
            delay = self._next_tick - clock.now()
            if delay > 0:
                await sleep(clock, delay)
            now = clock.now()
            if now - self._next_tick > _RESYNC:
                self.stats.late_ticks += 1
                self._next_tick = now
            tick_time = self._next_tick
            self._next_tick += TICK
            try:
                await self.tick(tick_time)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failed tick (the worker pool full, a codec bug) costs 20 ms of audio,
                # never the room: the next tick runs as usual. The first one is logged.
                self.stats.failed_ticks += 1
                failures += 1
                if failures == 1:
                    log.warning("audio room %s: a tick failed", self.name, exc_info=True)

    async def tick(self, now: float) -> None:
        """One 20 ms tick at clock time ``now`` (the room task calls it; tests may too)."""
        self.stats.ticks += 1
        for member in list(self.members.values()):
            member.stream.rtcp_due(now)
            if not member.timed_out and member.stream.timed_out(self._clock.now()):
                member.timed_out = True
                if member.on_timeout is not None:
                    member.on_timeout()
        if self._speech:
            self._route()
        self.stats.by_mode[self.mode] += 1
        if self.mode != "mix":
            return
        speech = self._take_speech(now)
        members = list(self.members.values())
        pulls = [_Pull(m, m.stream.pop(now)) for m in members]
        started = time.perf_counter()
        if self._runner is None or all(m.cheap for m in members):
            outs = mix_job(pulls, speech, self.stats)
        else:
            stats = self.stats
            outs = await self._runner(lambda: mix_job(pulls, speech, stats))
        self.stats.job_seconds.append(time.perf_counter() - started)
        for out in outs:
            if out.member.key not in self.members:
                continue
            if out.payload is not None:
                out.member.stream.send_payload(out.payload, now)
            if out.decoded is not None and out.member.on_pcm is not None:
                out.member.on_pcm(out.decoded, out.timestamp)


class AudioRooms:
    """The audio rooms of a node, by room name."""

    def __init__(
        self,
        clock: Clock,
        *,
        runner: Runner | None = None,
        max_members: int = MAX_AUDIO_PARTICIPANTS,
    ) -> None:
        self._clock = clock
        self._runner = runner
        self.max_members = max_members
        self.rooms: dict[str, AudioRoom] = {}
        self.stats = AudioRoomStats()

    def room(self, name: str) -> AudioRoom:
        room = self.rooms.get(name)
        if room is None:
            room = AudioRoom(
                name,
                self._clock,
                runner=self._runner,
                stats=self.stats,
                max_members=self.max_members,
                on_empty=self._forget,
            )
            self.rooms[name] = room
        return room

    def _forget(self, room: AudioRoom) -> None:
        if self.rooms.get(room.name) is room and not room.members:
            del self.rooms[room.name]

    def find(self, key: str) -> AudioRoom | None:
        for room in self.rooms.values():
            if key in room.members:
                return room
        return None

    def play(self, room_name: str, key: str, pcm: bytes, start_at: float) -> bool:
        """Speech of participant ``key`` to the others in room ``room_name``; False when the
        room has no audio members."""
        room = self.rooms.get(room_name)
        if room is None:
            return False
        room.play(key, pcm, start_at)
        return True

    @property
    def member_count(self) -> int:
        return sum(len(r.members) for r in self.rooms.values())
