"""The base-avatar generation stage of one session: a generator run in the worker pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

from avatar_mf.pipeline.frames import BaseAvatarFrame, Frame, GenerateAvatar
from avatar_mf.pipeline.stage import StageBase, StageContext, StageFailure
from avatar_mf.stages.base_avatar import AvatarRequest, BaseAvatarGenerator

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
            seed=frame.seed,
        )
        try:
            avatar = await self._context.executor.run(self._generator.generate, request)
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
