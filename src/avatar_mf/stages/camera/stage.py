"""The camera animation-data stage: the caller's pictures in, ARF units out (TR 26.813 D.3.3).

Per session, for every picture (:class:`~avatar_mf.pipeline.frames.VideoIn`, decoded from the
participant's RTP video by the media plane, or :class:`~avatar_mf.pipeline.frames.ImageInput`, a
JPEG/PNG sent on a data channel in an ``animation image`` message):

1. if the picture comes sooner than ``1 / max_rate`` after the last one used it is skipped
   untracked (a 60 fps camera costs 30 trackings a second);
2. in the node's face worker processes (:class:`~avatar_mf.face.pool.FacePool`, started on the
   first picture, one landmarker per process, never on the event loop): I420 -> RGB (or the
   image decoded), the face tracked;
3. :mod:`.retarget` (``retarget = "product-head"``, the default): the measured channels and
   the pitch mapped from the landmarks, for faces like the product's head (others keep
   MediaPipe's values);
4. :class:`~.motion.FaceMotion` (per session): values smoothed, a lost face relaxed to neutral
   over ``relax_time`` (0.3 s);
5. units: one CONFIG unit first, then per picture used a BLENDSHAPE unit with all 52 ARKit
   weights (MediaPipe gives 51: ``tongueOut`` stays 0; the eyes move by ``eyeLook*``) and a
   JOINT unit with the head joint's local matrix (``stages/animation_data/idle.head_matrices``,
   the product skeleton's head joint), both stamped with the picture's media time: the RTP
   timestamp (unwrapped, from the stream's first picture) for video, the arrival time for
   images.

Only for a session whose hello agreed the ``video`` animation input
(``StageContext.agreed_inputs``) are video pictures tracked: every video call carries video, and
a UE that animates itself must not get a second, network-made face. Images are tracked
whenever they are sent (the message is the ask).

Newest wins: the pipeline drops the oldest waiting picture when the stage is behind (the
frames are ``NEWEST_WINS``), so the stage always works on the latest one.

A picture without a usable face is not an error for video (the face relaxes); an image from a
data channel that cannot be decoded is answered ``unsupported-image``, and with no face
``no-face`` etc. (the session goes on). A face pool that cannot start (or dies) is logged once
and answers images ``face-model-unavailable``; the video face stays at rest.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator

import numpy as np

from avatar_mf.arf.units import BlendshapeUnit, ConfigUnit, JointUnit, encode_unit
from avatar_mf.face.model import MODEL_SHA256, FaceModelUnavailable
from avatar_mf.face.pictures import Picture, to_rgb
from avatar_mf.face.pool import FacePool, MediapipeFactory, Tracked, TrackerFactory
from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError
from avatar_mf.face.tracker import FaceTracker
from avatar_mf.pipeline.frames import AnimationUnitFrame, Frame, ImageInput, VideoIn
from avatar_mf.pipeline.stage import StageBase, StageContext, StageFailure
from avatar_mf.stages.animation_data.idle import (
    HEAD_JOINT_INDEX,
    HEAD_REST_TRANSLATION,
    head_matrices,
)
from avatar_mf.stages.camera.motion import FaceMotion, MotionSample
from avatar_mf.stages.camera.retarget import Retargeting, product_head

log = logging.getLogger(__name__)

_UINT32 = 1 << 32


class CameraAnimation:
    """Stage provider (entry point ``camera``, ``[pipeline.animation_data] name = "camera"``).

    Options: ``max_rate`` (30 units/s), ``smoothing`` (0.035 s), ``relax_time`` (0.3 s),
    ``profile`` and ``timescale`` (the CONFIG unit), ``blendshape_set_id``, ``joint_set_id``,
    ``head_translation`` (the head joint's rest translation), ``retarget`` (``"product-head"``:
    :mod:`.retarget`'s map from landmarks to the measured weights and pitch, for faces like
    the product's head; ``"none"``: the tracker's own scores), ``workers`` (face worker
    processes, 1), ``model_path`` and ``model_sha256`` (another copy of the face model).
    ``tracker``: a factory giving a :class:`~avatar_mf.face.tracker.FaceTracker`; with
    ``in_process`` it is called once per session and run in the stage executor (threads: a
    test's fake, or a tracker that follows the face from picture to picture), else once per
    worker process (it must pickle: a module-level class).
    """

    #: What the UE sends for this stage to animate (the protocol's animation input names).
    animation_inputs = ("video", "images")

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
        retarget: str = "product-head",
        workers: int = 1,
        model_path: str | None = None,
        model_sha256: str | None = MODEL_SHA256,
        tracker: TrackerFactory | None = None,
        in_process: bool = False,
    ) -> None:
        if not (math.isfinite(timescale) and timescale > 0):
            raise ValueError(f"timescale must be finite and > 0, not {timescale!r}")
        if not 0 <= blendshape_set_id <= 0xFFFF or not 0 <= joint_set_id <= 0xFFFF:
            raise ValueError("set ids are uint16")
        if not 1 <= workers <= 64:
            raise ValueError(f"workers must be 1..64, not {workers!r}")
        if retarget not in ("product-head", "none"):
            raise ValueError(f'retarget must be "product-head" or "none", not {retarget!r}')
        if in_process and tracker is None:
            raise ValueError("in_process needs a tracker factory")
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
        self.in_process = in_process
        self.retargeting: Retargeting | None = (
            product_head() if retarget == "product-head" else None
        )
        self._factory: TrackerFactory = tracker or MediapipeFactory(model_path, model_sha256)
        self._pool = FacePool(self._factory, workers=workers)
        self._starting = asyncio.Lock()
        self._started = False
        self._unavailable: FaceModelUnavailable | None = None
        encode_unit(ConfigUnit(0, profile, self.timescale))  # validates the profile

    def open(self, context: StageContext) -> CameraStage:
        return CameraStage(self, context)

    def new_tracker(self) -> FaceTracker:
        """A tracker of the session's own (``in_process``)."""
        return self._factory()

    def motion(self) -> FaceMotion:
        return FaceMotion(
            max_rate=self.max_rate, smoothing=self.smoothing, relax_time=self.relax_time
        )

    async def pool(self, context: StageContext) -> FacePool:
        """The face worker pool, started on first use (in the executor: starting the workers
        takes a second or two). Raises :class:`FaceModelUnavailable` (remembered)."""
        async with self._starting:
            if self._unavailable is not None:
                raise self._unavailable
            if not self._started:
                try:
                    await context.executor.run(self._pool.start)
                except FaceModelUnavailable as exc:
                    self._unavailable = exc
                    raise
                self._started = True
            return self._pool

    def close(self) -> None:
        """Stop the face workers (the node's shutdown; they also stop at interpreter exit)."""
        self._started = False
        self._pool.close()


class CameraStage(StageBase):
    accepts = (VideoIn, ImageInput)

    def __init__(self, provider: CameraAnimation, context: StageContext) -> None:
        self._provider = provider
        self._context = context
        self._motion = provider.motion()
        self._tracker: FaceTracker | None = None
        self._config_sent = False
        self._start: float | None = None
        self._rtp = _RtpTimeline()
        self._warned = False
        #: Pictures tracked, pictures without a face, pictures skipped (too soon), video
        #: pictures of a session that did not agree the ``video`` input.
        self.tracked = 0
        self.lost = 0
        self.skipped = 0
        self.unasked = 0
        #: Worker CPU seconds spent on this session's pictures (the pool only).
        self.cpu = 0.0

    async def teardown(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            try:
                await self._context.executor.run(tracker.close)
            except Exception:  # teardown must not raise
                pass

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        assert isinstance(frame, VideoIn | ImageInput)
        if isinstance(frame, VideoIn):
            agreed = self._context.agreed_inputs
            if agreed is not None and "video" not in agreed():
                self.unasked += 1  # a video call whose UE did not ask (or not yet)
                return
            at = self._rtp.seconds(frame.rtp_timestamp, frame.clock_rate)
            picture = Picture("i420", frame.data, frame.width, frame.height)
        else:
            at = self._media_time(frame.media_time)
            picture = Picture("image", frame.data)
        if not self._motion.due(at):
            self.skipped += 1
            return
        face = await self._track(picture, at, still=isinstance(frame, ImageInput))
        sample = self._motion.update(at, face)
        if sample is None:
            return
        if not self._config_sent:
            self._config_sent = True
            config = encode_unit(
                ConfigUnit(self._tick(at), self._provider.profile, self._provider.timescale)
            )
            yield self._unit(frame, config, at, is_config=True)
        for unit in self._units(sample):
            yield self._unit(frame, unit, at)

    async def _track(self, picture: Picture, at: float, *, still: bool) -> FaceResult | None:
        """The face in ``picture``; None when it has none (video); an image without a usable
        face is answered with the tracker's code."""
        try:
            if self._provider.in_process:
                face = await self._context.executor.run(self._track_here, picture, at)
            else:
                pool = await self._provider.pool(self._context)
                tracked: Tracked = await pool.track(picture)
                self.cpu += tracked.cpu
                face = tracked.result()
        except FaceTrackingError as exc:
            if still or exc.code is FaceError.UNSUPPORTED_IMAGE:
                raise StageFailure(exc.code.value, exc.message, rejected=True) from exc
            self.lost += 1
            return None
        except FaceModelUnavailable as exc:
            if not self._warned:
                self._warned = True
                log.warning("camera animation: %s", exc, extra=self._context.log_extra)
            if still:
                raise StageFailure("face-model-unavailable", str(exc), retryable=True) from exc
            self.lost += 1
            return None
        except Exception as exc:  # the tracker failed: an image is answered, video relaxes
            if still:
                raise
            if not self._warned:
                self._warned = True
                log.warning(
                    "camera animation: tracking failed: %r", exc, extra=self._context.log_extra
                )
            self.lost += 1
            return None
        self.tracked += 1
        retargeting = self._provider.retargeting
        return face if retargeting is None else retargeting.apply(face)

    def _track_here(self, picture: Picture, at: float) -> FaceResult:
        """In the stage executor, with the session's own tracker (``in_process``)."""
        rgb = to_rgb(picture)
        if self._tracker is None:
            self._tracker = self._provider.new_tracker()
        return self._tracker.track(rgb, timestamp=None if picture.kind == "image" else at)

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


class _RtpTimeline:
    """RTP timestamps (32-bit, wrapping) -> seconds since the stream's first picture."""

    __slots__ = ("_first", "_last", "_extended")

    def __init__(self) -> None:
        self._first: int | None = None
        self._last = 0
        self._extended = 0

    def seconds(self, timestamp: int, clock_rate: int) -> float:
        timestamp %= _UINT32
        if self._first is None:
            self._first = self._last = self._extended = timestamp
        else:
            delta = (timestamp - self._last) % _UINT32
            if delta >= _UINT32 // 2:  # behind the last one (reordered): a negative step
                delta -= _UINT32
            self._extended += delta
            self._last = timestamp
        return (self._extended - self._first) / max(1, clock_rate)
