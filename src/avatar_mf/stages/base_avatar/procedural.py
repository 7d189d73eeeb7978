"""The default base-avatar generator: the product's procedural head, as an ARF container.

It needs no input images: a lab gets a valid, rigged avatar with the 52 ARKit blendshapes for
any subscriber (``avatar-mf avatar generate``, or a UE's ``avatar:generate`` in a call). A
generator that builds an avatar from the UE's images (D.1 alternative 1 proper) plugs in under
the same protocol.
"""

from __future__ import annotations

import hashlib

from avatar_mf.avatar import write_arf
from avatar_mf.avatar.generate import generate_default_head
from avatar_mf.pipeline.stage import StageContext
from avatar_mf.stages.base_avatar import AvatarRequest, GeneratedAvatar
from avatar_mf.stages.base_avatar.generation import GenerationStage

CONTENT_TYPE = "application/vnd.arf+zip"


class ProceduralGenerator:
    def __init__(self, *, resolution: str = "default") -> None:
        self._resolution = resolution

    def generate(self, request: AvatarRequest) -> GeneratedAvatar:
        model = generate_default_head(seed=request.seed, resolution=self._resolution)
        avatar_id = hashlib.sha256(f"{request.identity}/{request.seed}".encode()).hexdigest()[:32]
        container = write_arf(model, avatar_id=avatar_id, name=request.name)
        return GeneratedAvatar(container=container, content_type=CONTENT_TYPE, name=request.name)

    def open(self, context: StageContext) -> GenerationStage:
        """This session's generation stage (``avatar generate`` in a call)."""
        return GenerationStage(self, context)
