"""The AMR and AMR-WB RTP payload format (RFC 4867 section 4) and storage frames (section 5).

A payload is a payload header (the CMR: codec mode the sender wants to *receive*, 15 = none),
a table of contents (one entry per frame: F = another entry follows, FT = frame type, Q =
frame quality) and the speech frames, in one of two layouts:

* **bandwidth-efficient** (section 4.3): CMR 4 bits, ToC entries 6 bits each, the frames' bits
  back to back, zero bits at the end up to an octet boundary;
* **octet-aligned** (section 4.4): CMR in the upper 4 bits of the first octet, each ToC entry
  in one octet (2 padding bits), each frame padded to an octet.

Frame types and sizes in bits (RFC 4867 tables 1a/1b, 3GPP TS 26.101 / TS 26.201):

* AMR: FT 0-7 speech (4.75 ... 12.2 kbit/s), 8 SID, 9-14 not usable here, 15 NO_DATA;
* AMR-WB: FT 0-8 speech (6.60 ... 23.85 kbit/s), 9 SID, 10-13 future use, 14 SPEECH_LOST,
  15 NO_DATA.

A packet with a ToC frame type the RFC does not allow for the codec (section 4.3.2: AMR 9-14,
AMR-WB 10-13) is discarded whole, as is any packet whose frames do not fit or that has more
than padding left over: :class:`~avatar_mf.codecs.base.CodecError`.

The speech bits inside a frame are carried in the order of their subjective importance (the
"sorted" order of TS 26.101 / TS 26.201 annex, class A bits first): that is the order codecs
produce and consume in the RFC 4867 section 5 **storage format** (one header octet
``0 FT(4) Q 0 0`` then the frame's bits padded to an octet), which both libvo-amrwbenc and
FFmpeg use. The payload code therefore moves whole bit strings and never reorders bits.
Interleaving, frame CRCs and robust sorting (sections 4.4.2.1, 4.4.3) are not supported: the
registry refuses a format offering them.
"""

from __future__ import annotations

from dataclasses import dataclass

from avatar_mf.codecs.base import CodecError

#: Bits per frame type, AMR (narrowband): FT 0-7 speech, 8 SID.
AMR_NB_BITS: tuple[int, ...] = (95, 103, 118, 134, 148, 159, 204, 244, 39)
#: Bits per frame type, AMR-WB: FT 0-8 speech, 9 SID.
AMR_WB_BITS: tuple[int, ...] = (132, 177, 253, 285, 317, 365, 397, 461, 477, 40)
#: Bit rates of the speech modes (bit/s).
AMR_NB_RATES: tuple[int, ...] = (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200)
AMR_WB_RATES: tuple[int, ...] = (6600, 8850, 12650, 14250, 15850, 18250, 19850, 23050, 23850)

NO_REQUEST = 15
SPEECH_LOST = 14  # AMR-WB only
NO_DATA = 15


def frame_bits(wideband: bool, ft: int) -> int:
    """Bits of a frame of type ``ft``; raise :class:`CodecError` for a type not allowed."""
    table = AMR_WB_BITS if wideband else AMR_NB_BITS
    if ft < len(table):
        return table[ft]
    if ft == NO_DATA or (wideband and ft == SPEECH_LOST):
        return 0
    raise CodecError("frame_type", f"FT {ft} not allowed for {'AMR-WB' if wideband else 'AMR'}")


def speech_modes(wideband: bool) -> int:
    """How many speech modes the codec has (AMR 8, AMR-WB 9)."""
    return len(AMR_WB_RATES) if wideband else len(AMR_NB_RATES)


@dataclass(frozen=True, slots=True)
class AmrFrame:
    """One frame: frame type, quality bit, and its bits left-aligned in ``ceil(bits/8)`` octets."""

    ft: int
    q: bool = True
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class AmrPayload:
    """A parsed RFC 4867 payload: the CMR and the frames in ToC order."""

    cmr: int
    frames: tuple[AmrFrame, ...]


def _check_frame(wideband: bool, frame: AmrFrame) -> int:
    bits = frame_bits(wideband, frame.ft)
    if len(frame.data) != (bits + 7) // 8:
        raise CodecError("frame_size", f"FT {frame.ft} needs {(bits + 7) // 8} octets")
    return bits


def _check_cmr(wideband: bool, cmr: int) -> None:
    if cmr != NO_REQUEST and not 0 <= cmr < speech_modes(wideband):
        raise CodecError("cmr", f"CMR {cmr} is not a speech mode")


