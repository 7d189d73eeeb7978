"""An operator's own face model, run by onnxruntime, behind the same interface.

The contract a model file must meet (docs/face-tracking.md repeats it):

* **one input**, float32, shape ``(1, S, S, 3)`` with ``S`` fixed in the file: the picture,
  RGB, values 0..1, rows top first. The tracker pads the picture to a square (black, at the
  right or the bottom) and resamples it to ``S`` x ``S``; the model finds the face itself.
* **outputs, by name**:

  - ``landmarks`` float32 ``(1, 478, 3)``: x, y in fractions of the model's input (0..1), z
    in the scale of x (MediaPipe's face mesh topology);
  - ``blendshapes`` float32 ``(1, 52)``: weights 0..1 in the order of
    :data:`avatar_mf.arf.blendshapes.ARKIT_BLENDSHAPES`;
  - ``score`` float32 ``(1,)``: the probability that a face is there; below
    ``min_confidence`` the answer is ``no-face``;
  - ``transform`` float32 ``(1, 4, 4)``, optional: the face-to-camera transform (column
    vectors, the face looking along +Z towards the camera, Y up); without it the head pose is
    reported as (0, 0, 0).

One face per picture: such a model cannot report ``several-faces``. The file is pinned by its
sha256 (``model_sha256``) like the packaged model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from avatar_mf.arf.blendshapes import ARKIT_BLENDSHAPES
from avatar_mf.face.model import FaceModelUnavailable
from avatar_mf.face.quality import QualityLimits, check_face
from avatar_mf.face.result import (
    LANDMARK_COUNT,
    FaceError,
    FaceResult,
    FaceTrackingError,
    HeadPose,
)
from avatar_mf.face.tracker import check_picture

REQUIRED_OUTPUTS = ("landmarks", "blendshapes", "score")


class OnnxFaceTracker:
    """:class:`~avatar_mf.face.tracker.FaceTracker` for a model meeting the module's contract
    (``pip install onnxruntime``). ``model``: the file's bytes or path; ``model_sha256``: the
    hash the bytes must have (None: not checked)."""

    def __init__(
        self,
        model: bytes | str | Path,
        *,
        model_sha256: str | None = None,
        min_confidence: float = 0.5,
        limits: QualityLimits | None = None,
    ) -> None:
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        if model_sha256 is not None and hashlib.sha256(data).hexdigest() != model_sha256.lower():
            raise FaceModelUnavailable(f"the ONNX face model is not the pinned {model_sha256}")
        try:
            import onnxruntime
        except ImportError as exc:
            raise FaceModelUnavailable("ONNX face models need onnxruntime") from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session: Any = onnxruntime.InferenceSession(
            data, options, providers=["CPUExecutionProvider"]
        )
        inputs = self._session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        if (
            shape is None
            or len(shape) != 4
            or shape[3] != 3
            or not isinstance(shape[1], int)
            or shape[1] != shape[2]
        ):
            raise FaceModelUnavailable(f"the ONNX face model needs one (1, S, S, 3) input: {shape}")
        self._input = inputs[0].name
        self.size = int(shape[1])
        names = {o.name for o in self._session.get_outputs()}
        missing = [n for n in REQUIRED_OUTPUTS if n not in names]
        if missing:
            raise FaceModelUnavailable(f"the ONNX face model lacks outputs {missing}")
        self._outputs = [*REQUIRED_OUTPUTS, *(["transform"] if "transform" in names else [])]
        self.min_confidence = min_confidence
        self.limits = limits if limits is not None else QualityLimits()

    def track(self, rgb: NDArray[np.uint8], *, timestamp: float | None = None) -> FaceResult:
        picture = check_picture(rgb)
        height, width = picture.shape[:2]
        side = max(height, width)
        positions = np.minimum((np.arange(self.size) + 0.5) * side / self.size, side - 1)
        rows, cols = positions.astype(int), positions.astype(int)
        square = np.zeros((self.size, self.size, 3), dtype=np.float32)
        inside_r, inside_c = rows < height, cols < width
        square[np.ix_(inside_r, inside_c)] = (
            picture[np.ix_(rows[inside_r], cols[inside_c])].astype(np.float32) / 255.0
        )
        found = self._session.run(self._outputs, {self._input: square[None]})
        landmarks, blendshapes, score = found[0], found[1], found[2]
        if float(np.asarray(score).reshape(-1)[0]) < self.min_confidence:
            raise FaceTrackingError(FaceError.NO_FACE, "no face found in the picture")
        points = np.asarray(landmarks, dtype=np.float32).reshape(LANDMARK_COUNT, 3).copy()
        points[:, 0] *= side / width
        points[:, 1] *= side / height
        points[:, 2] *= side / width
        weights = np.clip(np.asarray(blendshapes, dtype=np.float64).reshape(-1), 0.0, 1.0)
        named = dict(zip(ARKIT_BLENDSHAPES, weights.tolist(), strict=True))
        if len(found) > 3:
            matrix = np.asarray(found[3], dtype=np.float64).reshape(4, 4)
            head = HeadPose.from_rotation(matrix[:3, :3], matrix)
        else:
            head = HeadPose(0.0, 0.0, 0.0)
        result = FaceResult(points, named, head, width, height)
        check_face(picture, result, self.limits)
        return result

    def close(self) -> None:
        self._session = None
