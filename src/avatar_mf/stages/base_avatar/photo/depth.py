"""Depth images paired with photos (RGB-D, TR 26.813 D.1.1): 16-bit greyscale PNG, millimetres.

A depth image is hostile input like its photo (:mod:`.images`): it must be a PNG (nothing else
is decoded), of at most :data:`MAX_BYTES` and :data:`~.images.MAX_PIXELS`, 16-bit greyscale
(Pillow mode ``I;16``: one channel, one unsigned 16-bit sample per pixel, PNG colour type 0
at bit depth 16, ISO/IEC 15948 11.2.2), and exactly its photo's size (the same camera, pixel
for pixel). Each sample is the distance along the camera's axis in millimetres; 0 is
unknown (a sensor's hole). Anything else is refused with :data:`BAD_DEPTH`, before the
pixels are decoded where the header tells.

:func:`landmark_depths` reads the depth under each landmark: the median of the known samples
in a small window around its pixel (a sensor's edge and holes), NaN where none is known.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray

from avatar_mf.stages.base_avatar.photo.errors import PhotoAvatarError
from avatar_mf.stages.base_avatar.photo.images import MAX_PIXELS

#: The code of a depth image the generator cannot use (not a 16-bit greyscale PNG, another
#: size than its photo's, too large).
BAD_DEPTH = "bad-depth"
#: The largest depth image accepted (encoded bytes).
MAX_BYTES = 16 * 1024 * 1024
#: Pillow's modes of a 16-bit greyscale PNG (little- and big-endian samples).
DEPTH_MODES = frozenset({"I;16", "I;16B"})
#: The window (pixels a side, odd) a landmark's depth is the median of.
WINDOW = 5

F64 = NDArray[np.float64]


def decode_depth(data: bytes, size: tuple[int, int], *, photo: int | None = None
                 ) -> NDArray[np.uint16]:
    """An (H, W) uint16 array of millimetres (0: unknown) for a photo of ``size`` (width,
    height), or :class:`PhotoAvatarError` :data:`BAD_DEPTH`."""
    from PIL import Image, UnidentifiedImageError

    def refuse(message: str) -> PhotoAvatarError:
        return PhotoAvatarError(BAD_DEPTH, f"depth image: {message}", photo=photo)

    if len(data) > MAX_BYTES:
        raise refuse(f"{len(data)} bytes is over {MAX_BYTES}")
    try:
        with Image.open(io.BytesIO(data), formats=("PNG",)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise refuse(f"{image.width}x{image.height} pixels is over {MAX_PIXELS}")
            if image.mode not in DEPTH_MODES:
                raise refuse(f"a 16-bit greyscale PNG is needed, not mode {image.mode}")
            if image.size != size:
                raise refuse(
                    f"{image.width}x{image.height} pixels, its photo is {size[0]}x{size[1]}"
                )
            depth = np.asarray(image, dtype=np.uint16)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, PhotoAvatarError):
            raise
        raise refuse(f"not a PNG: {exc}") from exc
    return np.ascontiguousarray(depth)


def landmark_depths(depth: NDArray[np.uint16], pixels: F64) -> F64:
    """(K,) millimetres under each of ``pixels`` (K, 2) (x right, y down): the median of the
    known samples in a :data:`WINDOW` square around it; NaN where none is known or the pixel
    is outside the picture."""
    height, width = depth.shape
    half = WINDOW // 2
    out = np.full(len(pixels), np.nan)
    for k, (x, y) in enumerate(np.round(pixels).astype(np.int64)):
        if not (0 <= x < width and 0 <= y < height):
            continue
        window = depth[max(y - half, 0) : y + half + 1, max(x - half, 0) : x + half + 1]
        known = window[window > 0]
        if known.size:
            out[k] = float(np.median(known))
    return out
