"""The ``voice`` animation-data stage: the caller's RTP audio -> BLENDSHAPE and head JOINT units.

TR 26.813 D.3.1 network-centric animation from the UE's voice (issue 13). Takes
:class:`~avatar_mf.pipeline.frames.AudioIn` (16 kHz mono s16, 20 ms, with the RTP timestamp)
and emits, for every frame at the session's rate (30/s by default), one BLENDSHAPE unit (the
mouth, brows and blinks of :mod:`.face`, its accents from the level and the F0 of
:mod:`.pitch`) and one head JOINT unit (ISO/IEC 23090-39 ARF
units), after a CONFIG unit. Everything is computed on arrival (about 0.1 ms per packet), so
the stage handles packets inline (:class:`~avatar_mf.pipeline.stage.InlineStage`).

Timing. Frame ``n`` shows sender time ``t = n / rate`` from the first packet; its unit's tick
is that time on the audio's own RTP timeline (``first_rtp_timestamp / clock_rate + t``, in
the CONFIG unit's timescale, mod 2^32), so a receiver can line the units up with the audio
it plays. The decision for frame ``n`` needs the audio up to ``t`` plus the classifier's
look-ahead (30 ms), the front end's (its delta-deltas, 30 ms) and half an analysis window: it
leaves the stage with the packet that completes that audio, 60-80 ms after the packet that
carried ``t`` arrived (bounded look-ahead; the tests measure it on the fake clock).

Features (the "tandem" front end, docs/voice-animation.md): each 10 ms hop's MFCC rows as
pocketsphinx computes them (:mod:`.sphinx_mfcc`) are scored against the 42 phone codebooks
of pocketsphinx's US English acoustic model (:mod:`.acoustic_model`, onnxruntime); the
viseme classifier (:mod:`.model`) decides on a context of those scores.

Bad audio. A jump of the RTP timestamp (lost packets) is filled with silence up to
:data:`MAX_FILL` seconds, so the face relaxes across the gap; a longer gap restarts the
analysis at the new position. A late or repeated packet is dropped; a change of RTP clock
rate (another codec) carries the timeline (and the ticks) on from the current position.
Digital silence and quiet audio gate the classifier (the mouth relaxes); clipped packets halve
the mouth's movement (:mod:`.face`). Nothing in the audio can raise out of the stage.

No audio at all. When no packet has arrived for :data:`NO_AUDIO_AFTER` seconds of the session
clock (the caller muted, the network dropped the stream), a timer takes over
(:class:`~avatar_mf.pipeline.stage.TimedStage`): one frame per 1/rate seconds, decided as
silence, so the face relaxes to neutral and keeps blinking, never frozen. Those frames
continue the frame count (and the ticks) from where the audio stopped; when packets come
back the audio takes over again from the next frame not yet shown (no tick twice). The timer
makes no frames for a session whose last hello no longer agrees the ``voice`` input
(``StageContext.agreed_inputs``; the session then stops sending its voice here).
"""

from __future__ import annotations

import asyncio
import math
import random
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, JointUnit, encode_unit
from avatar_mf.clock import sleep
from avatar_mf.pipeline.frames import AnimationUnitFrame, AudioIn, Frame
from avatar_mf.pipeline.stage import StageBase, StageContext
from avatar_mf.stages.animation_data.idle import (
    HEAD_JOINT_INDEX,
    HEAD_REST_TRANSLATION,
    head_matrices,
)
from avatar_mf.stages.voice.acoustic_model import AcousticScorer, shipped_scorer
from avatar_mf.stages.voice.corpus import hop_of
from avatar_mf.stages.voice.face import FaceFrame, FaceModel
from avatar_mf.stages.voice.features import HOP, LEVEL_FLOOR, SAMPLE_RATE, FrontEnd
from avatar_mf.stages.voice.model import CONTEXT_BEFORE, VisemeClassifier
from avatar_mf.stages.voice.onnx_model import shipped_model
from avatar_mf.stages.voice.pitch import PitchTracker
from avatar_mf.stages.voice.sphinx_mfcc import SphinxFeatures

