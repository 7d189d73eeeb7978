"""Animation-data generation (TR 26.813 D.3 alternative 1): UE input becomes animation units.

A source turns a participant's input (text today; voice or video later) into a timed sequence
of ARF Avatar Animation Units: a CONFIG unit, then BLENDSHAPE (and JOINT) units at the
configured rate. Planning is CPU work and runs in the stage executor; pacing the units in real
time is the session's job.

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


class AnimationDataSource(Protocol):
    """Plans animation for one utterance. Raises ValueError on unusable input."""

    def plan_text(self, text: str, *, language: str, rate: float, start_tick: int) -> AnimationPlan:
        """Units for ``text`` at ``rate`` units per second; timestamps start at
        ``start_tick`` so consecutive utterances continue one stream."""
        ...
