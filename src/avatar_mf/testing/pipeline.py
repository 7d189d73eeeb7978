"""Run one pipeline stage on frames and collect what comes out (pipecat's ``run_test``).

:func:`run_stage` opens the stage from its provider for a test session, pushes the given
frames through a real :class:`~avatar_mf.pipeline.runner.SessionPipeline` holding just that
stage, and drives time on a :class:`~avatar_mf.testing.clock.FakeClock`: whenever the stage
waits on the clock (a paced utterance), the clock jumps to the next deadline, so a stage that
paces seconds of animation finishes in milliseconds. Blocking work goes to
:class:`InlineExecutor` (run at once on the test's thread) unless another executor is given.
What reaches the sink (output frames and :class:`~avatar_mf.pipeline.frames.StageError` s) is
returned in order, each with the fake time it came out at::

    out = await run_stage(TextToAnimation(), [TextInput("p1", "hello")])
    assert isinstance(out.frames[0], AnimationUnitFrame)

Lab authors test their own stages with it (docs/operations.md, "Writing a stage").
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from avatar_mf.pipeline.frames import Frame, StageError
from avatar_mf.pipeline.runner import NamedStage, PipelineStats, QueueLimits, SessionPipeline
from avatar_mf.pipeline.stage import BlockingRunner, StageContext, StageProvider
from avatar_mf.testing.clock import FakeClock

_P = ParamSpec("_P")
_T = TypeVar("_T")


class InlineExecutor:
    """Runs blocking work at once, on the caller's thread (tests only), counting the calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        self.calls += 1
        return functools.partial(fn, *args, **kwargs)()


def stage_context(
    *,
    clock: FakeClock | None = None,
    executor: BlockingRunner | None = None,
    participant: str = "p1",
    room: str = "room",
    identity: str = "sip:ue1@127.0.0.1",
    rate: float = 30.0,
) -> StageContext:
    """A session's stage context for tests."""
    return StageContext(
        call_id=f"call-{participant}",
        participant=participant,
        identity=identity,
        room=room,
        clock=clock if clock is not None else FakeClock(),
        executor=executor if executor is not None else InlineExecutor(),
        rate=rate,
    )


@dataclass
class StageRun:
    """What came out of a stage run: frames in sink order, with the fake time of each."""

    frames: list[Frame] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    stats: PipelineStats = field(default_factory=PipelineStats)

    @property
    def errors(self) -> list[StageError]:
        return [f for f in self.frames if isinstance(f, StageError)]

    def of(self, kind: type[Frame]) -> list[Frame]:
        return [f for f in self.frames if isinstance(f, kind)]


async def run_stage(
    provider: StageProvider,
    frames_in: Sequence[Frame],
    *,
    context: StageContext | None = None,
    kind: str = "stage",
    name: str = "under-test",
    limits: QueueLimits | None = None,
    max_seconds: float = 3600.0,
    max_steps: int = 100_000,
) -> StageRun:
    """Open ``provider``'s stage for one session, push ``frames_in``, run until it is idle.

    Fake time never passes ``max_seconds``; ``max_steps`` bounds the loop (a stage that never
    finishes fails the test instead of hanging it).
    """
    context = context or stage_context()
    clock = context.clock
    if not isinstance(clock, FakeClock):
        raise TypeError("run_stage drives a FakeClock; give the context one")
    run = StageRun()

    def sink(frame: Frame) -> None:
        run.frames.append(frame)
        run.times.append(clock.now())

    stage = provider.open(context)
    pipeline = SessionPipeline(
        [NamedStage(kind, name, stage)], sink, limits=limits, stats=run.stats
    )
    await pipeline.start()
    for frame in frames_in:
        pipeline.push(frame)
    start = clock.now()
    for _ in range(max_steps):
        for _ in range(20):
            await asyncio.sleep(0)
        if not pipeline.busy:
            break
        deadline = clock.next_deadline()
        if deadline is not None:
            if deadline - start > max_seconds:
                raise AssertionError(f"the stage still waits after {max_seconds} s of fake time")
            clock.advance(max(0.0, deadline - clock.now()))
        else:
            await asyncio.sleep(0.001)  # waiting for an executor thread
    else:
        raise AssertionError(f"the stage did not finish in {max_steps} steps")
    await pipeline.aclose()
    return run
