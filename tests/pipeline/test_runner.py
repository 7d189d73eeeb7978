"""SessionPipeline: routing by frame class, per-stage queues, drop policy, errors as frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from avatar_mf.clock import sleep
from avatar_mf.pipeline.frames import (
    AnimationUnitFrame,
    Frame,
    SceneQuery,
    StageError,
    TextInput,
)
from avatar_mf.pipeline.runner import NamedStage, PipelineStats, QueueLimits, SessionPipeline
from avatar_mf.pipeline.stage import StageBase, StageFailure
from avatar_mf.testing.clock import FakeClock


class Upper(StageBase):
    """Text -> text upper-cased (so a later text stage sees the output, not the input)."""

    accepts = (TextInput,)

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.torn_down = False

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        assert isinstance(frame, TextInput)
        self.seen.append(frame.text)
        if frame.text == "boom":
            raise RuntimeError("exploded")
        if frame.text == "refuse":
            raise StageFailure("bad-thing", "refused on purpose")
        yield TextInput(frame.participant, frame.text.upper(), message_id=frame.message_id)

    async def teardown(self) -> None:
        self.torn_down = True


class Speak(StageBase):
    """Text -> one unit per character, paced 10 ms apart on the clock."""

    accepts = (TextInput,)

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.seen: list[str] = []

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        assert isinstance(frame, TextInput)
        self.seen.append(frame.text)
        for ch in frame.text:
            await sleep(self.clock, 0.01)
            yield AnimationUnitFrame(frame.participant, ch.encode())


class SlowUnits(StageBase):
    """Takes animation units and holds each until released (a stage that falls behind)."""

    accepts = (AnimationUnitFrame,)

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        await self.gate.wait()
        yield frame


async def turn(n: int = 30) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def make(
    *stages: StageBase, limits: QueueLimits | None = None, final_timeout: float = 2.0
) -> tuple[SessionPipeline, list[Frame]]:
    out: list[Frame] = []
    named = [NamedStage(f"k{i}", type(s).__name__, s) for i, s in enumerate(stages)]
    pipeline = SessionPipeline(
        named, out.append, limits=limits, stats=PipelineStats(), final_timeout=final_timeout
    )
    return pipeline, out


async def test_frames_flow_through_accepting_stages_in_order_and_others_go_past() -> None:
    clock = FakeClock()
    upper, speak = Upper(), Speak(clock)
    pipeline, out = make(upper, speak)
    await pipeline.start()
    unit = AnimationUnitFrame("p1", b"\x02\x00")
    pipeline.push(unit)
    assert out == [unit]  # no stage takes it: at once, no task hop
    pipeline.push(TextInput("p1", "ab"))
    await turn()
    assert upper.seen == ["ab"] and speak.seen == ["AB"]  # the output went on, not the input
    clock.advance(0.01)
    await turn()
    assert [f.unit for f in out[1:] if isinstance(f, AnimationUnitFrame)] == [b"A"]
    clock.advance(0.01)
    await turn()
    assert [f.unit for f in out[1:] if isinstance(f, AnimationUnitFrame)] == [b"A", b"B"]
    assert pipeline.stats.processed == {"k0": 1, "k1": 1}
    await pipeline.aclose()
    assert upper.torn_down


async def test_a_failing_stage_becomes_an_error_frame_and_the_pipeline_goes_on() -> None:
    pipeline, out = make(Upper())
    await pipeline.start()
    pipeline.push(TextInput("p1", "boom", message_id="m1"))
    pipeline.push(TextInput("p1", "refuse", message_id="m2"))
    pipeline.push(TextInput("p1", "fine", message_id="m3"))
    await turn()
    errors = [f for f in out if isinstance(f, StageError)]
    assert [(e.code, e.message_id, e.kind, e.cause) for e in errors] == [
        ("stage-failed", "m1", "k0", "TextInput"),
        ("bad-thing", "m2", "k0", "TextInput"),
    ]
    assert "exploded" in errors[0].message
    assert [f.text for f in out if isinstance(f, TextInput)] == ["FINE"]
    assert pipeline.stats.errors == {("k0", "failed"): 1, ("k0", "rejected"): 1}
    await pipeline.aclose()


async def test_newest_wins_for_units_but_config_units_are_never_dropped() -> None:
    slow = SlowUnits()
    pipeline, out = make(slow, limits=QueueLimits(newest_wins=2, reliable=4))
    await pipeline.start()
    pipeline.push(AnimationUnitFrame("p1", b"first"))  # taken at once: in progress
    await turn()
    config = AnimationUnitFrame("p1", b"config", is_config=True)
    pipeline.push(config)
    for i in range(5):
        pipeline.push(AnimationUnitFrame("p1", bytes([i])))
    slow.gate.set()
    await turn(60)
    sent = [f.unit for f in out if isinstance(f, AnimationUnitFrame)]
    assert sent == [b"first", b"config", bytes([4])]  # stale ones dropped, newest kept
    assert pipeline.stats.dropped["AnimationUnitFrame"] == 4
    await pipeline.aclose()


async def test_reliable_frames_are_refused_busy_past_the_limit_never_dropped() -> None:
    clock = FakeClock()
    speak = Speak(clock)
    pipeline, out = make(speak, limits=QueueLimits(newest_wins=2, reliable=2))
    await pipeline.start()
    for i in range(4):
        pipeline.push(TextInput("p1", "x", message_id=f"m{i}"))
    await turn()
    busy = [f for f in out if isinstance(f, StageError)]
    # Pushed before the stage's task ran: two wait, the other two are refused (never lost
    # silently: the UE is told to retry).
    assert [(e.code, e.message_id, e.retryable) for e in busy] == [
        ("busy", "m2", True),
        ("busy", "m3", True),
    ]
    for _ in range(5):
        clock.advance(0.01)
        await turn()
    assert speak.seen == ["x", "x"]  # the two taken were both processed
    pipeline.push(TextInput("p1", "y", message_id="m4"))  # room again once drained
    await turn()
    assert speak.seen == ["x", "x", "y"]
    await pipeline.aclose()


async def test_a_slow_stage_does_not_hold_up_another_kind() -> None:
    clock = FakeClock()
    slow = SlowUnits()
    speak = Speak(clock)
    pipeline, out = make(slow, speak)
    await pipeline.start()
    pipeline.push(AnimationUnitFrame("p1", b"held"))
    pipeline.push(TextInput("p1", "a"))
    await turn()
    clock.advance(0.01)
    await turn()
    assert [f.unit for f in out if isinstance(f, AnimationUnitFrame)] == [b"a"]
    slow.gate.set()
    await turn()
    assert [f.unit for f in out if isinstance(f, AnimationUnitFrame)] == [b"a", b"held"]
    await pipeline.aclose()


class BrokenSetup(StageBase):
    accepts = (SceneQuery,)

    async def setup(self) -> None:
        raise OSError("model file missing")


async def test_a_stage_that_failed_setup_answers_its_frames_with_errors() -> None:
    pipeline, out = make(BrokenSetup())
    await pipeline.start()
    pipeline.push(SceneQuery("p1", message_id="q1"))
    assert [(e.code, e.message_id) for e in out if isinstance(e, StageError)] == [
        ("stage-failed", "q1")
    ]
    await pipeline.aclose()


async def test_close_drops_waiting_frames_runs_the_final_one_and_tears_down() -> None:
    upper, slow = Upper(), SlowUnits()
    pipeline, out = make(upper, slow)
    await pipeline.start()
    pipeline.push(AnimationUnitFrame("p1", b"held"))  # never released
    await turn()
    await pipeline.aclose(final=TextInput("p1", "z"))
    assert upper.torn_down
    assert [type(f).__name__ for f in out] == ["TextInput"] and out[0].text == "Z"  # type: ignore[attr-defined]
    pipeline.push(TextInput("p1", "after"))  # ignored once closed
    await turn()
    assert upper.seen == ["z"]


async def test_close_gives_up_on_a_final_frame_that_never_finishes() -> None:
    clock = FakeClock()
    pipeline, out = make(Speak(clock), final_timeout=0.05)
    await pipeline.start()
    await pipeline.aclose(final=TextInput("p1", "abc"))  # Speak waits on a clock never moved
    assert out == []


class Doubler(StageBase):
    """Handles units inline (twice each), texts through the queued path (slowly)."""

    accepts = (AnimationUnitFrame, TextInput)

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()

    def process_inline(self, frame: Frame) -> list[Frame] | None:
        if isinstance(frame, AnimationUnitFrame):
            if frame.unit == b"bad":
                raise StageFailure("bad-unit", "refused inline", rejected=True)
            return [frame, AnimationUnitFrame(frame.participant, frame.unit * 2)]
        return None

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        await self.gate.wait()
        if isinstance(frame, AnimationUnitFrame):
            yield AnimationUnitFrame(frame.participant, frame.unit + b"q")  # the queued path
        else:
            yield frame


async def test_an_inline_stage_handles_frames_at_once_and_keeps_their_order() -> None:
    doubler = Doubler()
    pipeline, out = make(doubler)
    await pipeline.start()
    pipeline.push(AnimationUnitFrame("p1", b"a"))
    # No task hop: the frames are out before the caller's turn ends.
    assert [f.unit for f in out if isinstance(f, AnimationUnitFrame)] == [b"a", b"aa"]
    pipeline.push(AnimationUnitFrame("p1", b"bad"))
    assert [(f.code, f.cause) for f in out if isinstance(f, StageError)] == [
        ("bad-unit", "AnimationUnitFrame")
    ]
    # With a frame waiting (a text held in the queued path), a unit queues behind it.
    doubler.gate.clear()
    pipeline.push(TextInput("p1", "t"))
    await turn()
    pipeline.push(AnimationUnitFrame("p1", b"b"))
    assert not any(isinstance(f, AnimationUnitFrame) and f.unit.startswith(b"b") for f in out)
    doubler.gate.set()
    await turn()
    tail = [f.unit if isinstance(f, AnimationUnitFrame) else "text" for f in out[3:]]
    assert tail == ["text", b"bq"]
    assert pipeline.stats.processed == {"k0": 3} and pipeline.stats.errors == {
        ("k0", "rejected"): 1
    }
    await pipeline.aclose()
