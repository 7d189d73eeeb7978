"""The camera animation-data stage: the caller's pictures in, ARF units out (TR 26.813 D.3.3).

Per session, for every picture (:class:`~.frames.VideoPicture` from the decoded video stream,
or :class:`~.frames.ImageInput` JPEG/PNG from a data channel):

1. in the worker pool (``StageContext.executor``, never on the event loop): decode an image,
   then track the face with the session's own tracker (a
   :class:`~avatar_mf.face.tracker.FaceTracker`, created on the first picture; pictures with
   a media time go through its video mode);
2. :class:`~.motion.FaceMotion`: at most ``max_rate`` (30) pictures per second are used,
   values smoothed, a lost face relaxed to neutral over ``relax_time`` (0.3 s);
3. units: one CONFIG unit first, then per picture used a BLENDSHAPE unit with all 52 ARKit
   weights (MediaPipe gives 51: ``tongueOut`` stays 0; the eyes move by ``eyeLook*``) and a
   JOINT unit with the head joint's local matrix (``stages/animation_data/idle.head_matrices``,
   the product skeleton's head joint), both stamped with the picture's media time.

Newest wins twice: the pipeline drops the oldest waiting picture when the stage is behind
(the frames are ``NEWEST_WINS``), so the stage always works on the latest one.

A picture without a usable face is not an error for video (the face relaxes); an image from a
data channel that cannot be decoded is answered ``unsupported-image`` (the session goes on).
"""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, JointUnit, encode_unit
from avatar_mf.face.model import MODEL_SHA256
from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError
from avatar_mf.face.tracker import FaceTracker
from avatar_mf.pipeline.frames import AnimationUnitFrame, Frame
from avatar_mf.pipeline.stage import StageBase, StageContext, StageFailure
from avatar_mf.stages.animation_data.idle import (
    HEAD_JOINT_INDEX,
    HEAD_REST_TRANSLATION,
    head_matrices,
)
from avatar_mf.stages.camera.frames import ImageInput, VideoPicture
from avatar_mf.stages.camera.motion import FaceMotion, MotionSample

_UINT32 = 1 << 32
#: Largest image accepted from a data channel, bytes.
MAX_IMAGE_BYTES = 4 * 1024 * 1024
TrackerFactory = Callable[[], FaceTracker]


class CameraAnimation:
    """Stage provider (entry point ``camera``, ``[pipeline.animation_data] name = "camera"``).

    Options: ``max_rate`` (30 units/s), ``smoothing`` (0.035 s), ``relax_time`` (0.3 s),
    ``profile`` and ``timescale`` (the CONFIG unit), ``blendshape_set_id``, ``joint_set_id``,
    ``head_translation`` (the head joint's rest translation), ``model_path`` and
    ``model_sha256`` (another copy of the face model), ``tracker`` (a factory giving a
    :class:`~avatar_mf.face.tracker.FaceTracker` per session: an operator's ONNX model, or a
    test's fake).
    """

    #: What the UE sends for this stage to animate (the negotiation's animation inputs).
    animation_inputs = ("video", "image")

    def __init__(
        self,
        *,
        max_rate: float = 30.0,
        smoothing: float = 0.035,
        relax_time: float = 0.3,
        profile: str = "arf-face-v1",
        timescale: float = 1000.0,
        blendshape_set_id: int = 0,
        joint_set_id: int = 0,
        head_translation: tuple[float, float, float] = HEAD_REST_TRANSLATION,
        model_path: str | None = None,
        model_sha256: str | None = MODEL_SHA256,
        tracker: TrackerFactory | None = None,
    ) -> None:
        if not (math.isfinite(timescale) and timescale > 0):
            raise ValueError(f"timescale must be finite and > 0, not {timescale!r}")
        if not 0 <= blendshape_set_id <= 0xFFFF or not 0 <= joint_set_id <= 0xFFFF:
            raise ValueError("set ids are uint16")
        FaceMotion(max_rate=max_rate, smoothing=smoothing, relax_time=relax_time)  # validates
        self.max_rate = float(max_rate)
        self.smoothing = float(smoothing)
        self.relax_time = float(relax_time)
        self.timescale = float(timescale)
        self.profile = profile
        self.blendshape_set_id = blendshape_set_id
        self.joint_set_id = joint_set_id
        self.head_translation = (
            float(head_translation[0]),
            float(head_translation[1]),
            float(head_translation[2]),
        )
        self._tracker_factory = tracker or _mediapipe_factory(model_path, model_sha256)
        encode_unit(ConfigUnit(0, profile, self.timescale))  # validates the profile

    def open(self, context: StageContext) -> CameraStage:
        return CameraStage(self, context)

    def new_tracker(self) -> FaceTracker:
        return self._tracker_factory()

    def motion(self) -> FaceMotion:
        return FaceMotion(
            max_rate=self.max_rate, smoothing=self.smoothing, relax_time=self.relax_time
        )


