"""Upload validation: a base avatar a UE uploaded is checked before it is stored (D.1 alt. 2).

Built into every session's pipeline, ahead of the configured stages. The check (the hostile-input
ARF/GLB reader, :mod:`avatar_mf.avatar.validate`) runs in the worker pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from avatar_mf.pipeline.frames import AvatarUpload, BaseAvatarFrame, Frame
from avatar_mf.pipeline.stage import StageBase, StageContext, StageFailure

#: Raises ValueError (with an optional ``code``) for a container that cannot be used.
AvatarValidator = Callable[[bytes, str], object]

BAD_AVATAR = "bad-avatar"


class UploadValidation:
    """The provider: one validator for the node."""

    name = "avatar_validation"

    def __init__(self, validator: AvatarValidator) -> None:
        self._validator = validator

    def open(self, context: StageContext) -> UploadValidationStage:
        return UploadValidationStage(self._validator, context)


class UploadValidationStage(StageBase):
    accepts = (AvatarUpload,)

    def __init__(self, validator: AvatarValidator, context: StageContext) -> None:
        self._validator = validator
        self._context = context

    async def process(self, frame: Frame) -> AsyncIterator[Frame]:
        assert isinstance(frame, AvatarUpload)
        try:
            await self._context.executor.run(self._validator, frame.data, frame.content_type)
        except ValueError as exc:
            code = getattr(exc, "code", BAD_AVATAR)
            raise StageFailure(
                code if isinstance(code, str) else BAD_AVATAR, str(exc), rejected=True
            ) from exc
        yield BaseAvatarFrame(
            frame.participant,
            name=frame.name,
            content_type=frame.content_type,
            data=frame.data,
            source="upload",
            origin_id=frame.transfer_id,
        )
