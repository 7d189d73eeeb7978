"""Photos as the generator takes them: JPEG or PNG bytes decoded to RGB, within limits.

A photo is hostile input (a UE sends it): the decoder (Pillow) is told the largest picture it
may decode (:data:`MAX_PIXELS`, well under Pillow's own bomb limit) and a photo it cannot
read, or one too large, is refused with ``unsupported-image`` (the face model's code, TR
26.813 D.1.1) before any pixels are decoded. Pictures with an alpha channel or in grey are
converted to RGB; EXIF orientation is applied, as a phone's photo is stored sideways.
:func:`photo_focal` reads the lens's focal length from the EXIF (CIPA DC-008 / EXIF 2.32:
``FocalLengthIn35mmFilm`` 0xA405, else ``FocalLength`` 0x920A over the sensor's size from
``FocalPlaneXResolution`` 0xA20E, ``FocalPlaneResolutionUnit`` 0xA210 and the picture's
``PixelXDimension``/``PixelYDimension`` 0xA002/0xA003), for the fit's perspective camera.
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


#: A focal length (35 mm equivalent, millimetres) outside this range is not believed.
FOCAL_RANGE = (8.0, 800.0)
#: EXIF tags (the Exif IFD, 0x8769).
EXIF_IFD = 0x8769
FOCAL_35MM, FOCAL_LENGTH = 0xA405, 0x920A
PLANE_X_RESOLUTION, PLANE_UNIT = 0xA20E, 0xA210
PIXEL_X, PIXEL_Y = 0xA002, 0xA003
#: FocalPlaneResolutionUnit: 2 inch, 3 centimetre (EXIF); 4 mm, 5 micrometre (DNG).
UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
FULL_FRAME_DIAGONAL = 43.27


def photo_focal(data: bytes) -> float | None:
    """The 35 mm equivalent focal length (millimetres) the photo's EXIF gives, or None (no
    EXIF, no focal length, a value outside :data:`FOCAL_RANGE`, an unreadable photo)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as image:
            exif = image.getexif().get_ifd(EXIF_IFD)
            size = float(np.hypot(image.width, image.height))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, TypeError):
        return None
    try:
        focal = float(exif.get(FOCAL_35MM) or 0.0)
        if not focal and exif.get(FOCAL_LENGTH) and exif.get(PLANE_X_RESOLUTION):
            # The sensor's diagonal from its pixels per unit, for the recorded picture size
            # (the original's when given: a resized copy keeps the sensor).
            unit = UNIT_MM.get(int(exif.get(PLANE_UNIT, 2)), 25.4)
            if exif.get(PIXEL_X) and exif.get(PIXEL_Y):
                size = float(np.hypot(float(exif[PIXEL_X]), float(exif[PIXEL_Y])))
            diagonal = size / float(exif[PLANE_X_RESOLUTION]) * unit
            focal = float(exif[FOCAL_LENGTH]) * FULL_FRAME_DIAGONAL / diagonal
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return focal if FOCAL_RANGE[0] <= focal <= FOCAL_RANGE[1] else None


def encode_png(rgb: NDArray[np.uint8], focal_35mm: float | None = None) -> bytes:
    """PNG bytes of an RGB picture (tests and tools send arrays as photos), with EXIF
    ``FocalLengthIn35mmFilm`` when ``focal_35mm`` is given (rounded: the tag is an integer)."""
    from PIL import Image

    out = io.BytesIO()
    picture = Image.fromarray(rgb)
    if focal_35mm is None:
        picture.save(out, format="PNG")
    else:
        exif = Image.Exif()
        exif[EXIF_IFD] = {FOCAL_35MM: round(focal_35mm)}  # (get_ifd's is not written to PNG)
        picture.save(out, format="PNG", exif=exif)
    return out.getvalue()
