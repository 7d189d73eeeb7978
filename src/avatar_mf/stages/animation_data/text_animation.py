"""The default animation-data source: text to speech-timed facial animation, offline.

Pipeline (all CPU, run it in the stage executor):

1. :mod:`.espeak` -- espeak-ng synthesizes the text and reports each phoneme's start (ms) and
   the exact duration (samples / sample rate);
2. :mod:`.phonemes` -- phonemes become viseme segments (diphthongs glide between two targets);
3. :mod:`.coarticulation` -- dominance blending turns the segments into mouth blendshape
   weights at the frame rate (:mod:`.visemes` holds the targets);
4. :mod:`.idle` -- blinks and head motion are added;
5. the frames are encoded as ARF units: one CONFIG, then per frame one BLENDSHAPE unit and
   (with head motion) one JOINT unit with the same timestamp.

Unit contents (choices, relied on by receivers):

* BLENDSHAPE units carry a fixed set of entries every frame -- the 18 mouth blendshapes of
  :data:`.visemes.MOUTH_BLENDSHAPES` plus ``eyeBlinkLeft``/``Right``, 20 entries, zeros
  included, indices in ARKit order (:data:`avatar_mf.arf.blendshapes.ARKIT_BLENDSHAPES`) --
  so a receiver that keeps unsent weights and one that zeroes them see the same face. That is
  134 bytes per unit (``dense=True``: all 52 entries, 326 bytes); both fit a 1024-byte
  max-message-size channel many times over.
* JOINT units carry one entry, the head joint's local matrix (80 bytes), on every frame or
  every ``joint_every``-th; see :mod:`.idle` for the skeleton this assumes.
* Timestamps are ``start_tick + round(t * timescale)`` modulo 2**32 with ``t = i / rate``; the
  plan's ``duration`` is ``frames / rate``, so the next utterance planned with
  ``start_tick + duration * timescale`` continues the stream on the same grid.
* The plan covers a ``lead_in`` (0.1 s: lips shape before the sound starts), the speech
  (espeak-ng's final pause included) and a ``tail`` (0.25 s); the first and the last frames
  are exactly neutral (all weights 0, head at rest). The timeline is in plan time (the speech
  starts at ``lead_in``).

Determinism: the plan is a pure function of the phoneme timeline, the seed and the options
(:meth:`TextToAnimation.plan_speech`); the random generator is seeded with ``(seed,
crc32(text))`` so utterances differ from each other but the same text gives the same plan.
espeak-ng 1.51's own timing depends slightly on what the process synthesized before; its
engine caches timelines so repeated requests in a process get the same one (:mod:`.espeak`).
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, JointUnit, encode_unit
from avatar_mf.pipeline.stage import StageContext
from avatar_mf.stages.animation_data import AnimationPlan, TimedUnit
from avatar_mf.stages.animation_data.coarticulation import Coarticulator
from avatar_mf.stages.animation_data.espeak import (
    EspeakEngine,
    Speech,
    clean_text,
    espeak_engine,
)
from avatar_mf.stages.animation_data.idle import (
    HEAD_JOINT_INDEX,
    HEAD_REST_TRANSLATION,
    blink_peaks,
    blink_weights,
    head_angles,
    head_matrices,
)
from avatar_mf.stages.animation_data.phonemes import VisemeTrack, phonemes_to_visemes
from avatar_mf.stages.animation_data.speech_stage import TextSpeechStage
from avatar_mf.stages.animation_data.visemes import MOUTH_BLENDSHAPES

log = logging.getLogger(__name__)

#: Highest frame rate accepted, units per second.
MAX_RATE: Final = 240.0
#: Weights below this are written as 0.
_ZERO: Final = 1e-4
_UINT32: Final = 1 << 32
_BLINKS: Final = ("eyeBlinkLeft", "eyeBlinkRight")


@dataclass(frozen=True, slots=True)
class AnimationDetails:
    """Everything a plan was built from (for tests, tuning and debugging)."""

    plan: AnimationPlan
    speech: Speech
    track: VisemeTrack
    #: Frame times, seconds from the plan's start.
    times: NDArray[np.float64] = field(repr=False)
    #: (frames, 52) blendshape weights in ARKit order.
    weights: NDArray[np.float64] = field(repr=False)
    #: (frames, 3) head yaw, pitch, roll in radians (zeros without head motion).
    head: NDArray[np.float64] = field(repr=False)


class TextToAnimation:
    """:class:`~avatar_mf.stages.animation_data.AnimationDataSource` for text (entry point
    ``text``): espeak-ng phoneme timing, dominance co-articulation, blinks and head motion.

    Options:

    * ``profile``, ``timescale`` -- written in the CONFIG unit (ticks per second);
    * ``blendshape_set_id``, ``joint_set_id`` -- the avatar's ARKit blendshape set and skeleton;
    * ``seed`` -- seeds blinks and head motion (mixed with a CRC of the text);
    * ``voice`` -- an espeak-ng voice name; overrides the ``language`` of :meth:`plan_text`;
    * ``words_per_minute`` -- speaking rate (espeak-ng: 80-450, default 175);
    * ``articulation`` -- scales mouth movement (1 = default, up to 2);
    * ``head_motion``, ``blinks`` -- switch those off;
    * ``joint_every`` -- a JOINT unit on every n-th frame only (and on the last frame), to
      lower the message rate on the channel;
    * ``dense`` -- send all 52 weights instead of the 20 driven ones;
    * ``lead_in`` -- seconds before the speech starts (lips shape ahead of the sound, as
      people's do; audio of the utterance, if any, starts at ``lead_in``);
    * ``tail`` -- seconds after the speech to return to neutral;
    * ``head_translation`` -- the head joint's rest translation (see :mod:`.idle`);
    * ``engine`` -- an :class:`.espeak.EspeakEngine` (default: the process's, loaded on first
      use; raises :class:`~.espeak.SpeechEngineUnavailable` if libespeak-ng is missing).

    Thread-safe: one instance may plan for several sessions from several executor threads.
    """

    def __init__(
        self,
        *,
        profile: str = "arf-face-v1",
        timescale: float = 1000.0,
        blendshape_set_id: int = 0,
        joint_set_id: int = 0,
        seed: int = 0,
        voice: str | None = None,
        words_per_minute: int | None = None,
        articulation: float = 1.0,
        head_motion: bool = True,
        joint_every: int = 1,
        blinks: bool = True,
        dense: bool = False,
        lead_in: float = 0.1,
        tail: float = 0.25,
        head_translation: tuple[float, float, float] = HEAD_REST_TRANSLATION,
        engine: EspeakEngine | None = None,
    ) -> None:
        if not (math.isfinite(timescale) and timescale > 0):
            raise ValueError(f"timescale must be finite and > 0, not {timescale!r}")
        if not 0 <= blendshape_set_id <= 0xFFFF or not 0 <= joint_set_id <= 0xFFFF:
            raise ValueError("set ids are uint16")
        if not 0.0 <= tail <= 5.0:
            raise ValueError(f"tail must be 0..5 s, not {tail!r}")
        if not 1 <= joint_every <= 1000:
            raise ValueError(f"joint_every must be 1..1000 frames, not {joint_every!r}")
        if not 0.0 <= lead_in <= 1.0:
            raise ValueError(f"lead_in must be 0..1 s, not {lead_in!r}")
        self.profile = profile
        self.timescale = float(timescale)
        self.blendshape_set_id = blendshape_set_id
        self.joint_set_id = joint_set_id
        self.seed = seed
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.head_motion = head_motion
        self.joint_every = joint_every
        self.blinks = blinks
        self.lead_in = float(lead_in)
        self.tail = float(tail)
        self.head_translation = (
            float(head_translation[0]),
            float(head_translation[1]),
            float(head_translation[2]),
        )
        self._engine = engine
        self._mouth = Coarticulator(articulation=articulation)
        self._mouth_columns = np.array([ARKIT_INDEX[n] for n in MOUTH_BLENDSHAPES])
        self._blink_columns = np.array([ARKIT_INDEX[n] for n in _BLINKS])
        self._jaw_column = ARKIT_INDEX["jawOpen"]
        if dense:
            sent = list(range(len(ARKIT_BLENDSHAPES)))
        else:
            sent = sorted({*self._mouth_columns.tolist(), *self._blink_columns.tolist()})
        self._sent = np.array(sent)
        self._sent_indices = tuple(sent)
        self._config = encode_unit(ConfigUnit(0, profile, self.timescale))  # validates

    @property
    def engine(self) -> EspeakEngine:
        if self._engine is None:
            self._engine = espeak_engine()
        return self._engine

    # --- the pipeline stage -------------------------------------------------------------------

    #: What the UE sends for this stage to animate (the negotiation's animation inputs).
    animation_inputs = ("text",)

    def open(self, context: StageContext) -> TextSpeechStage:
        """This session's text-to-animation stage (the engine is shared by all sessions)."""
        return TextSpeechStage(self, context)

    # --- the AnimationDataSource protocol -------------------------------------------------

    def plan_text(self, text: str, *, language: str, rate: float, start_tick: int) -> AnimationPlan:
        """Units for ``text`` spoken in ``language`` (BCP 47, e.g. ``en-US``) at ``rate``
        frames per second, timestamps from ``start_tick``.

        Empty (or whitespace/control-only) text gives a plan with the CONFIG unit only and
        duration 0. Raises ValueError for text over 2000 characters, an unknown language or
        voice, or a rate outside ``(0, min(240, timescale)]``.
        """
        return self.analyse(text, language=language, rate=rate, start_tick=start_tick).plan

    def speech_audio(self, text: str, *, language: str) -> tuple[bytes, float]:
        """The speech for ``text`` as 16 kHz mono PCM, and where it starts on the plan's
        timeline (``lead_in``). Synthesised afresh; the engine then keeps this timeline, so a
        :meth:`plan_text` of the same text right after plans exactly this audio."""
        speech = self.engine.synthesize(
            text,
            language=language,
            voice=self.voice,
            words_per_minute=self.words_per_minute,
            audio=True,
        )
        pcm = speech.audio or b""
        if pcm and speech.sample_rate != 16000:
            samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
            count = int(len(samples) * 16000 / speech.sample_rate)
            positions = np.arange(count) * (speech.sample_rate / 16000)
            pcm = (
                np.clip(
                    np.round(np.interp(positions, np.arange(len(samples)), samples)), -32768, 32767
                )
                .astype("<i2")
                .tobytes()
            )
        return pcm, self.lead_in

    # --- details ---------------------------------------------------------------------------

    def analyse(
        self, text: str, *, language: str, rate: float = 30.0, start_tick: int = 0
    ) -> AnimationDetails:
        """:meth:`plan_text` with everything the plan was built from."""
        self._check_rate(rate)
        speech = self.engine.synthesize(
            text, language=language, voice=self.voice, words_per_minute=self.words_per_minute
        )
        return self.plan_speech(speech, key=clean_text(text), rate=rate, start_tick=start_tick)

    def plan_speech(
        self, speech: Speech, *, key: str = "", rate: float = 30.0, start_tick: int = 0
    ) -> AnimationDetails:
        """The plan for an already synthesized utterance (a pure function of ``speech``,
        ``key`` -- the cleaned text, mixed into the seed -- and the options)."""
        self._check_rate(rate)
        config = TimedUnit(0.0, self._config_at(start_tick), is_config=True)
        lead = self.lead_in
        end = lead + speech.duration
        track = phonemes_to_visemes([(lead + ms / 1000.0, p) for ms, p in speech.phonemes], end)
        if track.unknown:
            log.debug("phonemes without a viseme (shown as defaults): %s", track.unknown)
        empty = np.zeros(0)
        if not speech.phonemes:
            plan = AnimationPlan((config,), 0.0, (), self.timescale)
            return AnimationDetails(
                plan, speech, track, empty, np.zeros((0, len(ARKIT_BLENDSHAPES))), np.zeros((0, 3))
            )

        covered = end + self.tail
        frames = int(math.ceil(covered * rate - 1e-9)) + 1
        times = np.arange(frames, dtype=np.float64) / rate
        weights = np.zeros((frames, len(ARKIT_BLENDSHAPES)))
        mouth = self._mouth.weights(track.segments, times)
        # From and back to neutral: the first and last frames are exactly at rest.
        attack = np.clip(times / max(lead, 1.0 / rate), 0.0, 1.0)
        release = np.clip((times[-1] - times) / max(self.tail, 1.0 / rate), 0.0, 1.0)
        envelope = np.minimum(attack, release)
        mouth *= (envelope * envelope * (3.0 - 2.0 * envelope))[:, None]
        weights[:, self._mouth_columns] = mouth

        rng = np.random.default_rng([self.seed & 0xFFFFFFFFFFFFFFFF, zlib.crc32(key.encode())])
        blink_rng, head_rng = rng.spawn(2)
        if self.blinks:
            peaks = blink_peaks(blink_rng, times[-1], rate)
            amplitude = float(blink_rng.uniform(0.92, 1.0))
            weights[:, self._blink_columns] = blink_weights(times, peaks, amplitude=amplitude)[
                :, None
            ]
        weights[weights < _ZERO] = 0.0
        if self.head_motion:
            head = head_angles(
                head_rng, times, float(times[-1]), rate=rate, jaw=weights[:, self._jaw_column]
            )
        else:
            head = np.zeros((frames, 3))

        units = [config, *self._frame_units(times, weights, head, start_tick)]
        timeline = tuple((s.start, s.end, s.viseme) for s in track.segments)
        plan = AnimationPlan(tuple(units), frames / rate, timeline, self.timescale)
        return AnimationDetails(plan, speech, track, times, weights, head)

    # --- encoding --------------------------------------------------------------------------

    def _check_rate(self, rate: float) -> None:
        if not (math.isfinite(rate) and 0.0 < rate <= min(MAX_RATE, self.timescale)):
            raise ValueError(
                f"rate must be in (0, {min(MAX_RATE, self.timescale):g}] units/s, not {rate!r}"
            )

    def _config_at(self, start_tick: int) -> bytes:
        return encode_unit(ConfigUnit(start_tick % _UINT32, self.profile, self.timescale))

    def _frame_units(
        self,
        times: NDArray[np.float64],
        weights: NDArray[np.float64],
        head: NDArray[np.float64],
        start_tick: int,
    ) -> list[TimedUnit]:
        ticks = (start_tick + np.round(times * self.timescale).astype(np.int64)) % _UINT32
        sent = weights[:, self._sent].tolist()
        indices = self._sent_indices
        set_id = self.blendshape_set_id
        out: list[TimedUnit] = []
        append = out.append
        matrices = head_matrices(head, self.head_translation).tolist() if self.head_motion else None
        joint = (HEAD_JOINT_INDEX,)
        every = self.joint_every
        last = len(times) - 1
        for i, (at, tick) in enumerate(zip(times.tolist(), ticks.tolist(), strict=True)):
            unit = BlendshapeUnit(tick, set_id, indices, tuple(sent[i]))
            append(TimedUnit(at, encode_unit(unit)))
            if matrices is not None and (i % every == 0 or i == last):
                pose = JointUnit(tick, self.joint_set_id, joint, (tuple(matrices[i]),))
                append(TimedUnit(at, encode_unit(pose)))
        return out
