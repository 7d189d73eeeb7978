"""An operator's 2D avatar model (ONNX) drawing the portrait instead of the mesh warp.

TR 26.813 section 3.4 describes 2D avatars as DNN models (ONNX among the formats it names).
No package ships such weights, so the warp (:mod:`.rig`, drawn by the renderer) is the default;
a lab with a model sets ``onnx_model`` on the network-animation stage and every 2D avatar is
drawn by it. The model runs in onnxruntime (CPU, one intra-op thread), in the stage's
executor, never on the event loop; one session per provider, shared by the sessions
(onnxruntime's ``run`` is thread-safe).

The contract (docs/rendering.md, "2D avatars"):

* input ``portrait``: float32 (1, S, S, 3), RGB 0..1, rows top first: the portrait's square
  crop (:class:`~.model.PortraitModel` ``picture``) resized to S. S is the model's when its
  input has a fixed size, else the portrait's own;
* input ``weights``: float32 (1, 52), the ARKit blendshape weights 0..1 in
  :data:`avatar_mf.arf.blendshapes.ARKIT_BLENDSHAPES` order;
* input ``head`` (optional: only if the model declares it): float32 (1, 3), the head's yaw,
  pitch, roll in radians (the convention of :class:`avatar_mf.face.HeadPose`);
* output: the model's first output, float32 (1, H, W, 3) RGB 0..1 (values outside are
  clipped); the picture is resized to the stage's size when H, W differ from it.

A model that does not meet it is refused when loaded (:class:`OnnxPortraitUnavailable`, code
``onnx-model-unavailable``, with the reason).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.face import HeadPose
from avatar_mf.render.scene import RenderSettings
from avatar_mf.stages.animation.portrait.avatar import Draw
from avatar_mf.stages.animation.portrait.model import PortraitModel
from avatar_mf.stages.animation.portrait.rig import HEAD_CHAIN
from avatar_mf.stages.animation.posing import Pose


class OnnxPortraitUnavailable(RuntimeError):
    """The operator's 2D model cannot be used; the message says why."""

    code = "onnx-model-unavailable"
    retryable = False


def _resize(rgb: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    if rgb.shape[:2] == (height, width):
        return rgb
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.asarray(image)


class OnnxPortraitModel:
    """One operator model (bytes or a path), checked against the contract when loaded."""

    def __init__(self, model: bytes | str | Path) -> None:
        try:
            data = model if isinstance(model, bytes) else Path(model).read_bytes()
        except OSError as exc:
            raise OnnxPortraitUnavailable(f"cannot read the ONNX 2D model: {exc}") from exc
        try:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._session: Any = onnxruntime.InferenceSession(
                data, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ImportError, or onnxruntime's own errors on a bad file
            raise OnnxPortraitUnavailable(f"cannot load the ONNX 2D model: {exc}") from exc
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        portrait, weights = inputs.get("portrait"), inputs.get("weights")
        if portrait is None or len(portrait) != 4 or portrait[3] != 3:
            raise OnnxPortraitUnavailable(f"needs an input portrait (1, S, S, 3), has {inputs}")
        if weights is None or len(weights) != 2 or weights[1] != len(ARKIT_BLENDSHAPES):
            raise OnnxPortraitUnavailable(f"needs an input weights (1, 52), has {inputs}")
        side = portrait[1]
        self.size: int | None = side if isinstance(side, int) and side > 0 else None
        self.head = "head" in inputs
        self._output = self._session.get_outputs()[0].name

    def drawer(self, model: PortraitModel) -> Draw:
        """The drawing function of one portrait: (pose, settings) -> RGBA."""
        side = self.size or model.size
        portrait = _resize(model.picture, side, side).astype(np.float32)[None] / 255.0

        def draw(pose: Pose, settings: RenderSettings) -> NDArray[np.uint8]:
            weights = np.zeros((1, len(ARKIT_BLENDSHAPES)), dtype=np.float32)
            given = np.asarray(pose.weights, dtype=np.float32)[: weights.shape[1]]
            weights[0, : len(given)] = given
            feeds = {"portrait": portrait, "weights": weights}
            if self.head:
                rotation = np.eye(3)
                for joint in HEAD_CHAIN:
                    if joint < len(pose.locals):
                        rotation = rotation @ np.asarray(pose.locals[joint, :3, :3])
                angles = HeadPose.from_rotation(rotation)
                feeds["head"] = np.array([[angles.yaw, angles.pitch, angles.roll]],
                                         dtype=np.float32)
            (picture,) = self._session.run([self._output], feeds)
            rgb = np.asarray(picture, dtype=np.float32).reshape(picture.shape[-3:])
            if rgb.shape[2] != 3:
                raise OnnxPortraitUnavailable(f"the model's output is {picture.shape}")
            rgb8 = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            rgb8 = _resize(rgb8, settings.width, settings.height)
            out = np.empty((settings.height, settings.width, 4), dtype=np.uint8)
            out[..., :3] = rgb8
            out[..., 3] = 255
            return out

        return draw
