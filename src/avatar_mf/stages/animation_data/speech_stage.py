"""The text-to-animation stage of one session: plans an utterance off the loop, then paces
its units in real time (TR 26.813 D.3 alternative 1, text source).

Planning (espeak-ng synthesis, visemes, co-articulation: milliseconds of CPU) runs in the
session's worker pool. The units are yielded at their media time on the session's clock, so
the receivers get them as the speech unfolds; consecutive utterances continue one ARF stream
(one CONFIG unit, then timestamps on one grid).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from avatar_mf.clock import sleep
from avatar_mf.pipeline.frames import AnimationUnitFrame, Frame, TextInput
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
        try:
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
