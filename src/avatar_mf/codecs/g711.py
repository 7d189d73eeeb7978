"""G.711 PCMU (mu-law) and PCMA (A-law) with the MF's own tables (ITU-T G.711, RFC 3551 s4.5.14).

Both laws compand one linear sample into 8 bits: a sign, a 3-bit segment (a power-of-two range)
and a 4-bit step inside the segment.

* mu-law: the 14-bit magnitude plus a bias of 33 (132 at 16-bit scale) is split into segment
  and step; the code is inverted (all bits) on the wire, so silence is 0xFF.
* A-law: the 13-bit magnitude; segment 0 and 1 share one step size; the even bits are inverted
  (XOR 0x55) and the sign bit is 1 for positive values, so silence is 0xD5.

Encode uses a 65536-entry table indexed by the 16-bit sample (built once per codec object with
numpy), decode a 256-entry table. RTP clock 8 kHz, one octet per sample: 160 octets per 20 ms
(RFC 3551 table 4, static payload types 0 and 8). The MF's 16 kHz PCM is resampled with
:mod:`avatar_mf.codecs.resample`. Loss concealment: silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
import numpy.typing as npt

from avatar_mf.codecs.base import (
    FRAME_BYTES,
    AudioCodecSpec,
    CodecError,
    Fmtp,
    check_frame,
)
from avatar_mf.codecs.resample import Downsampler, Upsampler

_MU_BIAS = 0x84
_MU_CLIP = 32635

Table = npt.NDArray[np.uint8]
DecodeTable = npt.NDArray[np.int16]


def _all_samples() -> npt.NDArray[np.int32]:
    # Index i of an encode table is the uint16 view of the sample.
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _segment(value: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Position of the highest set bit above bit 7 (0..7) of a 15-bit magnitude."""
    seg = np.zeros_like(value)
    for s in range(1, 8):
        seg[value >= (0x100 << (s - 1))] = s
    return seg


@cache
def mulaw_encode_table() -> Table:
    """Linear 16-bit sample (uint16 view as index) -> mu-law code."""
    x = _all_samples()
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), _MU_CLIP) + _MU_BIAS
    seg = _segment(mag)
    step = (mag >> (seg + 3)) & 0x0F
    return np.asarray(~(sign | (seg << 4) | step) & 0xFF, dtype=np.uint8)


@cache
def mulaw_decode_table() -> DecodeTable:
    """mu-law code -> linear 16-bit sample."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    seg = (u >> 4) & 0x07
    mag = (((u & 0x0F) << 3) + _MU_BIAS) << seg
    mag -= _MU_BIAS
    return np.asarray(np.where(u & 0x80, -mag, mag), dtype=np.int16)


@cache
def alaw_encode_table() -> Table:
    """Linear 16-bit sample (uint16 view as index) -> A-law code."""
    x = _all_samples() >> 3  # 13-bit
    positive = x >= 0
    mag = np.where(positive, x, -x - 1)
    # Segment: 0 for mag < 32, then one per doubling, >= 8 means clip.
    seg = np.zeros_like(mag)
    for s in range(1, 9):
        seg[mag >= (0x20 << (s - 1))] = s
    step = np.where(seg < 2, (mag >> 1) & 0x0F, (mag >> np.maximum(seg, 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | step)
    mask = np.where(positive, 0xD5, 0x55)
    return np.asarray((code ^ mask) & 0xFF, dtype=np.uint8)


@cache
def alaw_decode_table() -> DecodeTable:
    """A-law code -> linear 16-bit sample."""
    a = np.arange(256, dtype=np.int32) ^ 0x55
    step = (a & 0x0F) << 4
    seg = (a >> 4) & 0x07
    mag = np.where(seg == 0, step + 8, (step + 0x108) << np.maximum(seg - 1, 0))
    return np.asarray(np.where(a & 0x80, mag, -mag), dtype=np.int16)


def encode_samples(pcm: bytes, table: Table) -> bytes:
    """Compand s16le ``pcm`` (any rate) with an encode table: one octet per sample."""
    idx = np.frombuffer(pcm, dtype="<u2")
    return bytes(table[idx].tobytes())


def decode_samples(payload: bytes, table: DecodeTable) -> bytes:
    """Expand G.711 octets with a decode table into s16le samples."""
    codes = np.frombuffer(payload, dtype=np.uint8)
    return bytes(table[codes].astype("<i2").tobytes())


class G711Encoder:
    """16 kHz PCM frames -> 8 kHz G.711 payloads (160 octets per 20 ms)."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._down = Downsampler(2)

    def encode(self, pcm20ms: bytes) -> bytes:
        check_frame(pcm20ms)
        return encode_samples(self._down.process(pcm20ms), self._table)


class G711Decoder:
    """8 kHz G.711 payloads -> 16 kHz PCM in whole 20 ms frames.

    A payload of any length is accepted (ptime 10, 30 ...); what does not fill a 20 ms frame
    waits for the next payload, so the output is always a whole number of frames.
    """

    def __init__(self, table: DecodeTable) -> None:
        self._table = table
        self._up = Upsampler(2)
        self._pending = b""

    def decode(self, payload: bytes) -> bytes:
        if not payload:
            raise CodecError("empty", "a G.711 payload has at least one sample")
        pcm = self._pending + self._up.process(decode_samples(payload, self._table))
        whole = len(pcm) - len(pcm) % FRAME_BYTES
        self._pending = pcm[whole:]
        return pcm[:whole]

    def conceal(self) -> bytes:
        # Silence through the filter, so that its history stays continuous.
        pcm = self._pending + self._up.process(bytes(FRAME_BYTES // 2))  # 160 samples at 8 kHz
        self._pending = pcm[FRAME_BYTES:]
        return pcm[:FRAME_BYTES]


class G711Codec:
    """PCMU or PCMA at 8000 Hz, no format parameters (RFC 3551 section 4.5.14)."""

    def __init__(self, name: str) -> None:
        upper = name.upper()
        if upper not in ("PCMU", "PCMA"):
            raise ValueError(f"not a G.711 law: {name}")
        self._spec = AudioCodecSpec(upper, 8000, 1, Fmtp())
        self._mu = upper == "PCMU"

    @property
    def spec(self) -> AudioCodecSpec:
        return self._spec

    def encoder(self) -> G711Encoder:
        return G711Encoder(mulaw_encode_table() if self._mu else alaw_encode_table())

    def decoder(self) -> G711Decoder:
        return G711Decoder(mulaw_decode_table() if self._mu else alaw_decode_table())

    def answer_fmtp(self, offered: Mapping[str, str]) -> dict[str, str]:
        return {}
