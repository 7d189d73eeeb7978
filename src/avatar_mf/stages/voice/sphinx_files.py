"""Readers of CMU Sphinx-3 acoustic-model files (build time: the tandem front end's model).

The voice stage scores every 10 ms hop against the Gaussian mixtures of pocketsphinx's US
English acoustic model (``model/en-us/en-us/`` of the pocketsphinx 5.1.1 source distribution,
CMU BSD-style licence). Two of its files are read here, from their formats as pocketsphinx's
C sources define them (``src/ms_gauden.c`` with ``src/util/bio.c``; ``src/bin_mdef.c``):

* ``means`` / ``variances``: a text header (``s3`` line, ``name value`` lines, ``endhdr``
  line), the byte-order magic ``0x11223344`` as an int32, then int32 counts (codebooks,
  feature streams, Gaussians per codebook, the length of each stream's vectors, the number
  of floats), the float32 data codebook by stream by Gaussian by dimension, and, when the
  header says ``chksum0``, a uint32 checksum of everything after the magic: per int32 or
  float32 word ``sum = rotl(sum, 20) + word`` (mod 2^32). :func:`read_gaussians`.
* ``mdef`` (binary, ``BMDF``): an int32 format version, a length-prefixed format description,
  ten int32 counts (base phones, phones, ...), then the base (context-independent) phone
  names as NUL-terminated strings; in a phonetically-tied model (``-model ptm``) codebook
  ``i`` belongs to base phone ``i``. :func:`read_base_phones`.

Byte order follows the magic (files of either order read alike). Pure functions, no I/O
beyond the bytes given.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

#: The Sphinx-3 byte-order magic (``BYTE_ORDER_MAGIC`` in pocketsphinx's bio.h).
BYTE_ORDER_MAGIC: Final = 0x11223344
_END_HEADER: Final = b"endhdr\n"
_MDEF_MAGIC: Final = b"BMDF"


class SphinxFormatError(ValueError):
    """The bytes are not a well-formed Sphinx-3 file of the expected kind."""


@dataclass(frozen=True, slots=True)
class Gaussians:
    """One parameter file: ``values`` (codebooks, streams, densities, dims) float32."""

    header: dict[str, str]
    values: NDArray[np.float32]
    #: The checksum the file carries (None when its header declares none).
    checksum: int | None


def checksum32(words: NDArray[np.uint32], start: int = 0) -> int:
    """pocketsphinx's running checksum over 32-bit words: ``sum = rotl(sum, 20) + w``."""
    total = start
    for word in words.tolist():
        total = (((total << 20) | (total >> 12)) + word) & 0xFFFFFFFF
    return total


def read_gaussians(data: bytes) -> Gaussians:
    """Parse a ``means`` or ``variances`` file; its checksum and sizes are verified."""
    end = data.find(_END_HEADER)
    if not data.startswith(b"s3\n") or end < 0:
        raise SphinxFormatError("no s3 header")
    header: dict[str, str] = {}
    for line in data[3:end].decode("ascii", "replace").splitlines():
        name, _, value = line.strip().partition(" ")
        if name:
            header[name] = value.strip()
    body = data[end + len(_END_HEADER) :]
    if len(body) < 4:
        raise SphinxFormatError("truncated before the byte-order magic")
    order = "<" if struct.unpack("<I", body[:4])[0] == BYTE_ORDER_MAGIC else ">"
    if struct.unpack(order + "I", body[:4])[0] != BYTE_ORDER_MAGIC:
        raise SphinxFormatError("bad byte-order magic")
    words = np.frombuffer(body[4 : 4 + (len(body) - 4) // 4 * 4], dtype=order + "u4")
    if words.size < 4:
        raise SphinxFormatError("truncated counts")
    codebooks, streams, densities = (int(v) for v in words[:3])
    if not (0 < codebooks < 1 << 16 and 0 < streams < 64 and 0 < densities < 1 << 16):
        raise SphinxFormatError(f"implausible counts {codebooks} x {streams} x {densities}")
    if words.size < 4 + streams:
        raise SphinxFormatError("truncated stream lengths")
    lengths = [int(v) for v in words[3 : 3 + streams]]
    if len(set(lengths)) != 1:
        raise SphinxFormatError(f"streams of unequal lengths {lengths} are not supported")
    count = int(words[3 + streams])
    if count != codebooks * densities * sum(lengths):
        raise SphinxFormatError(f"{count} floats, not {codebooks} x {densities} x {sum(lengths)}")
    first = 4 + streams
    present = "chksum0" in header
    expected_words = first + count + (1 if present else 0)
    if words.size != expected_words or (len(body) - 4) % 4:
        raise SphinxFormatError(f"{len(body) - 4} bytes after the magic, not {4 * expected_words}")
    checksum: int | None = None
    if present:
        checksum = int(words[-1])
        computed = checksum32(words[: first + count])
        if computed != checksum:
            raise SphinxFormatError(f"checksum {computed:08x}, the file says {checksum:08x}")
    values = (
        words[first : first + count]
        .view(order + "f4")
        .astype(np.float32)
        .reshape(codebooks, streams, densities, lengths[0])
    )
    return Gaussians(header, values, checksum)


def read_base_phones(data: bytes) -> tuple[str, ...]:
    """The base (context-independent) phone names of a binary ``mdef``, codebook order."""
    if data[:4] != _MDEF_MAGIC:
        raise SphinxFormatError("not a binary mdef (BMDF)")
    try:
        (description,) = struct.unpack("<i", data[8:12])
        offset = 12 + description
        counts = struct.unpack("<10i", data[offset : offset + 40])
    except struct.error as exc:
        raise SphinxFormatError("truncated mdef") from exc
    base = counts[0]
    if not 0 < base < 256:
        raise SphinxFormatError(f"implausible {base} base phones")
    names: list[str] = []
    position = offset + 40
    for _ in range(base):
        stop = data.find(b"\0", position)
        if stop < 0:
            raise SphinxFormatError("truncated phone names")
        names.append(data[position:stop].decode("ascii"))
        position = stop + 1
    return tuple(names)
