"""Photos as the generator takes them: JPEG or PNG bytes decoded to RGB, within limits.

A photo is hostile input (a UE sends it): the decoder (Pillow) is told the largest picture it
may decode (:data:`MAX_PIXELS`, well under Pillow's own bomb limit) and a photo it cannot
read, or one too large, is refused with ``unsupported-image`` (the face model's code, TR
26.813 D.1.1) before any pixels are decoded. Pictures with an alpha channel or in grey are
converted to RGB; EXIF orientation is applied, as a phone's photo is stored sideways.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face.result import FaceError
from avatar_mf.stages.base_avatar.photo.errors import PhotoAvatarError

#: The largest photo decoded (pixels): 4096 x 4096, the face tracker's own limit a side.
MAX_PIXELS = 4096 * 4096
#: The largest photo accepted (encoded bytes).
MAX_BYTES = 16 * 1024 * 1024
#: Most photos per request (front, left, right, and a spare).
MAX_PHOTOS = 4


def decode_photo(data: bytes) -> NDArray[np.uint8]:
    """An (H, W, 3) uint8 RGB picture, or :class:`PhotoAvatarError` ``unsupported-image``."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > MAX_BYTES:
        raise PhotoAvatarError(
            FaceError.UNSUPPORTED_IMAGE, f"a photo of {len(data)} bytes is over {MAX_BYTES}"
        )
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as image:
            if image.width * image.height > MAX_PIXELS:
                raise PhotoAvatarError(
                    FaceError.UNSUPPORTED_IMAGE,
                    f"a photo of {image.width}x{image.height} pixels is over {MAX_PIXELS}",
                )
            upright = ImageOps.exif_transpose(image)
            rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, PhotoAvatarError):
            raise
        raise PhotoAvatarError(
            FaceError.UNSUPPORTED_IMAGE, f"not a JPEG or PNG photo: {exc}"
        ) from exc
    return np.ascontiguousarray(rgb)


def encode_png(rgb: NDArray[np.uint8]) -> bytes:
    """PNG bytes of an RGB picture (tests and tools send arrays as photos)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()
