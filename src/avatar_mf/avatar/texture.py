"""The avatar's base colour image: header checks and decoding (glTF 2.0 section 3.8-3.9).

glTF allows ``image/png`` and ``image/jpeg`` images (3.8.2, 5.17). An avatar is untrusted
input, so :func:`check_texture` reads only the image's header -- the PNG signature and IHDR
chunk (PNG 3rd edition 5.2, 11.2.2), or the JPEG SOI marker and the first SOFn frame header
(ITU-T T.81 B.2.2) -- and refuses, before anything is decoded, an image of another type, a
truncated header, or one larger than :class:`~avatar_mf.avatar.limits.GlbLimits` allows (bytes,
width, height). :func:`decode_texture` decodes a checked image with Pillow into sRGB RGB(A)
pixels (for the renderer); a body that fails to decode is refused with the same code.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from avatar_mf.avatar.errors import AvatarFormatError, ErrorCode
from avatar_mf.avatar.limits import GlbLimits

PNG = "image/png"
JPEG = "image/jpeg"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (T.81 table B.1): baseline, extended, progressive, lossless.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


@dataclass(frozen=True, slots=True)
class TextureInfo:
    """What an image's header says: its media type and size in pixels."""

    mime_type: str
    width: int
    height: int


def _fail(message: str) -> AvatarFormatError:
    return AvatarFormatError(ErrorCode.GLB_TEXTURE, message)


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _fail("PNG without an IHDR chunk first")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise _fail(f"JPEG marker expected at byte {at}")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        if marker in (0xD9, 0xDA):
            break  # end of image or start of scan before any frame header
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if length < 2:
            raise _fail(f"JPEG segment length {length} at byte {at}")
        if marker in _SOF:
            if at + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return int(width), int(height)
        at += 2 + length
    raise _fail("JPEG without a frame header")


def check_texture(data: bytes, limits: GlbLimits | None = None) -> TextureInfo:
    """The type and size of a PNG or JPEG image, from its header; raises
    :class:`AvatarFormatError` ``glb-texture`` for anything else, or past ``limits``."""
    limits = limits or GlbLimits()
    if len(data) > limits.max_texture_bytes:
        raise _fail(f"{len(data)} bytes of image (at most {limits.max_texture_bytes})")
    if data.startswith(_PNG_SIGNATURE):
        mime, (width, height) = PNG, _png_size(data)
    elif data.startswith(b"\xff\xd8"):
        mime, (width, height) = JPEG, _jpeg_size(data)
    else:
        raise _fail("the image is neither PNG nor JPEG")
    side = limits.max_texture_side
    if not (1 <= width <= side and 1 <= height <= side):
        raise _fail(f"a {width}x{height} image (1..{side} pixels a side)")
    return TextureInfo(mime, width, height)


def decode_texture(data: bytes, limits: GlbLimits | None = None) -> NDArray[np.uint8]:
    """(H, W, 3 or 4) uint8 sRGB pixels of a checked PNG or JPEG image."""
    info = check_texture(data, limits)
    from PIL import Image

    try:
        kind = "PNG" if info.mime_type == PNG else "JPEG"
        with Image.open(io.BytesIO(data), formats=[kind]) as opened:
            if opened.size != (info.width, info.height):
                raise _fail(f"the image decodes to {opened.size}, its header says otherwise")
            rgb = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
            pixels = np.asarray(rgb, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, AvatarFormatError):
            raise
        raise _fail(f"the image does not decode: {exc}") from None
    return pixels


def encode_png(pixels: NDArray[np.uint8]) -> bytes:
    """PNG bytes of (H, W, 3 or 4) uint8 pixels."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()
