"""D.4 alternative 1: the network animates the avatar and renders it as video.

For a receiver that registered ``+sip.3gpp-avatar-support="avatar-assisted"`` (TS 26.264
7.3.2: it cannot animate or render), the MF applies the session's animation units to the
session's base avatar and renders the result (TR 26.813 D.4.1-D.4.2). :class:`NetworkAnimation`
(entry point ``network``, ``[pipeline.animation] name = "network"``) is the provider; each
session gets a :class:`NetworkAnimationStage`:

* it takes the session's :class:`~avatar_mf.pipeline.frames.BaseAvatarFrame` (uploaded or
  generated), or the :class:`~avatar_mf.pipeline.frames.AvatarInUse` of one selected from
  storage (read through the provider's ``avatar_loader``, which the node sets to its avatar
  cache), and loads it (:mod:`.avatar_rig`, in the executor); ``AvatarInUse(None)`` (the
  right to use it ended) stops the rendering;
* it takes every :class:`~avatar_mf.pipeline.frames.AnimationUnitFrame` (the UE's, relayed,
  or the MF's own from the text stage) and feeds its :class:`~.timeline.Animator`; both kinds
  of frame go on unchanged (the UE-centric relay to receivers that animate themselves stays);
* from the first avatar on it renders at ``rate`` frames per second on the session clock:
  samples the animator at the media time of the clock (``delay`` seconds behind the units'
  arrival: 0 by default, so a unit shows in the next frame, within 40 ms plus the work, for
  the issue's 60 ms unit-to-RTP budget; units keep their pose until the next one. A ``delay``
  of one unit interval, e.g. 0.033 s at 30 units/s, interpolates between units instead, at
  that much more latency), poses the mesh in the
  executor, renders in the :class:`~avatar_mf.render.pool.RenderPool` (worker processes) and
  offers a :class:`~.video.VideoFrameOut` to the session's :class:`~.video.VideoSource`,
  which the video sender of the media plane reads (:meth:`NetworkAnimation.video_source`).
  A frame whose time has passed before it could start is skipped (counted), never queued.

Media time: the first unit anchors the unit timeline to the clock (``clock - media``); a
unit more than ``resync`` seconds off the anchor (a new stream, a sender's clock jump)
re-anchors it. Before any unit, the avatar is rendered neutral.

When rendering cannot be had (no moderngl or EGL: :class:`~avatar_mf.render.RenderUnavailable`)
the stage logs why once, renders nothing, and still passes every frame on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.units import (
    AnimationUnit,
    ArfDecodeError,
    ConfigUnit,
    UnknownUnit,
    decode_unit,
)
from avatar_mf.clock import sleep
from avatar_mf.pipeline.frames import AnimationUnitFrame, AvatarInUse, BaseAvatarFrame, Frame
from avatar_mf.pipeline.stage import StageBase, StageContext
from avatar_mf.render.errors import RenderUnavailable
from avatar_mf.render.scene import Framing, MeshData, RenderSettings
from avatar_mf.stages.animation.avatar_rig import AnimatedAvatar, load_avatar
from avatar_mf.stages.animation.portrait.avatar import PortraitAvatar, is_picture, load_portrait
from avatar_mf.stages.animation.portrait.onnx_model import OnnxPortraitModel
from avatar_mf.stages.animation.timeline import Animator, AnimatorSettings
from avatar_mf.stages.animation.video import VideoFrameOut, VideoSource

log = logging.getLogger(__name__)

#: Units that arrive before the session has an avatar are kept this long (seconds) and
#: applied once it has one.
REPLAY = 1.0


class RenderedPicture(Protocol):
    rgba: NDArray[np.uint8]

    def release(self) -> None: ...


class FrameRenderer(Protocol):
    """What the stage renders with: :class:`~avatar_mf.render.pool.RenderPool` (or, in tests
    and one-off tools, :class:`~avatar_mf.render.inline.InlineRenderer`)."""

    def add_mesh(self, mesh: MeshData) -> str: ...

    def remove_mesh(self, key: str) -> None: ...

    async def render(
        self,
        key: str,
        positions: NDArray[np.float32],
        normals: NDArray[np.float32],
        settings: RenderSettings,
        *,
        framing: Framing | None = None,
    ) -> RenderedPicture: ...


class NetworkAnimation:
    """Provider of the network-animation stage (options: see ``__init__``)."""

    #: The negotiation reads it: this stage animates and renders in the network.
    animates_in_network = True

    def __init__(
        self,
        *,
        rate: float = 25.0,
        width: int = 512,
        height: int = 512,
        background: tuple[float, float, float] | list[float] = (0.2, 0.22, 0.25),
        alpha: bool = False,
        samples: int = 0,
        yaw: float = 0.0,
        relax_after: float = 1.0,
        relax_time: float = 0.5,
        delay: float = 0.0,
        resync: float = 1.0,
        workers: int | None = None,
        threads: int = 1,
        onnx_model: str | None = None,
        watched_only: bool = False,
        renderer: FrameRenderer | None = None,
    ) -> None:
        """``rate`` output frames per second; ``width``/``height``/``background``/``alpha``/
        ``samples`` the picture (:class:`~avatar_mf.render.scene.RenderSettings`); ``yaw`` the
        camera's turn in degrees; ``relax_after``/``relax_time`` when and how fast the avatar
        relaxes to neutral once units stop; ``delay`` seconds the rendered media time runs
        behind the units' arrival; ``workers``/``threads`` the render pool (default: one
        worker per core, one llvmpipe thread each); ``onnx_model`` an operator's 2D model
        drawing 2D avatars (a photo as base avatar) instead of the warp; ``watched_only``:
        render a session's frames only while a receiver reads them (its
        :class:`~.video.VideoSource` has readers; the node sets it: nobody avatar-assisted,
        no rendering); ``renderer`` another renderer (tests)."""
        if not 1.0 <= rate <= 60.0:
            raise ValueError(f"rate must be 1..60 frames per second, not {rate!r}")
        if not 0.0 <= delay <= 1.0:
            raise ValueError(f"delay must be 0..1 s, not {delay!r}")
        self.rate = float(rate)
        self.delay = float(delay)
        self.resync = float(resync)
        r, g, b = (float(c) for c in background)
        self.settings = RenderSettings(
            width=width, height=height, background=(r, g, b), alpha=alpha, samples=samples,
            framing=Framing(yaw=yaw),
        )
        self.animator_settings = AnimatorSettings(relax_after=relax_after, relax_time=relax_time)
        self._workers = workers
        self._threads = threads
        self._renderer = renderer
        self.onnx_model = onnx_model
        self.watched_only = watched_only
        self._onnx: OnnxPortraitModel | None = None
        self._unavailable: RenderUnavailable | None = None
        self._starting = asyncio.Lock()
        self._pool: object | None = None
        #: Each session's rendered frames, by participant id (the media plane's seam).
        self.sources: dict[str, VideoSource] = {}
        #: Reads a stored avatar's container by id (the node sets it: the avatar cache).
        self.avatar_loader: Callable[[str], Awaitable[bytes]] | None = None

    def video_source(self, participant: str) -> VideoSource | None:
        """The rendered frames of ``participant``'s session (None: no such session)."""
        return self.sources.get(participant)

    def open(self, context: StageContext) -> NetworkAnimationStage:
        return NetworkAnimationStage(self, context)

    async def renderer(self, context: StageContext) -> FrameRenderer:
        """The renderer, the render pool started on first use (in the executor: starting
        the workers takes about a second). Raises RenderUnavailable (remembered)."""
        async with self._starting:
            if self._renderer is not None:
                return self._renderer
            if self._unavailable is not None:
                raise self._unavailable
            from avatar_mf.render.pool import RenderPool

            pool = RenderPool(self._workers, threads=self._threads)
            try:
                await context.executor.run(pool.start)
            except RenderUnavailable as exc:
                self._unavailable = exc
                raise
            self._pool = pool
            self._renderer = pool
            return pool

    def load_portrait(self, data: bytes) -> PortraitAvatar:
        """A photo as a 2D avatar (in the executor), drawn by ``onnx_model`` if set."""
        if self.onnx_model is not None and self._onnx is None:  # one session, shared
            self._onnx = OnnxPortraitModel(self.onnx_model)
        return load_portrait(data, draw=None if self._onnx is None else self._onnx.drawer)

    def close(self) -> None:
        """Stop the render pool (the node calls it at shutdown)."""
        pool, self._pool = self._pool, None
        close = getattr(pool, "close", None)
        if close is not None:
            close()