def parse_amr(data: bytes, *, wideband: bool, octet_aligned: bool) -> AmrPayload:
    """Parse one payload; :class:`CodecError` when malformed (the packet is discarded)."""
    if not data:
        raise CodecError("empty", "an AMR payload has at least a CMR and one ToC entry")
    return (_parse_octet if octet_aligned else _parse_efficient)(data, wideband)


def _parse_octet(data: bytes, wideband: bool) -> AmrPayload:
    cmr = data[0] >> 4
    _check_cmr(wideband, cmr)
    toc: list[tuple[int, bool]] = []
    pos = 1
    while True:
        if pos >= len(data):
            raise CodecError("toc", "table of contents runs past the payload")
        entry = data[pos]
        pos += 1
        toc.append(((entry >> 3) & 0x0F, bool(entry & 0x04)))
        if not entry & 0x80:
            break
    frames = []
    for ft, q in toc:
        size = (frame_bits(wideband, ft) + 7) // 8
        if pos + size > len(data):
            raise CodecError("frame_size", f"FT {ft} frame truncated")
        frames.append(AmrFrame(ft, q, bytes(data[pos : pos + size])))
        pos += size
    if pos != len(data):
        raise CodecError("trailing", f"{len(data) - pos} octets after the last frame")
    return AmrPayload(cmr, tuple(frames))


def _parse_efficient(data: bytes, wideband: bool) -> AmrPayload:
    total = len(data) * 8
    value = int.from_bytes(data, "big")

    def bits(pos: int, n: int) -> int:
        if pos + n > total:
            raise CodecError("frame_size", "payload truncated")
        return (value >> (total - pos - n)) & ((1 << n) - 1)

    cmr = bits(0, 4)
    _check_cmr(wideband, cmr)
    pos = 4
    toc: list[tuple[int, bool]] = []
    while True:
        if pos + 6 > total:
            raise CodecError("toc", "table of contents runs past the payload")
        entry = bits(pos, 6)
        pos += 6
        toc.append(((entry >> 1) & 0x0F, bool(entry & 1)))
        if not entry & 0x20:
            break
    frames = []
    for ft, q in toc:
        n = frame_bits(wideband, ft)
        chunk = bits(pos, n) if n else 0
        pos += n
        size = (n + 7) // 8
        frames.append(AmrFrame(ft, q, (chunk << (size * 8 - n)).to_bytes(size, "big")))
    if total - pos >= 8:
        raise CodecError("trailing", f"{total - pos} bits after the last frame")
    return AmrPayload(cmr, tuple(frames))


def build_amr(payload: AmrPayload, *, wideband: bool, octet_aligned: bool) -> bytes:
    """The wire form of ``payload``; :class:`CodecError` for inconsistent frames."""
    if not payload.frames:
        raise CodecError("empty", "a payload carries at least one frame")
    _check_cmr(wideband, payload.cmr)
    sizes = [_check_frame(wideband, f) for f in payload.frames]
    last = len(payload.frames) - 1
    if octet_aligned:
        out = bytearray([payload.cmr << 4])
        for i, f in enumerate(payload.frames):
            out.append((0x80 if i < last else 0) | (f.ft << 3) | (0x04 if f.q else 0))
        for f in payload.frames:
            out += f.data
        return bytes(out)
    value, width = payload.cmr, 4
    for i, f in enumerate(payload.frames):
        value = (value << 6) | (0x20 if i < last else 0) | (f.ft << 1) | (1 if f.q else 0)
        width += 6
    for f, n in zip(payload.frames, sizes, strict=True):
        if n:
            chunk = int.from_bytes(f.data, "big") >> (len(f.data) * 8 - n)
            value = (value << n) | chunk
            width += n
    pad = -width % 8
    return (value << pad).to_bytes((width + pad) // 8, "big")


def storage_frame(frame: AmrFrame) -> bytes:
    """The RFC 4867 section 5.3 storage form of one frame: header octet then the bits."""
    return bytes([(frame.ft << 3) | (0x04 if frame.q else 0)]) + frame.data


def parse_storage_frame(data: bytes, *, wideband: bool) -> AmrFrame:
    """One storage-format frame (what codecs read and write) back into an :class:`AmrFrame`."""
    if not data:
        raise CodecError("empty", "empty storage frame")
    ft = (data[0] >> 3) & 0x0F
    frame = AmrFrame(ft, bool(data[0] & 0x04), bytes(data[1:]))
    _check_frame(wideband, frame)
    return frame
