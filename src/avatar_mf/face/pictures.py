"""Pictures as the face trackers take them: decoded video (I420), RGB, or JPEG/PNG bytes.

A :class:`Picture` is what crosses to a tracking worker (:mod:`.pool`): the bytes as they
arrived and what they are, so the conversion to RGB (:func:`to_rgb`) runs in the worker, never
on the event loop:

* ``i420``: one decoded picture of an RTP video stream (``yuv420p``: Y, then U and V at half
  width and height; ``codecs.video.Picture``'s layout), converted by FFmpeg's swscale through
  PyAV (BT.601 limited range, what the product's decoders give);
* ``rgb``: ``width * height * 3`` bytes, rows top first;
* ``image``: a JPEG or PNG file (Pillow), at most :data:`MAX_IMAGE_BYTES` and 4096 x 4096.

Anything else is ``unsupported-image`` (:class:`~avatar_mf.face.result.FaceTrackingError`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from avatar_mf.face.result import FaceError, FaceTrackingError
from avatar_mf.face.tracker import MAX_SIDE, check_picture

#: Largest JPEG/PNG file accepted, bytes.
MAX_IMAGE_BYTES = 4 * 1024 * 1024

PictureKind = Literal["i420", "rgb", "image"]


@dataclass(frozen=True, slots=True)
class Picture:
    """A picture to track (see the module docstring); ``width``/``height`` are ignored for
    ``image`` (the file says)."""

    kind: PictureKind
    data: bytes = field(repr=False)
    width: int = 0
    height: int = 0


def to_rgb(picture: Picture) -> NDArray[np.uint8]:
    """``picture`` as a (H, W, 3) ``uint8`` RGB array, or ``unsupported-image``."""
    if picture.kind == "image":
        return decode_image(picture.data)
    width, height = picture.width, picture.height
    if picture.kind == "rgb":
        if width <= 0 or height <= 0 or len(picture.data) != width * height * 3:
            raise _bad(f"{len(picture.data)} bytes is not a {width}x{height} RGB picture")
        rgb = np.frombuffer(picture.data, dtype=np.uint8).reshape(height, width, 3)
        return check_picture(rgb)
    if picture.kind == "i420":
        return i420_to_rgb(picture.data, width, height)
    raise _bad(f"unknown picture kind {picture.kind!r}")


def i420_to_rgb(data: bytes, width: int, height: int) -> NDArray[np.uint8]:
    """A planar I420 picture (even sides) as RGB, by swscale (~1 ms for 640x480)."""
    if (
        width <= 0
        or height <= 0
        or width % 2
        or height % 2
        or len(data) != width * height * 3 // 2
    ):
        raise _bad(f"{len(data)} bytes is not a {width}x{height} I420 picture")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise _bad(f"pictures are limited to {MAX_SIDE} pixels a side")
    import av

    planes = np.frombuffer(data, dtype=np.uint8).reshape(height * 3 // 2, width)
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    return check_picture(rgb)


def decode_image(data: bytes) -> NDArray[np.uint8]:
    """A JPEG or PNG file as (H, W, 3) RGB; ``unsupported-image`` for anything else."""
    if len(data) > MAX_IMAGE_BYTES:
        raise _bad(f"images are limited to {MAX_IMAGE_BYTES} bytes")
    if not (data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"):
        raise _bad("only JPEG and PNG pictures")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width > MAX_SIDE or image.height > MAX_SIDE:
                raise ValueError(f"more than {MAX_SIDE} pixels a side")
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _bad(f"cannot decode the picture: {exc}") from exc
    return check_picture(rgb)


def _bad(message: str) -> FaceTrackingError:
    return FaceTrackingError(FaceError.UNSUPPORTED_IMAGE, message)
