"""The camera stage in a session pipeline: units out of pictures, on the fake clock.

A scripted tracker (a fake implementing FaceTracker, not a mock) stands in for the model in
the unit tests; the last test drives the real tracker with renders of the product's head.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES, ARKIT_INDEX
from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, JointUnit, decode_unit
from avatar_mf.codecs.video import Picture
from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError, HeadPose
from avatar_mf.pipeline.frames import AnimationUnitFrame, Delivery, VideoIn
from avatar_mf.pipeline.runner import QueueLimits
from avatar_mf.stages.animation_data.idle import HEAD_JOINT_INDEX
from avatar_mf.stages.camera import CameraAnimation, ImageInput
from avatar_mf.testing.pipeline import InlineExecutor, run_stage, stage_context

#: Every picture waits (a test that wants to see each); the default keeps the newest 3.
ALL = QueueLimits(newest_wins=1000)

JAW = ARKIT_INDEX["jawOpen"]


class ScriptedTracker:
    """Answers each picture with the next scripted face (None: no face), records the pictures."""

    def __init__(self, script: Sequence[FaceResult | None]) -> None:
        self.script = list(script)
        self.pictures: list[tuple[tuple[int, ...], float | None]] = []
        self.levels: list[int] = []  # each picture's top-left red value
        self.closed = False

    def track(self, rgb: NDArray[np.uint8], *, timestamp: float | None = None) -> FaceResult:
        self.pictures.append((rgb.shape, timestamp))
        self.levels.append(int(rgb[0, 0, 0]))
        face = self.script.pop(0) if self.script else None
        if face is None:
            raise FaceTrackingError(FaceError.NO_FACE, "no face")
        return face

    def close(self) -> None:
        self.closed = True


def _face(jaw: float, yaw: float = 0.0) -> FaceResult:
    return FaceResult(
        np.zeros((478, 3), dtype=np.float32), {"jawOpen": jaw}, HeadPose(yaw, 0.0, 0.0), 64, 48
    )


def _picture(i: int, fps: float = 30.0, *, start: int = 0) -> VideoIn:
    """A 64x48 I420 picture at RTP time ``start + i / fps`` (90 kHz), grey level 20 + 10 i."""
    rtp = (start + round(i * 90000 / fps)) % (1 << 32)
    y = bytes([20 + 10 * i % 200]) * (64 * 48)
    return VideoIn("p1", 64, 48, y + bytes([128]) * (64 * 48 // 2), rtp)


def _units(frames: list[AnimationUnitFrame]) -> list[object]:
    return [decode_unit(f.unit) for f in frames]


def _provider(tracker: ScriptedTracker, **options: object) -> CameraAnimation:
    return CameraAnimation(
        tracker=lambda: tracker,  # type: ignore[arg-type]
        in_process=True,
        smoothing=0.0,
        retarget="none",
        **options,  # type: ignore[arg-type]
    )


async def test_pictures_become_blendshape_and_head_units() -> None:
    tracker = ScriptedTracker([_face(0.2), _face(0.6, yaw=math.radians(20))])
    executor = InlineExecutor()
    run = await run_stage(
        _provider(tracker), [_picture(0), _picture(1)], context=stage_context(executor=executor)
    )
    assert not run.errors
    units = _units(run.of(AnimationUnitFrame))  # type: ignore[arg-type]
    config, blend0, joint0, blend1, joint1 = units
    assert isinstance(config, ConfigUnit) and config.timescale == 1000.0
    assert isinstance(blend1, BlendshapeUnit) and isinstance(joint1, JointUnit)
    assert isinstance(blend0, BlendshapeUnit) and isinstance(joint0, JointUnit)
    # All 52 ARKit weights, in ARKit order; the picture's media time in ms.
    assert blend1.indices == tuple(range(len(ARKIT_BLENDSHAPES)))
    assert blend0.weights[JAW] == pytest.approx(0.2) and blend1.weights[JAW] == pytest.approx(0.6)
    assert (blend0.timestamp, blend1.timestamp) == (0, 33)
    # The head joint turned 20 degrees to its left: its +Z axis leans to +X by sin(20).
    assert joint1.indices == (HEAD_JOINT_INDEX,)
    matrix = np.array(joint1.matrices[0]).reshape(4, 4)
    assert matrix[0, 2] == pytest.approx(math.sin(math.radians(20)), abs=1e-6)
    assert np.array(joint0.matrices[0]).reshape(4, 4)[:3, :3] == pytest.approx(np.eye(3))
    # Tracking ran in the worker pool, with the pictures' media times (video mode).
    assert executor.calls >= 2
    assert tracker.pictures == [((48, 64, 3), 0.0), ((48, 64, 3), 1 / 30)]


async def test_a_lost_face_relaxes_to_neutral_and_the_tracker_is_closed() -> None:
    tracker = ScriptedTracker([_face(0.9)] + [None] * 12)
    run = await run_stage(_provider(tracker), [_picture(i) for i in range(13)], limits=ALL)
    jaws = [u.weights[JAW] for u in _units(run.of(AnimationUnitFrame))  # type: ignore[arg-type]
            if isinstance(u, BlendshapeUnit)]
    assert len(jaws) == 13 and jaws[0] == pytest.approx(0.9)
    assert jaws[1] == pytest.approx(0.9)  # lost at 33 ms: relaxing starts
    assert all(a > b for a, b in zip(jaws[1:10], jaws[2:11], strict=True))
    assert jaws[10] == 0.0 and jaws[12] == 0.0  # 300 ms after it was lost: neutral
    assert tracker.closed


async def test_at_most_30_units_per_second_from_a_60_fps_camera() -> None:
    tracker = ScriptedTracker([_face(0.5)] * 60)
    run = await run_stage(
        _provider(tracker), [_picture(i, fps=60.0) for i in range(60)], limits=ALL
    )
    blends = [u for u in _units(run.of(AnimationUnitFrame)) if isinstance(u, BlendshapeUnit)]  # type: ignore[arg-type]
    assert len(blends) == 30


async def test_when_pictures_come_faster_than_tracking_the_newest_win() -> None:
    assert VideoIn.delivery is Delivery.NEWEST_WINS
    assert ImageInput.delivery is Delivery.NEWEST_WINS
    tracker = ScriptedTracker([_face(0.5)] * 10)
    # Ten pictures arrive while the first is being tracked: 3 wait (QueueLimits default).
    run = await run_stage(_provider(tracker), [_picture(i) for i in range(10)])
    # The pipeline kept the last pictures (their grey levels: the newest are the brightest).
    levels = [_picture(i).data[0] for i in range(10)]
    seen = len(tracker.levels)
    assert seen < 10 and sum(run.stats.dropped.values()) == 10 - seen
    expected = [Picture(64, 48, p.data).to_frame().to_ndarray(format="rgb24")[0, 0, 0]
                for p in (_picture(i) for i in range(10 - seen, 10))]
    assert tracker.levels == expected and levels[-1] > levels[0]


async def test_images_from_a_data_channel() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 100, 50)).save(buffer, format="PNG")
    tracker = ScriptedTracker([_face(0.3), _face(0.4)])
    frames = [
        ImageInput("p1", buffer.getvalue(), media_time=0.0),
        ImageInput("p1", b"GIF89a not supported", media_time=0.1, message_id="m2"),
        ImageInput("p1", b"\x89PNG\r\n\x1a\n broken", media_time=0.2, message_id="m3"),
        ImageInput("p1", buffer.getvalue(), media_time=0.3),
    ]
    run = await run_stage(_provider(tracker), frames, limits=ALL)
    assert [(e.code, e.message_id) for e in run.errors] == [
        ("unsupported-image", "m2"),
        ("unsupported-image", "m3"),
    ]
    assert tracker.pictures == [((30, 40, 3), None)] * 2  # stills; the session went on
    blends = [u for u in _units(run.of(AnimationUnitFrame)) if isinstance(u, BlendshapeUnit)]  # type: ignore[arg-type]
    assert [b.weights[JAW] for b in blends] == pytest.approx([0.3, 0.4])


async def test_a_picture_of_the_wrong_size_is_refused() -> None:
    tracker = ScriptedTracker([_face(0.5)])
    bad = VideoIn("p1", 64, 48, b"\x00" * 10, 0)
    run = await run_stage(_provider(tracker), [bad, _picture(1)])
    assert [e.code for e in run.errors] == ["unsupported-image"]
    assert len(tracker.pictures) == 1


async def test_video_is_tracked_only_for_a_session_that_agreed_the_video_input() -> None:
    agreed: tuple[str, ...] = ()  # before the hello: nothing agreed
    tracker = ScriptedTracker([_face(0.5)] * 10)
    context = dataclasses.replace(stage_context(), agreed_inputs=lambda: agreed)
    provider = _provider(tracker)
    stage = provider.open(context)
    image = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (40, 30)).save(image, format="PNG")
    out = [f async for f in stage.process(_picture(0))]
    assert stage.unasked == 1 and tracker.pictures == []
    agreed = ("text", "video")
    out += [f async for f in stage.process(_picture(6))]
    assert stage.unasked == 1 and len(tracker.pictures) == 1
    agreed = ()  # a new hello without video: images are still taken (the message asks)
    out += [f async for f in stage.process(ImageInput("p1", image.getvalue(), 1.0))]
    out += [f async for f in stage.process(_picture(12))]
    assert stage.unasked == 2 and len(tracker.pictures) == 2
    assert len(out) == 5  # CONFIG + 2 x (BLENDSHAPE, JOINT)


class BrokenTracker(ScriptedTracker):
    def track(self, rgb: NDArray[np.uint8], *, timestamp: float | None = None) -> FaceResult:
        self.pictures.append((rgb.shape, timestamp))
        raise RuntimeError("the model crashed")


async def test_a_tracker_that_fails_relaxes_video_and_answers_images() -> None:
    tracker = BrokenTracker([])
    image = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (40, 30)).save(image, format="PNG")
    frames = [_picture(i) for i in range(3)]
    frames.append(ImageInput("p1", image.getvalue(), 0.5, message_id="m"))
    run = await run_stage(_provider(tracker), frames, limits=ALL)
    assert [(e.code, e.message_id) for e in run.errors] == [("stage-failed", "m")]
    blends = [u for u in _units(run.of(AnimationUnitFrame)) if isinstance(u, BlendshapeUnit)]  # type: ignore[arg-type]
    assert len(blends) == 3 and not any(any(b.weights) for b in blends)


async def test_rtp_timestamps_wrap_and_60_fps_pictures_are_skipped_untracked() -> None:
    tracker = ScriptedTracker([_face(0.5)] * 60)
    start = (1 << 32) - 6000  # the RTP clock wraps after the third picture
    run = await run_stage(
        _provider(tracker), [_picture(i, 60.0, start=start) for i in range(12)], limits=ALL
    )
    times = [t for _, t in tracker.pictures]
    assert times == pytest.approx([i / 30 for i in range(6)])  # every other one tracked
    blends = [u for u in _units(run.of(AnimationUnitFrame)) if isinstance(u, BlendshapeUnit)]  # type: ignore[arg-type]
    assert [b.timestamp for b in blends] == [round(i * 1000 / 30) for i in range(6)]


async def test_the_real_tracker_in_the_worker_process_follows_the_rendered_head(
    ground_truth: object,
) -> None:
    from avatar_mf.stages.camera.groundtruth import GroundTruthRenderer, Shot

    assert isinstance(ground_truth, GroundTruthRenderer)
    jaw = [0.0, 0.3, 0.7, 1.0, 0.6, 0.2, 0.0, 0.5, 0.9, 0.4]
    yaw = [0.0, 5.0, 10.0, 15.0, 10.0, 0.0, -10.0, -15.0, -5.0, 0.0]
    frames = []
    for i, (j, y) in enumerate(zip(jaw, yaw, strict=True)):
        picture = Picture.from_rgb(ground_truth.render(Shot({"jawOpen": j}, yaw=y)))
        frames.append(VideoIn("p1", picture.width, picture.height, picture.data, i * 3000))
    provider = CameraAnimation(smoothing=0.0)  # the process pool, the packaged model
    try:
        run = await run_stage(provider, frames, limits=ALL)
    finally:
        provider.close()
    assert not run.errors
    units = _units(run.of(AnimationUnitFrame))  # type: ignore[arg-type]
    blends = [u for u in units if isinstance(u, BlendshapeUnit)]
    joints = [u for u in units if isinstance(u, JointUnit)]
    assert len(blends) == len(joints) == len(jaw)
    found = [b.weights[JAW] for b in blends]
    assert np.corrcoef(jaw, found)[0, 1] >= 0.8
    yaws = [math.degrees(math.atan2(m.matrices[0][2], m.matrices[0][10])) for m in joints]
    assert np.abs(np.array(yaws) - np.array(yaw)).max() <= 5.0


async def test_images_through_the_worker_process(astronaut_jpeg: bytes) -> None:
    from PIL import Image

    grey = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(grey, format="PNG")
    frames = [
        ImageInput("p1", astronaut_jpeg, media_time=0.0, message_id="m1"),
        ImageInput("p1", grey.getvalue(), media_time=0.1, message_id="m2"),
    ]
    provider = CameraAnimation(smoothing=0.0)
    try:
        run = await run_stage(provider, frames, limits=ALL)
    finally:
        provider.close()
    assert [(e.code, e.message_id) for e in run.errors] == [("no-face", "m2")]
    blends = [u for u in _units(run.of(AnimationUnitFrame)) if isinstance(u, BlendshapeUnit)]  # type: ignore[arg-type]
    assert len(blends) == 1


async def test_a_face_pool_that_cannot_start_answers_images_and_keeps_video_at_rest() -> None:
    provider = CameraAnimation(model_sha256="0" * 64)  # refuses the packaged model
    try:
        run = await run_stage(
            provider,
            [_picture(0), ImageInput("p1", b"\xff\xd8\xff", media_time=0.5, message_id="m")],
            limits=ALL,
        )
    finally:
        provider.close()
    assert [(e.code, e.message_id, e.retryable) for e in run.errors] == [
        ("face-model-unavailable", "m", True)
    ]
    blends = [u for u in _units(run.of(AnimationUnitFrame)) if isinstance(u, BlendshapeUnit)]  # type: ignore[arg-type]
    assert len(blends) == 1 and not any(blends[0].weights)
