"""Is a picture good enough to build or drive a face from? Pure numpy checks.

A tracker can find a face in a picture that is too dark or too blurred to take a likeness from
(issue 14's photo avatar) or too small to read expressions from. These checks look at the
face's own region (its landmark box, widened by a quarter), not the whole picture, so a dark
background or a blurred backdrop does not count against a well-lit, sharp face:

* **size**: the larger side of the landmark box, in pixels (``min_face_pixels``);
* **darkness**: the mean luma (ITU-R BT.601 weights, 0..255) of the face region
  (``min_luma``);
* **blur**: the variance of the 4-neighbour Laplacian of the face region's luma, after scaling
  the region to 128 pixels across so the figure does not depend on the face's size
  (``min_sharpness``). A sharp photograph scores in the hundreds; a Gaussian blur of a few
  percent of the face's width brings it to single figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face.result import FaceError, FaceResult, FaceTrackingError

#: Side, in pixels, the face region is resampled to before measuring sharpness.
SHARPNESS_SIDE = 128


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """Thresholds for :func:`check_face` (0 turns a check off)."""

    min_face_pixels: float = 48.0
    min_luma: float = 40.0
    min_sharpness: float = 0.0

    def __post_init__(self) -> None:
        if self.min_face_pixels < 0 or self.min_luma < 0 or self.min_sharpness < 0:
            raise ValueError("quality limits must be >= 0")


#: For stills a likeness is taken from (issue 14): a blur check too.
PHOTO_LIMITS = QualityLimits(min_face_pixels=96.0, min_luma=40.0, min_sharpness=50.0)


def luma(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """BT.601 luma of an (H, W, 3) picture, 0..255."""
    pixels = rgb.astype(np.float32)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    out: NDArray[np.float32] = red * 0.299 + green * 0.587 + blue * 0.114
    return out


def face_region(rgb: NDArray[np.uint8], face: FaceResult) -> NDArray[np.uint8]:
    """The face's landmark box widened by a quarter on each side, clipped to the picture."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = face.box
    pad_x, pad_y = (x1 - x0) * 0.25, (y1 - y0) * 0.25
    left = max(0, int((x0 - pad_x) * width))
    right = min(width, int(np.ceil((x1 + pad_x) * width)))
    top = max(0, int((y0 - pad_y) * height))
    bottom = min(height, int(np.ceil((y1 + pad_y) * height)))
    return rgb[top:max(bottom, top + 1), left:max(right, left + 1)]


def sharpness(gray: NDArray[np.float32]) -> float:
    """Variance of the Laplacian of ``gray`` resampled (nearest) to SHARPNESS_SIDE across."""
    height, width = gray.shape
    if height < 3 or width < 3:
        return 0.0
    scale = SHARPNESS_SIDE / max(height, width)
    rows = np.clip((np.arange(max(3, round(height * scale))) / scale).astype(int), 0, height - 1)
    cols = np.clip((np.arange(max(3, round(width * scale))) / scale).astype(int), 0, width - 1)
    g = gray[np.ix_(rows, cols)].astype(np.float64)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def check_face(rgb: NDArray[np.uint8], face: FaceResult, limits: QualityLimits) -> None:
    """Raise :class:`FaceTrackingError` (face-too-small, too-dark, too-blurred) when ``face``
    in ``rgb`` falls short of ``limits``."""
    size = face.face_pixels
    if limits.min_face_pixels and size < limits.min_face_pixels:
        raise FaceTrackingError(
            FaceError.FACE_TOO_SMALL,
            f"the face is {size:.0f} pixels across; at least {limits.min_face_pixels:.0f} needed",
        )
    if not (limits.min_luma or limits.min_sharpness):
        return
    gray = luma(face_region(rgb, face))
    brightness = float(gray.mean())
    if limits.min_luma and brightness < limits.min_luma:
        raise FaceTrackingError(
            FaceError.TOO_DARK,
            f"the face is too dark (mean luma {brightness:.0f} of 255, at least "
            f"{limits.min_luma:.0f} needed)",
        )
    if limits.min_sharpness:
        score = sharpness(gray)
        if score < limits.min_sharpness:
            raise FaceTrackingError(
                FaceError.TOO_BLURRED,
                f"the face is too blurred (sharpness {score:.1f}, at least "
                f"{limits.min_sharpness:.1f} needed)",
            )
