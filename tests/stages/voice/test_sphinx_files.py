"""Readers of Sphinx-3 model files: byte order, sizes and the files' own checksums.

The files are built here by hand from the format pocketsphinx's sources define (text header,
byte-order magic, int32 counts, float32 data, the rotate-by-20-and-add checksum), in both
byte orders; a change of one byte of data is caught by the checksum."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from avatar_mf.stages.voice.sphinx_files import (
    SphinxFormatError,
    read_base_phones,
    read_gaussians,
)


def _s3(values: np.ndarray, order: str = "<", *, checksum: bool = True) -> bytes:
    codebooks, streams, densities, dims = values.shape
    header = b"s3\nversion 1.0\n" + (b"chksum0 yes\n" if checksum else b"") + b"endhdr\n"
    ints = [codebooks, streams, densities, *([dims] * streams), values.size]
    body = struct.pack(f"{order}{len(ints)}i", *ints) + values.astype(order + "f4").tobytes()
    words = struct.unpack(f"{order}{len(body) // 4}I", body)
    total = 0
    for word in words:  # pocketsphinx's chksum_accum for 4-byte elements
        total = ((total << 20 | total >> 12) + word) & 0xFFFFFFFF
    tail = struct.pack(order + "I", total) if checksum else b""
    return header + struct.pack(order + "I", 0x11223344) + body + tail


@pytest.fixture
def values() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((4, 3, 8, 13)).astype(np.float32)


@pytest.mark.parametrize("order", ["<", ">"])
def test_either_byte_order_reads_the_same_values(values: np.ndarray, order: str) -> None:
    got = read_gaussians(_s3(values, order))
    assert got.values.shape == (4, 3, 8, 13) and got.values.dtype == np.float32
    assert np.array_equal(got.values, values)
    assert got.header == {"version": "1.0", "chksum0": "yes"}
    assert got.checksum is not None


def test_a_file_without_checksum_reads(values: np.ndarray) -> None:
    got = read_gaussians(_s3(values, checksum=False))
    assert got.checksum is None and np.array_equal(got.values, values)


def test_one_changed_byte_of_data_is_caught_by_the_checksum(values: np.ndarray) -> None:
    data = bytearray(_s3(values))
    data[len(data) // 2] ^= 0x10
    with pytest.raises(SphinxFormatError, match="checksum"):
        read_gaussians(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:-9],  # truncated
        lambda d: d + b"\0\0\0\0",  # trailing data
        lambda d: d.replace(b"s3\n", b"s4\n", 1),  # not s3
        lambda d: d.replace(struct.pack("<I", 0x11223344), b"\1\2\3\4", 1),  # bad magic
    ],
)
def test_malformed_files_are_refused(values: np.ndarray, damage: object) -> None:
    with pytest.raises(SphinxFormatError):
        read_gaussians(damage(_s3(values)))  # type: ignore[operator]


def test_a_count_that_disagrees_with_the_dimensions_is_refused(values: np.ndarray) -> None:
    data = _s3(values, checksum=False)
    start = data.index(b"endhdr\n") + 7 + 4
    changed = data[:start] + struct.pack("<i", 5) + data[start + 4 :]  # 5 codebooks, data of 4
    with pytest.raises(SphinxFormatError):
        read_gaussians(changed)


def test_base_phone_names_of_a_binary_mdef() -> None:
    description = b"BEGIN FILE FORMAT DESCRIPTION\nanything\0\0\0"
    counts = struct.pack("<10i", 3, 10, 3, 9, 20, 3, 5, 3, 4, 2)
    data = b"BMDF" + struct.pack("<ii", 1, len(description)) + description + counts
    data += b"AA\0SIL\0ZH\0" + b"\0" * 16
    assert read_base_phones(data) == ("AA", "SIL", "ZH")
    with pytest.raises(SphinxFormatError):
        read_base_phones(b"TMDF" + data[4:])
    with pytest.raises(SphinxFormatError):
        read_base_phones(data[: data.index(b"ZH")])
