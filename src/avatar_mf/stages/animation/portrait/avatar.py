"""A portrait made ready for the network-animation stage: the same shape as a 3D
:class:`~avatar_mf.stages.animation.avatar_rig.AnimatedAvatar` (``mesh``, ``rig``,
``animator()``), plus ``draw`` when an operator's ONNX model draws it instead of the warp.

:func:`load_portrait` is what the stage runs (in its executor) for a base avatar that is a
picture (:func:`is_picture`: JPEG or PNG bytes): decode, track the face with the packaged
MediaPipe tracker (the photo limits of :data:`avatar_mf.face.PHOTO_LIMITS`), fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face import PHOTO_LIMITS, FaceTracker
from avatar_mf.render.scene import MeshData, RenderSettings
from avatar_mf.stages.animation.portrait.model import (
    FRAMING,
    PortraitModel,
    decode_picture,
    fit_portrait,
)
from avatar_mf.stages.animation.portrait.rig import PortraitRig
from avatar_mf.stages.animation.posing import Pose
from avatar_mf.stages.animation.timeline import Animator, AnimatorSettings

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"

#: Draws a pose at a picture size without the renderer: (pose, settings) -> RGBA (H, W, 4).
Draw = Callable[[Pose, RenderSettings], NDArray[np.uint8]]


def is_picture(data: bytes) -> bool:
    """JPEG or PNG bytes (a 2D avatar), as opposed to an ARF container or a GLB."""
    return data.startswith(_PNG) or data.startswith(_JPEG)


@dataclass(frozen=True, slots=True, eq=False)
class PortraitAvatar:
    """What the animation stage needs of one portrait."""

    model: PortraitModel
    rig: PortraitRig
    mesh: MeshData
    #: An operator's model that draws the picture itself (:mod:`.onnx_model`), or None: the
    #: renderer draws the warped mesh.
    draw: Draw | None = None

    @classmethod
    def of(cls, model: PortraitModel, draw: Draw | None = None) -> PortraitAvatar:
        return cls(model, PortraitRig(model), model.mesh(), draw)

    def animator(self, settings: AnimatorSettings | None = None) -> Animator:
        """A fresh animator (BLENDSHAPE set 0 in ARKit order, JOINT skeleton 0)."""
        return Animator(self.rig.neutral(), settings=settings)


def default_tracker() -> FaceTracker:
    from avatar_mf.face.mediapipe_tracker import MediapipeFaceTracker

    return MediapipeFaceTracker(limits=PHOTO_LIMITS)


def load_portrait(
    data: bytes,
    *,
    tracker: FaceTracker | None = None,
    framing: float = FRAMING,
    draw: Callable[[PortraitModel], Draw] | None = None,
) -> PortraitAvatar:
    """A photo (JPEG/PNG bytes) as a portrait avatar; the tracker's
    :class:`~avatar_mf.face.FaceTrackingError` when it has no usable face. ``draw`` makes
    the model's drawing function (an ONNX model's, :mod:`.onnx_model`)."""
    own = tracker is None
    active = tracker if tracker is not None else default_tracker()
    try:
        model = fit_portrait(decode_picture(data), active, framing=framing)
    finally:
        if own:
            active.close()
    return PortraitAvatar.of(model, None if draw is None else draw(model))
