"""The network-animation stage on a fake clock: 25 frames per second of clock time once the
avatar is known, units drive the face, frames go on unchanged, hold and relax, skipping."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from avatar_mf.arf.blendshapes import ARKIT_INDEX
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, encode_unit
from avatar_mf.pipeline.frames import AnimationUnitFrame, AvatarInUse, BaseAvatarFrame, Frame
from avatar_mf.render.gl import GlRenderer
from avatar_mf.render.inline import InlineRenderer
from avatar_mf.stages.animation.network import NetworkAnimation, NetworkAnimationStage
from avatar_mf.stages.animation.video import VideoFrameOut
from avatar_mf.testing.clock import FakeClock
from avatar_mf.testing.pipeline import stage_context

JAW = ARKIT_INDEX["jawOpen"]


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


async def run(stage: NetworkAnimationStage, frame: Frame) -> list[Frame]:
    return [out async for out in stage.process(frame)]


async def collect(stage: NetworkAnimationStage, clock: FakeClock, seconds: float,
                  step: float = 0.04) -> list[VideoFrameOut]:
    frames: list[VideoFrameOut] = []
    end = clock.now() + seconds - 1e-9
    while clock.now() < end:
        clock.advance(step)
        await settle()
        frame = stage.source.latest()
        if frame is not None and (not frames or frame.index != frames[-1].index):
            frames.append(frame)
    return frames


def jaw(tick: int, weight: float) -> AnimationUnitFrame:
    return AnimationUnitFrame("p1", encode_unit(BlendshapeUnit(tick, 0, (JAW,), (weight,))))


async def start(gl: GlRenderer, head_arf: bytes, **options: object
                ) -> tuple[NetworkAnimation, NetworkAnimationStage, FakeClock]:
    clock = FakeClock(100.0)
    provider = NetworkAnimation(width=64, height=64, renderer=InlineRenderer(gl),
                                **options)  # type: ignore[arg-type]
    stage = provider.open(stage_context(clock=clock))
    await stage.setup()
    avatar = BaseAvatarFrame("p1", "head", "application/vnd.arf+zip", head_arf)
    assert await run(stage, avatar) == [avatar]  # the avatar goes on to be stored, delivered
    await settle()  # the ticker starts: frame 0 at the clock's now
    return provider, stage, clock


async def test_renders_at_the_rate_and_units_open_the_mouth(
    gl: GlRenderer, head_arf: bytes
) -> None:
    provider, stage, clock = await start(gl, head_arf, relax_after=1.0, relax_time=0.5)
    assert provider.video_source("p1") is stage.source
    neutral = await collect(stage, clock, 1.0)
    assert [f.index for f in neutral] == list(range(1, 26))  # 25 frames/s of clock time
    assert all(f.rgba.shape == (64, 64, 4) and f.media_time is None for f in neutral)
    assert all(np.array_equal(f.rgba, neutral[0].rgba) for f in neutral)  # still at rest

    config = AnimationUnitFrame("p1", encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0)),
                                is_config=True)
    assert await run(stage, config) == [config]
    unit = jaw(0, 1.0)
    assert await run(stage, unit) == [unit]  # relayed unchanged as well
    opened = await collect(stage, clock, 0.6)
    moved = [np.abs(f.rgba.astype(int) - neutral[0].rgba).sum() for f in opened]
    assert moved[-1] > 1000  # the mouth is open (and held: no more units came)
    assert moved[-1] == moved[-2]
    # 1.0 s after the unit the face relaxes, and is back at rest 0.5 s later.
    later = await collect(stage, clock, 1.2)
    assert np.array_equal(later[-1].rgba, neutral[0].rgba)
    relaxing = [np.abs(f.rgba.astype(int) - neutral[0].rgba).sum() for f in later]
    assert any(0 < m < moved[-1] for m in relaxing)  # eased, not snapped
    await stage.teardown()
    assert provider.video_source("p1") is None
    assert await stage.source.next() is None  # closed


async def test_interpolates_between_units(gl: GlRenderer, head_arf: bytes) -> None:
    _, stage, clock = await start(gl, head_arf)
    await run(stage, jaw(0, 0.0))
    await run(stage, jaw(400, 0.8))  # arrives early: the media time runs from the first unit
    assert stage.media_time(clock.now()) == 0.0
    assert stage.animator is not None
    assert stage.animator.sample(0.2).weights[JAW] == pytest.approx(0.4)  # float32 on the wire
    frames = await collect(stage, clock, 0.4)
    assert [round(f.media_time or 0, 2) for f in frames[:3]] == [0.04, 0.08, 0.12]
    await stage.teardown()


async def test_delay_shifts_the_media_time(gl: GlRenderer, head_arf: bytes) -> None:
    _, stage, clock = await start(gl, head_arf, delay=0.033)
    await run(stage, jaw(0, 0.0))
    assert stage.media_time(clock.now()) == pytest.approx(-0.033)
    await stage.teardown()


async def test_a_late_renderer_skips_frames_instead_of_queueing(
    gl: GlRenderer, head_arf: bytes
) -> None:
    _, stage, clock = await start(gl, head_arf)
    clock.advance(0.5)  # the loop did not run for half a second: 12 frame times passed
    await settle()
    frames = await collect(stage, clock, 0.2)
    assert stage.dropped >= 11
    assert frames[0].index >= 12
    await stage.teardown()


async def test_bad_units_and_other_units_go_through(gl: GlRenderer, head_arf: bytes) -> None:
    _, stage, _ = await start(gl, head_arf)
    bad = AnimationUnitFrame("p1", b"\x02\x00\x00\x00\x09zz")
    assert await run(stage, bad) == [bad]
    assert stage.bad_units == 1
    await stage.teardown()


async def test_without_a_renderer_frames_still_go_through(head_arf: bytes) -> None:
    class Unavailable(NetworkAnimation):
        async def renderer(self, context):  # type: ignore[no-untyped-def]
            from avatar_mf.render.errors import RenderUnavailable

            raise RenderUnavailable("no EGL here")

    provider = Unavailable()
    stage = provider.open(stage_context())
    await stage.setup()
    unit = jaw(0, 1.0)
    avatar = BaseAvatarFrame("p1", "head", "application/vnd.arf+zip", head_arf)
    assert await run(stage, avatar) == [avatar]
    assert await run(stage, unit) == [unit]
    assert stage.source.latest() is None
    await stage.teardown()


async def test_a_stored_avatar_taken_into_use_is_loaded_and_rendered(
    gl: GlRenderer, head_arf: bytes
) -> None:
    clock = FakeClock(100.0)
    provider = NetworkAnimation(width=64, height=64, renderer=InlineRenderer(gl))
    asked: list[str] = []

    async def load(avatar_id: str) -> bytes:
        asked.append(avatar_id)
        return head_arf

    provider.avatar_loader = load
    stage = provider.open(stage_context(clock=clock))
    await stage.setup()
    in_use = AvatarInUse("p1", "a1")
    assert await run(stage, in_use) == [in_use]  # goes on (the scene stage takes it too)
    assert await run(stage, AvatarInUse("p1", "a1")) == [AvatarInUse("p1", "a1")]
    assert asked == ["a1"]  # the same avatar again is not loaded again
    await settle()
    frames = await collect(stage, clock, 0.2)
    assert len(frames) == 5
    assert await run(stage, AvatarInUse("p1", None)) == [AvatarInUse("p1", None)]
    assert stage.avatar is None  # withdrawn: nothing more to show
    await stage.teardown()


async def test_the_first_avatar_waits_for_the_render_pool(gl: GlRenderer, head_arf: bytes) -> None:
    started = asyncio.Event()

    class SlowStart(NetworkAnimation):
        async def renderer(self, context):  # type: ignore[no-untyped-def]
            await started.wait()  # the pool takes a while to start
            return InlineRenderer(gl)

    clock = FakeClock(100.0)
    provider = SlowStart(width=64, height=64)
    stage = provider.open(stage_context(clock=clock))
    setup = asyncio.create_task(stage.setup())
    avatar = BaseAvatarFrame("p1", "head", "application/vnd.arf+zip", head_arf)
    using = asyncio.create_task(run(stage, avatar))  # the avatar arrives during setup
    await settle()
    assert not using.done()
    started.set()
    await setup
    assert await using == [avatar]
    await settle()
    assert len(await collect(stage, clock, 0.2)) == 5  # rendered: it was not lost
    await stage.teardown()


async def test_units_before_the_avatar_drive_it_once_it_is_loaded(
    gl: GlRenderer, head_arf: bytes
) -> None:
    _, neutral_stage, neutral_clock = await start(gl, head_arf)
    neutral = (await collect(neutral_stage, neutral_clock, 0.2))[-1].rgba
    await neutral_stage.teardown()

    clock = FakeClock(100.0)
    provider = NetworkAnimation(width=64, height=64, renderer=InlineRenderer(gl))
    stage = provider.open(stage_context(clock=clock))
    await stage.setup()
    config = AnimationUnitFrame("p1", encode_unit(ConfigUnit(0, "arf-face-v1", 1000.0)),
                                is_config=True)
    await run(stage, config)  # the text stage speaks while a selected avatar still loads
    await run(stage, jaw(0, 1.0))
    clock.advance(0.3)
    avatar = BaseAvatarFrame("p1", "head", "application/vnd.arf+zip", head_arf)
    await run(stage, avatar)
    await settle()
    frames = await collect(stage, clock, 0.2)
    assert np.abs(frames[-1].rgba.astype(int) - neutral).sum() > 1000  # the mouth is open
    await stage.teardown()


async def test_watched_only_renders_while_a_receiver_reads(gl: GlRenderer, head_arf: bytes) -> None:
    _, stage, clock = await start(gl, head_arf, watched_only=True)
    assert stage.source.active  # it has an avatar: a receiver may be shown it
    for _ in range(5):
        clock.advance(0.04)
        await settle()
    assert stage.rendered == 0 and stage.unwatched >= 4  # nobody reads: no work
    reader = stage.source.reader()
    for _ in range(5):
        clock.advance(0.04)
        await settle()
    assert stage.rendered >= 4 and reader.offered == stage.rendered
    reader.close()
    rendered = stage.rendered
    for _ in range(5):
        clock.advance(0.04)
        await settle()
    assert stage.rendered == rendered
    await stage.teardown()
    assert not stage.source.active
