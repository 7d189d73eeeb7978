"""PNG files (ISO/IEC 15948, RFC 2083) of RGBA or RGB uint8 pictures, with zlib only.

:func:`encode_png` writes 8-bit truecolour (with alpha for 4 channels), one IDAT, filter
type 1 (Sub) on every row (a fair size for rendered pictures at no cost); :func:`decode_png`
reads back 8-bit truecolour PNGs, non-interlaced, with any of the five filters (what this
module and most encoders write), so tests can compare with committed reference pictures.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from numpy.typing import NDArray

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {3: 2, 4: 6}  # channels -> PNG colour type (truecolour, truecolour + alpha)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: NDArray[np.uint8], *, level: int = 6) -> bytes:
    """The PNG bytes of an (H, W, 3|4) uint8 picture (rows top first)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in _COLOUR_TYPES:
        raise ValueError(f"expected (H, W, 3|4) uint8, got {image.shape} {image.dtype}")
    height, width, channels = image.shape
    rows = np.ascontiguousarray(image).reshape(height, width * channels)
    sub = rows.copy()
    sub[:, channels:] = rows[:, channels:] - rows[:, :-channels]  # filter 1: x - left (mod 256)
    raw = np.empty((height, 1 + width * channels), dtype=np.uint8)
    raw[:, 0] = 1
    raw[:, 1:] = sub
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> NDArray[np.uint8]:
    """An (H, W, 3|4) uint8 picture from 8-bit truecolour PNG bytes (ValueError otherwise)."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(SIGNATURE)
    idat = bytearray()
    header: tuple[int, ...] | None = None
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError("only 8-bit non-interlaced truecolour PNGs are read")
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(bytes(idat)), dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: a running sum along the row, per channel, modulo 256
            sums = line.reshape(width, channels).astype(np.int64).cumsum(axis=0)
            row = (sums & 0xFF).astype(np.uint8).reshape(stride)
        elif kind == 2:
            row = line + previous
        else:
            row = line.astype(np.int64)
            up = previous.astype(np.int64)
            for x in range(stride):
                left = int(row[x - channels]) if x >= channels else 0
                if kind == 1:
                    row[x] = (row[x] + left) & 0xFF
                elif kind == 3:
                    row[x] = (row[x] + (left + int(up[x])) // 2) & 0xFF
                elif kind == 4:
                    upleft = int(up[x - channels]) if x >= channels else 0
                    row[x] = (row[x] + _paeth(left, int(up[x]), upleft)) & 0xFF
                else:
                    raise ValueError(f"bad PNG filter type {kind}")
            row = row.astype(np.uint8)
        out[y] = row
        previous = row
    return out.reshape(height, width, channels)
