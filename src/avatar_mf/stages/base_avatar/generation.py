"""The base-avatar generation stage of one session: a generator run in the worker pool.

A generator that reports progress (:class:`~avatar_mf.stages.base_avatar.ReportingGenerator`,
the photo generator) calls back from its worker thread; each report hops to the event loop
(``call_soon_threadsafe``) and leaves the stage as a
:class:`~avatar_mf.pipeline.frames.GenerationProgress` frame while the work goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from avatar_mf.face.pictures import Picture
from avatar_mf.pipeline.frames import BaseAvatarFrame, Frame, GenerateAvatar, GenerationProgress
from avatar_mf.pipeline.stage import StageBase, StageContext, StageFailure
from avatar_mf.stages.base_avatar import (
    AvatarRequest,
    BaseAvatarGenerator,
    GeneratedAvatar,
    ReportingGenerator,
)

BAD_INPUT = "bad-avatar"


class GenerationStage(StageBase):
    accepts = (GenerateAvatar,)

    def __init__(self, generator: BaseAvatarGenerator, context: StageContext) -> None:
        self._generator = generator
        self._context = context

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        assert isinstance(frame, GenerateAvatar)
        request = AvatarRequest(
            participant=frame.participant,
            identity=frame.identity,
            name=frame.name,
            images=frame.images,
            depths=frame.depths,
            seed=frame.seed,
            video=tuple(
                Picture("i420", v.data, v.width, v.height) for v in frame.video
            ),
        )
        generator = self._generator
        try:
            if isinstance(generator, ReportingGenerator):
                reports: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
                loop = asyncio.get_running_loop()

                def progress(percent: int, stage: str) -> None:
                    loop.call_soon_threadsafe(reports.put_nowait, (percent, stage))

                work = asyncio.ensure_future(
                    self._context.executor.run(generator.generate_reporting, request, progress)
                )
                async for percent, stage in _reports_until(work, reports):
                    yield GenerationProgress(
                        frame.participant, percent, stage, message_id=frame.message_id
                    )
                avatar: GeneratedAvatar = await work
            else:
                avatar = await self._context.executor.run(generator.generate, request)
        except ValueError as exc:
            # A generator's error may carry its own code (the photo generator's face codes).
            code = getattr(exc, "code", BAD_INPUT)
            raise StageFailure(
                code if isinstance(code, str) else BAD_INPUT,
                f"no avatar could be built: {exc}",
                rejected=True,
            ) from exc
        yield BaseAvatarFrame(
            frame.participant,
            name=avatar.name,
            content_type=avatar.content_type,
            data=avatar.container,
            source="generated",
            origin_id=frame.message_id,
        )


async def _reports_until(
    work: asyncio.Future[GeneratedAvatar], reports: asyncio.Queue[tuple[int, str]]
) -> AsyncIterator[tuple[int, str]]:
    """The reports queued while ``work`` runs (and those already queued when it ends)."""
    while not work.done():
        getter = asyncio.ensure_future(reports.get())
        waiting: list[asyncio.Future[Any]] = [work, getter]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            yield getter.result()
        else:
            getter.cancel()
    while not reports.empty():
        yield reports.get_nowait()
