"""One entry point to validate a base avatar container, whatever its format."""

from __future__ import annotations

from avatar_mf.avatar.container import ArfAvatar, read_arf
from avatar_mf.avatar.glb import read_glb
from avatar_mf.avatar.model import AvatarModel

GLB_CONTENT_TYPE = "model/gltf-binary"


def validate_container(data: bytes, content_type: str = "") -> ArfAvatar | AvatarModel:
    """Parse and check a base avatar: a glTF binary (by magic or content type) or an ARF
    container. Raises :class:`~avatar_mf.avatar.errors.AvatarFormatError` (a ValueError)."""
    if data[:4] == b"glTF" or content_type == GLB_CONTENT_TYPE:
        return read_glb(data)
    return read_arf(data)
