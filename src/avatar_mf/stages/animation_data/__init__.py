"""Animation-data generation (TR 26.813 D.3 alternative 1): UE input becomes animation units.

A source turns a participant's input (text today; voice or video later) into a timed sequence
of ARF Avatar Animation Units: a CONFIG unit, then BLENDSHAPE (and JOINT) units at the
configured rate. Planning is CPU work and runs in the stage executor; the stage
(:mod:`.speech_stage`) paces the units in real time on the session's clock.

The default source is :class:`.text_animation.TextToAnimation` (entry point ``text``):
espeak-ng phoneme timing (:mod:`.espeak`), visemes (:mod:`.phonemes`, :mod:`.visemes`),
dominance co-articulation (:mod:`.coarticulation`), blinks and head motion (:mod:`.idle`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TimedUnit:
    """An encoded animation unit and when to send it, in seconds from the plan's start."""

    at: float
    unit: bytes = field(repr=False)
    is_config: bool = False


@dataclass(frozen=True, slots=True)
class AnimationPlan:
    units: tuple[TimedUnit, ...]
    duration: float
    #: Phoneme or viseme timing the plan was built from (for logs, tests and debugging).
    timeline: tuple[tuple[float, float, str], ...] = ()
    #: Ticks per second of the units' timestamps (the CONFIG unit's timescale).
    timescale: float = 1000.0


class AnimationDataSource(Protocol):
    """Plans animation for one utterance. Raises ValueError on unusable input."""

    def plan_text(self, text: str, *, language: str, rate: float, start_tick: int) -> AnimationPlan:
        """Units for ``text`` at ``rate`` units per second; timestamps start at
        ``start_tick`` so consecutive utterances continue one stream."""
        ...
