"""glTF binary avatars: :func:`avatar_mf.avatar.validate.validate_container` with the GLB
content type (the reader of :mod:`avatar_mf.avatar.glb`: GLB framing, the JSON chunk, accessors,
skin and morph targets).

Documented outcome: a model or :class:`~avatar_mf.avatar.errors.AvatarFormatError` ("raises
only this error, whatever the input").
"""

from __future__ import annotations

from avatar_mf.avatar.errors import AvatarFormatError
from avatar_mf.avatar.validate import GLB_CONTENT_TYPE, validate_container


def fuzz_one(data: bytes) -> None:
    try:
        validate_container(data, GLB_CONTENT_TYPE)
    except AvatarFormatError:
        pass