class NetworkAnimationStage(StageBase):
    """One session: units in, rendered frames to its :class:`VideoSource` (module docs)."""

    accepts = (BaseAvatarFrame, AnimationUnitFrame, AvatarInUse)

    def __init__(self, provider: NetworkAnimation, context: StageContext) -> None:
        self.provider = provider
        self.context = context
        self.source = VideoSource()
        self.avatar: AnimatedAvatar | PortraitAvatar | None = None
        self.animator: Animator | None = None
        self._renderer: FrameRenderer | None = None
        self._mesh_key: str | None = None
        self._offset: float | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._avatar_id: str | None = None
        self._config: ConfigUnit | None = None
        self._early: deque[tuple[float, AnimationUnit]] = deque()
        #: Set once setup has its renderer (or knows there is none): the session's first
        #: avatar may arrive while the render pool is still starting.
        self._ready = asyncio.Event()
        #: Frames rendered, frames skipped because their time had passed, units not decoded.
        self.rendered = 0
        self.dropped = 0
        #: Frame times passed without rendering because no receiver read them.
        self.unwatched = 0
        self.bad_units = 0

    async def setup(self) -> None:
        self.provider.sources[self.context.participant] = self.source
        try:
            self._renderer = await self.provider.renderer(self.context)
        except RenderUnavailable as exc:
            log.warning("network animation renders nothing: %s", exc, extra=self.context.log_extra)
        finally:
            self._ready.set()

    async def teardown(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self.source.close()
        if self.provider.sources.get(self.context.participant) is self.source:
            del self.provider.sources[self.context.participant]
        if self._mesh_key is not None and self._renderer is not None:
            self._renderer.remove_mesh(self._mesh_key)
            self._mesh_key = None

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        if isinstance(frame, AnimationUnitFrame):
            self._feed(frame)
        elif isinstance(frame, BaseAvatarFrame):
            await self.use_avatar(frame.data)
        elif isinstance(frame, AvatarInUse):
            await self._in_use(frame.avatar_id)
        yield frame

    async def _in_use(self, avatar_id: str | None) -> None:
        """A stored avatar was taken into use (or withdrawn: None)."""
        if avatar_id is None:
            self.avatar, self.animator, self._avatar_id = None, None, None
            self.source.active = False
            return
        loader = self.provider.avatar_loader
        if loader is None or avatar_id == self._avatar_id:
            return
        try:
            data = await loader(avatar_id)
            await self.use_avatar(data)
        except Exception as exc:  # a vanished or unreadable avatar: keep what was shown
            log.warning("network animation: avatar %s not loaded: %r", avatar_id, exc,
                        extra=self.context.log_extra)
            return
        self._avatar_id = avatar_id

    # --- input ------------------------------------------------------------------------------

    async def use_avatar(self, data: bytes) -> None:
        """Animate this base avatar (ARF or GLB bytes, or a photo: 2D) from now on."""
        load = self.provider.load_portrait if is_picture(data) else load_avatar
        avatar: AnimatedAvatar | PortraitAvatar = await self.context.executor.run(load, data)
        await self._ready.wait()
        animator = avatar.animator(self.provider.animator_settings)
        renderer = self._renderer
        if renderer is not None:
            old, self._mesh_key = self._mesh_key, renderer.add_mesh(avatar.mesh)
            if old is not None:
                renderer.remove_mesh(old)
        self.avatar, self.animator, self._offset = avatar, animator, None
        # The stream's CONFIG (its timescale) and the units that came before any avatar (a
        # selected avatar loads while the text stage already speaks) drive the new one too.
        if self._config is not None:
            animator.feed(self._config)
        early, self._early = self._early, deque()
        now = self.context.clock.now()
        for arrival, unit in early:
            if arrival >= now - REPLAY:
                self._apply(unit, arrival)
        if renderer is not None:
            self.source.active = True
        if self._ticker is None and renderer is not None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def _feed(self, frame: AnimationUnitFrame) -> None:
        try:
            unit = decode_unit(frame.unit)
        except ArfDecodeError:
            self.bad_units += 1
            return
        if isinstance(unit, UnknownUnit):
            return
        now = self.context.clock.now()
        if isinstance(unit, ConfigUnit):
            self._config = unit
        elif self.animator is None:  # no avatar yet: kept for it (the last REPLAY seconds)
            self._early.append((now, unit))
            while self._early and self._early[0][0] < now - REPLAY:
                self._early.popleft()
        if self.animator is not None:
            self._apply(unit, now)

    def _apply(self, unit: AnimationUnit, arrival: float) -> None:
        assert self.animator is not None
        at = self.animator.feed(unit)
        if at is None:
            return
        if self._offset is None or abs(arrival - self._offset - at) > self.provider.resync:
            self._offset = arrival - at

    def media_time(self, now: float) -> float | None:
        """The animation's media time shown at clock time ``now`` (None before any unit)."""
        if self._offset is None:
            return None
        return now - self._offset - self.provider.delay

    # --- output -----------------------------------------------------------------------------

    async def _tick(self) -> None:
        clock = self.context.clock
        period = 1.0 / self.provider.rate
        start = clock.now()
        index = 0
        while True:
            deadline = start + index * period
            wait = deadline - clock.now()
            if wait > 0:
                await sleep(clock, wait)
            late = int((clock.now() - deadline) / period)
            if late >= 1:  # the time of this frame (and maybe more) has passed: skip them
                self.dropped += late
                index += late
                continue
            if self.provider.watched_only and not self.source.readers:
                self.unwatched += 1  # nobody is shown this avatar: no work
                index += 1
                continue
            try:
                await self._render(index, deadline)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("network animation: frame %d failed", index,
                              extra=self.context.log_extra)
                self.dropped += 1
            index += 1

    async def _render(self, index: int, at: float) -> None:
        avatar, animator, renderer, key = self.avatar, self.animator, self._renderer, self._mesh_key
        if avatar is None or animator is None or renderer is None or key is None:
            return
        media = self.media_time(at)
        pose = animator.sample(media if media is not None else float("-inf"))
        draw = getattr(avatar, "draw", None)  # a 2D avatar drawn by an operator's ONNX model
        if draw is not None:
            rgba = await self.context.executor.run(draw, pose, self.provider.settings)
        else:
            positions, normals = await self.context.executor.run(avatar.rig.pose, pose)
            picture = await renderer.render(key, positions, normals, self.provider.settings)
            try:
                rgba = picture.rgba.copy()
            finally:
                picture.release()
        rgba.setflags(write=False)
        self.rendered += 1
        self.source.offer(
            VideoFrameOut(self.context.participant, index=index, time=at,
                          rate=self.provider.rate, rgba=rgba, media_time=media)
        )
