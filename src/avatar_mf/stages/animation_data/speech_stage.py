"""The text-to-animation stage of one session: plans an utterance off the loop, then paces
its units in real time (TR 26.813 D.3 alternative 1, text source).

Planning (espeak-ng synthesis, visemes, co-articulation: milliseconds of CPU) runs in the
session's worker pool. The units are yielded at their media time on the session's clock, so
the receivers get them as the speech unfolds; consecutive utterances continue one ARF stream
(one CONFIG unit, then timestamps on one grid). A planner that can also give the speech
audio (``speech_audio``) has it synthesised first (so the plan's timeline is the audio's) and
yielded as one :class:`~avatar_mf.pipeline.frames.AudioOut` just before the first unit, with
the media time where the audio starts: the audio plane plays it in step with the units.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from avatar_mf.clock import sleep
from avatar_mf.pipeline.frames import AnimationUnitFrame, AudioOut, Frame, TextInput
from avatar_mf.pipeline.stage import StageBase, StageContext, StageFailure
from avatar_mf.stages.animation_data import AnimationPlan

STAGE_FAILED = "stage-failed"


class TextPlanner(Protocol):
    def plan_text(
        self, text: str, *, language: str, rate: float, start_tick: int
    ) -> AnimationPlan: ...


class TextSpeechStage(StageBase):
    accepts = (TextInput,)

    def __init__(self, planner: TextPlanner, context: StageContext) -> None:
        self._planner = planner
        self._context = context
        self._next_tick = 0
        self._config_sent = False

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        assert isinstance(frame, TextInput)
        context = self._context
        start_tick = self._next_tick
        speak = getattr(self._planner, "speech_audio", None)
        audio: tuple[bytes, float] | None = None
        try:
            if speak is not None:
                audio = await context.executor.run(speak, frame.text, language=frame.language)
            plan = await context.executor.run(
                self._planner.plan_text,
                frame.text,
                language=frame.language,
                rate=context.rate,
                start_tick=start_tick,
            )
        except ValueError as exc:
            raise StageFailure(STAGE_FAILED, f"text animation failed: {exc}") from exc
        if not plan.units:
            return
        self._next_tick = start_tick + round(plan.duration * plan.timescale) + 1
        clock = context.clock
        t0 = clock.now()
        if audio is not None and audio[0]:
            yield AudioOut(frame.participant, audio[0], media_time=audio[1])
        for timed in plan.units:
            if timed.is_config:
                if self._config_sent:
                    continue
                self._config_sent = True
            delay = t0 + timed.at - clock.now()
            if delay > 1e-9:
                await sleep(clock, delay)
            yield AnimationUnitFrame(
                frame.participant,
                timed.unit,
                is_config=timed.is_config,
                media_time=timed.at,
                timescale=plan.timescale,
            )