#: Gaps up to this long are filled with silence; longer ones restart the analysis.
MAX_FILL: Final = 0.5
#: Below this level (dB FS) a hop is silence whatever the classifier says.
GATE_LEVEL: Final = -55.0
#: A packet is clipped when this share of its samples sits at full scale.
CLIP_SHARE: Final = 0.01
_CLIP_VALUE: Final = 32700
#: Seconds without any packet after which the timer relaxes the face (frames keep coming).
NO_AUDIO_AFTER: Final = 0.1
_UINT32: Final = 1 << 32
_RING: Final = 256


class VoiceToAnimation:
    """Provider of the ``voice`` stage (entry point ``avatar_mf.stages.animation_data:voice``).

    Options: ``profile``, ``timescale`` (CONFIG unit), ``blendshape_set_id``,
    ``joint_set_id``, ``seed`` (blinks), ``blinks``, ``head_motion``, ``head_translation``;
    ``model`` a :class:`~.model.VisemeClassifier` (default: the ONNX model shipped in the
    package, run by onnxruntime); ``acoustic`` the :class:`~.acoustic_model.AcousticScorer`
    whose phone scores it decides on (default: the shipped one);
    ``record_decisions`` keeps every frame's viseme probabilities on the stage (scoring).
    """

    #: What the UE sends for this stage to animate (the negotiation's animation inputs).
    animation_inputs = ("voice",)

    def __init__(
        self,
        *,
        profile: str = "arf-face-v1",
        timescale: float = 1000.0,
        blendshape_set_id: int = 0,
        joint_set_id: int = 0,
        seed: int = 0,
        blinks: bool = True,
        head_motion: bool = True,
        head_translation: tuple[float, float, float] = HEAD_REST_TRANSLATION,
        model: VisemeClassifier | None = None,
        acoustic: AcousticScorer | None = None,
        record_decisions: bool = False,
    ) -> None:
        if not (math.isfinite(timescale) and timescale > 0):
            raise ValueError(f"timescale must be finite and > 0, not {timescale!r}")
        if not 0 <= blendshape_set_id <= 0xFFFF or not 0 <= joint_set_id <= 0xFFFF:
            raise ValueError("set ids are uint16")
        encode_unit(ConfigUnit(0, profile, float(timescale)))  # validates the profile
        self.profile = profile
        self.timescale = float(timescale)
        self.blendshape_set_id = blendshape_set_id
        self.joint_set_id = joint_set_id
        self.seed = seed
        self.blinks = blinks
        self.head_motion = head_motion
        self.head_translation = (
            float(head_translation[0]),
            float(head_translation[1]),
            float(head_translation[2]),
        )
        self.model: VisemeClassifier = model if model is not None else shipped_model()
        self.acoustic = acoustic if acoustic is not None else shipped_scorer()
        per_hop, rest = divmod(self.model.input_size, CONTEXT_BEFORE + 1 + self.model.lookahead)
        if rest or per_hop != self.acoustic.size:
            raise ValueError(
                f"the model takes {self.model.input_size} inputs, not a context of "
                f"{self.acoustic.size} scores per hop"
            )
        self.record_decisions = record_decisions

    def open(self, context: StageContext) -> VoiceStage:
        return VoiceStage(self, context)