def _mediapipe_factory(model_path: str | None, model_sha256: str | None) -> TrackerFactory:
    model: list[bytes] = []

    def create() -> FaceTracker:
        from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker
        from avatar_mf.face.model import load_model

        if not model:  # read and hash-checked once per node, shared by the sessions
            model.append(load_model(Path(model_path) if model_path else None, sha256=model_sha256))
        return MediapipeFaceTracker(model=model[0], max_faces=1)

    return create


class CameraStage(StageBase):
    accepts = (VideoPicture, ImageInput)

    def __init__(self, provider: CameraAnimation, context: StageContext) -> None:
        self._provider = provider
        self._context = context
        self._motion = provider.motion()
        self._tracker: FaceTracker | None = None
        self._config_sent = False
        self._start: float | None = None
        #: Pictures tracked, pictures without a face (for tests and metrics).
        self.tracked = 0
        self.lost = 0

    async def teardown(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            try:
                await self._context.executor.run(tracker.close)
            except Exception:  # teardown must not raise
                pass

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        assert isinstance(frame, VideoPicture | ImageInput)
        at = self._media_time(frame.media_time)
        face = await self._context.executor.run(self._track, frame, at)
        sample = self._motion.update(at, face)
        if sample is None:
            return
        if not self._config_sent:
            self._config_sent = True
            config = encode_unit(ConfigUnit(self._tick(at), self._provider.profile,
                                            self._provider.timescale))
            yield self._unit(frame, config, at, is_config=True)
        for unit in self._units(sample):
            yield self._unit(frame, unit, at)

    # --- in the worker ---------------------------------------------------------------------

    def _track(self, frame: VideoPicture | ImageInput, at: float) -> FaceResult | None:
        rgb = _picture(frame)
        if self._tracker is None:
            self._tracker = self._provider.new_tracker()
        try:
            face = self._tracker.track(rgb, timestamp=at)
        except FaceTrackingError as exc:
            if exc.code is FaceError.UNSUPPORTED_IMAGE:
                raise StageFailure(exc.code.value, exc.message, rejected=True) from exc
            self.lost += 1
            return None
        self.tracked += 1
        return face

    # --- units -----------------------------------------------------------------------------

    def _media_time(self, media_time: float | None) -> float:
        if media_time is not None:
            return media_time
        now = self._context.clock.now()
        if self._start is None:
            self._start = now
        return now - self._start

    def _tick(self, at: float) -> int:
        return round(at * self._provider.timescale) % _UINT32

    def _units(self, sample: MotionSample) -> tuple[bytes, bytes]:
        provider = self._provider
        tick = self._tick(sample.time)
        weights = np.clip(sample.weights, 0.0, 1.0)
        weights[weights < 1e-4] = 0.0
        blend = BlendshapeUnit(
            tick,
            provider.blendshape_set_id,
            tuple(range(len(weights))),
            tuple(float(w) for w in weights),
        )
        matrix = head_matrices(sample.head[None, :], provider.head_translation)[0]
        joint = JointUnit(
            tick, provider.joint_set_id, (HEAD_JOINT_INDEX,), (tuple(float(v) for v in matrix),)
        )
        return encode_unit(blend), encode_unit(joint)

    def _unit(
        self, frame: Frame, unit: bytes, at: float, *, is_config: bool = False
    ) -> AnimationUnitFrame:
        return AnimationUnitFrame(
            frame.participant,
            unit,
            is_config=is_config,
            media_time=at,
            timescale=self._provider.timescale,
        )


def _picture(frame: VideoPicture | ImageInput) -> NDArray[np.uint8]:
    if isinstance(frame, VideoPicture):
        size = frame.width * frame.height * 3
        if frame.width <= 0 or frame.height <= 0 or len(frame.rgb) != size:
            raise StageFailure(
                FaceError.UNSUPPORTED_IMAGE.value,
                f"{len(frame.rgb)} bytes is not a {frame.width}x{frame.height} RGB picture",
                rejected=True,
            )
        return np.frombuffer(frame.rgb, dtype=np.uint8).reshape(frame.height, frame.width, 3)
    return decode_image(frame.data)


def decode_image(data: bytes) -> NDArray[np.uint8]:
    """A JPEG or PNG as (H, W, 3) RGB; ``unsupported-image`` for anything else."""
    if len(data) > MAX_IMAGE_BYTES:
        raise StageFailure(
            FaceError.UNSUPPORTED_IMAGE.value,
            f"images are limited to {MAX_IMAGE_BYTES} bytes",
            rejected=True,
        )
    if not (data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"):
        raise StageFailure(
            FaceError.UNSUPPORTED_IMAGE.value, "only JPEG and PNG pictures", rejected=True
        )
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > 4096 * 4096:
                raise ValueError("too many pixels")
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ImportError as exc:  # pragma: no cover - the face extra brings pillow
        raise StageFailure("face-model-unavailable", "decoding images needs pillow") from exc
    except (OSError, ValueError) as exc:
        raise StageFailure(
            FaceError.UNSUPPORTED_IMAGE.value, f"cannot decode the picture: {exc}", rejected=True
        ) from exc
    return np.ascontiguousarray(rgb)