class VoiceStage(StageBase):
    """One session's voice stage (state: the front end, the hop ring, the face)."""

    accepts = (AudioIn,)

    def __init__(self, provider: VoiceToAnimation, context: StageContext) -> None:
        self._p = provider
        self._context = context
        self._rate = context.rate
        self._model = provider.model
        self._lookahead = provider.model.lookahead
        self._front = FrontEnd()
        self._features = SphinxFeatures()
        self._acoustic = provider.acoustic
        self._pitch = PitchTracker()
        seed = zlib.crc32(f"{provider.seed}:{context.participant}".encode())
        self._face = FaceModel(random.Random(seed), rate=context.rate, blinks=provider.blinks)
        width = self._model.input_size // (CONTEXT_BEFORE + 1 + self._lookahead)
        self._ring = np.zeros((_RING, width))
        self._levels = np.full(_RING, LEVEL_FLOOR)
        self._relative = np.full(_RING, -60.0)
        self._f0 = np.zeros(_RING)
        self._clipped = np.zeros(_RING, dtype=bool)
        self._hops = 0  # hops completed since the stream's start (gap fill included)
        self._scored = 0  # hops whose phone scores are in the ring (DELTA_DELAY behind)
        self._samples = 0
        self._frame = 0  # next frame to emit
        self._first_hop = 0  # first hop of the current analysis run (after a restart)
        self._origin: int | None = None  # first RTP timestamp
        self._tick_origin = 0.0  # its time on the RTP clock, seconds
        self._clock_rate = 16000
        self._expected = 0  # unwrapped RTP timestamp of the next packet
        self._config_sent = False
        self._emit_out: Callable[[Frame], None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._last_arrival = 0.0
        self._participant = context.participant
        #: Counters for tests and metrics.
        self.dropped = 0
        self.filled_samples = 0
        self.restarts = 0
        #: Frames the no-audio timer made.
        self.timer_frames = 0
        #: (frame time, viseme probabilities or None for silence) per frame, when recorded.
        self.decisions: list[tuple[float, NDArray[np.float64] | None]] | None = (
            [] if provider.record_decisions else None
        )

    # -- the stage protocol ---------------------------------------------------------------

    def bind_output(self, emit: Callable[[Frame], None]) -> None:
        self._emit_out = emit

    async def teardown(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            try:
                await timer
            except asyncio.CancelledError:
                pass

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        for out in self.process_inline(frame):
            yield out

    def process_inline(self, frame: Frame) -> Sequence[Frame]:
        assert isinstance(frame, AudioIn)
        self._participant = frame.participant
        self._last_arrival = self._context.clock.now()
        if self._timer is None and self._emit_out is not None:
            self._timer = asyncio.get_running_loop().create_task(self._no_audio_timer())
        pcm = np.frombuffer(frame.pcm[: len(frame.pcm) & ~1], dtype="<i2")
        if pcm.size == 0 or frame.clock_rate <= 0:
            return ()
        if not self._place(frame.rtp_timestamp, frame.clock_rate, pcm.size):
            return ()
        clipped = float(np.mean(np.abs(pcm.astype(np.int32)) >= _CLIP_VALUE)) >= CLIP_SHARE
        self._push(pcm, clipped=clipped)
        return self._emit(frame.participant)

    # -- timeline ---------------------------------------------------------------------------

    def _place(self, timestamp: int, clock_rate: int, samples: int) -> bool:
        """Put a packet on the timeline: False to drop it (late or repeated)."""
        per_sample = clock_rate / SAMPLE_RATE
        if self._origin is None:
            self._origin = timestamp
            self._clock_rate = clock_rate
            self._expected = timestamp
            self._tick_origin = timestamp / clock_rate
        elif clock_rate != self._clock_rate:
            # Another codec (another RTP clock): carry on from here on the new clock; the
            # ticks keep counting from the first packet (never backwards).
            self._clock_rate = clock_rate
            self._expected = timestamp
        delta = (timestamp - self._expected) % _UINT32
        if delta >= _UINT32 // 2:  # behind what was already placed
            self.dropped += 1
            return False
        gap = round(delta / per_sample)
        if gap > 0:
            if gap <= MAX_FILL * SAMPLE_RATE:
                self.filled_samples += gap
                self._push(np.zeros(gap, dtype=np.int16), clipped=False)
            else:
                self._restart(gap)
        self._expected += delta + round(samples * per_sample)
        return True

    def _restart(self, gap: int) -> None:
        """A long gap: skip it, and start the analysis afresh after it."""
        self.restarts += 1
        self._front.reset()
        self._features.reset()
        self._pitch.reset()
        self._samples += gap
        self._hops = self._samples // HOP
        self._scored = self._hops
        self._first_hop = self._hops
        self._frame = max(self._frame, self._first_frame_after(self._hops))

    def _first_frame_after(self, hop: int) -> int:
        n = math.ceil(hop * HOP / SAMPLE_RATE * self._rate)
        while int(hop_of(np.array([n / self._rate]))[0]) < hop:
            n += 1
        return n

    def _push(self, pcm: NDArray[np.int16], *, clipped: bool) -> None:
        rows = self._front.push(pcm)
        self._samples += pcm.size
        scores = self._acoustic.scores(self._features.push(pcm))
        for row in scores:
            self._ring[self._scored % _RING] = row
            self._scored += 1
        f0 = self._pitch.push(pcm).f0  # the same hops as the front end's
        for i in range(rows.level.shape[0]):
            slot = self._hops % _RING
            self._f0[slot] = f0[i]
            self._levels[slot] = rows.level[i]
            self._relative[slot] = rows.relative_level[i]
            self._clipped[slot] = clipped
            self._hops += 1

    # -- no audio at all ------------------------------------------------------------------

    async def _no_audio_timer(self) -> None:
        """While packets stop coming: one silent frame per 1/rate seconds (see the module
        docstring); back to waiting as soon as a packet arrives."""
        clock, period = self._context.clock, 1.0 / self._rate
        due: float | None = None  # when the next silent frame is due (a fixed grid)
        while True:
            now = clock.now()
            quiet = now - self._last_arrival
            if quiet < NO_AUDIO_AFTER:
                due = None
                await sleep(clock, NO_AUDIO_AFTER - quiet)
                continue
            if due is None or now - due > 3 * period:
                due = now
            if now + 1e-9 < due:
                await sleep(clock, due - now)
                continue
            emit = self._emit_out
            agreed = self._context.agreed_inputs  # a new hello took voice away: stay silent
            if (
                emit is not None
                and self._origin is not None
                and (agreed is None or "voice" in agreed())
            ):
                for out in self._silent_frame():
                    emit(out)
            due += period

    def _silent_frame(self) -> list[Frame]:
        t = self._frame / self._rate
        self._frame += 1
        self.timer_frames += 1
        if self.decisions is not None:
            self.decisions.append((t, None))
        face = self._face.step(None, -60.0)
        return self._units(self._participant, t, face)

    # -- output ---------------------------------------------------------------------------

    def _emit(self, participant: str) -> list[Frame]:
        # The frames whose audio (look-ahead included) is complete: decided in one batch.
        ready: list[tuple[float, int]] = []
        while True:
            t = self._frame / self._rate
            hop = int(hop_of(np.array([t]))[0])
            if hop + self._lookahead >= self._scored:
                break
            if hop >= self._first_hop:
                ready.append((t, hop))
            self._frame += 1
        if not ready:
            return []
        speech = [k for k, (_, hop) in enumerate(ready) if self._levels[hop % _RING] >= GATE_LEVEL]
        decided: dict[int, NDArray[np.float64]] = {}
        if speech:
            rows = np.stack([self._stacked(ready[k][1]) for k in speech])
            for k, p in zip(speech, self._model.probabilities(rows), strict=True):
                decided[k] = p
        out: list[Frame] = []
        for k, (t, hop) in enumerate(ready):
            slot = hop % _RING
            probabilities = decided.get(k)
            if self.decisions is not None:
                self.decisions.append((t, probabilities))
            face = self._face.step(
                probabilities,
                float(self._relative[slot]),
                clipped=bool(self._clipped[slot]),
                f0=float(self._f0[slot]),
            )
            out.extend(self._units(participant, t, face))
        return out

    def _units(self, participant: str, t: float, face: FaceFrame) -> list[Frame]:
        """The units of the frame at media time ``t`` (the CONFIG unit first, once)."""
        provider = self._p
        out: list[Frame] = []
        tick = round((self._tick_origin + t) * provider.timescale) % _UINT32
        if not self._config_sent:
            self._config_sent = True
            config = ConfigUnit(tick, provider.profile, provider.timescale)
            out.append(self._unit(participant, encode_unit(config), t, is_config=True))
        unit = BlendshapeUnit(tick, provider.blendshape_set_id, self._face.indices, face.weights)
        out.append(self._unit(participant, encode_unit(unit), t))
        if provider.head_motion:
            angles = np.array([face.head])
            matrix = head_matrices(angles, provider.head_translation)[0]
            pose = JointUnit(
                tick, provider.joint_set_id, (HEAD_JOINT_INDEX,), (tuple(matrix.tolist()),)
            )
            out.append(self._unit(participant, encode_unit(pose), t))
        return out

    def _stacked(self, hop: int) -> NDArray[np.float64]:
        """The stacked model input of ``hop``: its context, clipped at the run's first hop."""
        index = np.clip(
            np.arange(hop - CONTEXT_BEFORE, hop + self._lookahead + 1), self._first_hop, None
        )
        row: NDArray[np.float64] = self._ring[index % _RING].reshape(-1)
        return row

    def _unit(
        self, participant: str, data: bytes, at: float, *, is_config: bool = False
    ) -> AnimationUnitFrame:
        return AnimationUnitFrame(
            participant,
            data,
            is_config=is_config,
            media_time=at,
            timescale=self._p.timescale,
        )
