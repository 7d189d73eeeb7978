"""VP8 over RTP, sans-IO (RFC 7741): payload descriptor, packetizer, frame reassembly.

Every packet starts with the payload descriptor (RFC 7741 section 4.2)::

    |X|R|N|S|R| PID |      X: extensions present, N: non-reference frame,
    |I|L|T|K| RSV   |      S: start of a partition, PID: partition index (0-7)
    |M| PictureID   |      (I) M: 15-bit PictureID when set, else 7-bit
    |  PictureID    |      (I, M)
    |   TL0PICIDX   |      (L)
    |TID|Y| KEYIDX  |      (T or K)

then the VP8 payload. The first packet of a frame has S=1 and PID=0 and begins with the VP8
payload header (section 4.3): the low bit of its first octet is ``P``, the *inverse* key frame
flag (0 = key frame, RFC 6386 section 9.1). A frame is all packets of one timestamp; the
marker bit is set on its last (section 4.1).

:class:`Vp8Depacketizer` reassembles frames: a frame whose start packet was lost, with a gap in
the sequence numbers, or whose marker never came (a new timestamp began) is dropped and counted
(a VP8 frame cannot be decoded in part); :class:`Vp8Packetizer` cuts frames in payloads with a
15-bit PictureID. Malformed input raises :class:`Vp8Error` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from avatar_mf.rtp.errors import RtpError


class Vp8Error(RtpError):
    """A malformed VP8 payload descriptor or payload (``reason`` is a metrics label)."""


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """The RFC 7741 section 4.2 payload descriptor (``None``: the field is absent)."""

    start: bool
    partition: int = 0
    non_reference: bool = False
    picture_id: int | None = None
    picture_id_15bit: bool = True
    tl0_pic_idx: int | None = None
    tid: int | None = None
    layer_sync: bool = False
    key_idx: int | None = None

    def serialize(self) -> bytes:
        if not 0 <= self.partition <= 7:
            raise Vp8Error("vp8_descriptor", f"partition {self.partition}")
        ext = (
            self.picture_id is not None
            or self.tl0_pic_idx is not None
            or self.tid is not None
            or self.key_idx is not None
        )
        first = (0x80 if ext else 0) | (0x20 if self.non_reference else 0)
        first |= (0x10 if self.start else 0) | self.partition
        out = bytearray([first])
        if not ext:
            return bytes(out)
        t_or_k = self.tid is not None or self.key_idx is not None
        out.append(
            (0x80 if self.picture_id is not None else 0)
            | (0x40 if self.tl0_pic_idx is not None else 0)
            | (0x20 if self.tid is not None else 0)
            | (0x10 if self.key_idx is not None else 0)
        )
        if self.picture_id is not None:
            if self.picture_id_15bit:
                if not 0 <= self.picture_id <= 0x7FFF:
                    raise Vp8Error("vp8_descriptor", f"PictureID {self.picture_id}")
                out += (0x8000 | self.picture_id).to_bytes(2, "big")
            else:
                if not 0 <= self.picture_id <= 0x7F:
                    raise Vp8Error("vp8_descriptor", f"PictureID {self.picture_id}")
                out.append(self.picture_id)
        if self.tl0_pic_idx is not None:
            if not 0 <= self.tl0_pic_idx <= 0xFF:
                raise Vp8Error("vp8_descriptor", f"TL0PICIDX {self.tl0_pic_idx}")
            out.append(self.tl0_pic_idx)
        if t_or_k:
            tid = self.tid or 0
            key = self.key_idx or 0
            if not 0 <= tid <= 3 or not 0 <= key <= 31:
                raise Vp8Error("vp8_descriptor", f"TID {tid} KEYIDX {key}")
            out.append((tid << 6) | (0x20 if self.layer_sync else 0) | key)
        return bytes(out)


def parse_vp8_payload(payload: bytes) -> tuple[Vp8Descriptor, bytes]:
    """The descriptor and the VP8 data of one RTP payload; :class:`Vp8Error` if malformed."""
    if len(payload) < 2:
        raise Vp8Error("vp8_short", f"{len(payload)} octets")
    first = payload[0]
    i = 1
    picture_id: int | None = None
    long_id = True
    tl0: int | None = None
    tid: int | None = None
    key_idx: int | None = None
    sync = False
    if first & 0x80:
        if i >= len(payload):
            raise Vp8Error("vp8_short", "no extension octet")
        ext = payload[i]
        i += 1
        if ext & 0x80:
            if i >= len(payload):
                raise Vp8Error("vp8_short", "no PictureID")
            long_id = bool(payload[i] & 0x80)
            if long_id:
                if i + 2 > len(payload):
                    raise Vp8Error("vp8_short", "truncated PictureID")
                picture_id = int.from_bytes(payload[i : i + 2], "big") & 0x7FFF
                i += 2
            else:
                picture_id = payload[i] & 0x7F
                i += 1
        if ext & 0x40:
            if i >= len(payload):
                raise Vp8Error("vp8_short", "no TL0PICIDX")
            tl0 = payload[i]
            i += 1
        if ext & 0x30:
            if i >= len(payload):
                raise Vp8Error("vp8_short", "no TID/KEYIDX")
            octet = payload[i]
            i += 1
            if ext & 0x20:
                tid = octet >> 6
                sync = bool(octet & 0x20)
            if ext & 0x10:
                key_idx = octet & 0x1F
    data = payload[i:]
    if not data:
        raise Vp8Error("vp8_short", "no VP8 data")
    descriptor = Vp8Descriptor(
        start=bool(first & 0x10),
        partition=first & 0x07,
        non_reference=bool(first & 0x20),
        picture_id=picture_id,
        picture_id_15bit=long_id,
        tl0_pic_idx=tl0,
        tid=tid,
        layer_sync=sync,
        key_idx=key_idx,
    )
    return descriptor, data


def is_keyframe(frame: bytes) -> bool:
    """Whether a VP8 frame (its first octets, RFC 6386 9.1) is a key frame (P bit clear)."""
    if not frame:
        raise Vp8Error("vp8_short", "empty frame")
    return not frame[0] & 0x01


@dataclass(frozen=True, slots=True)
class Vp8Frame:
    """One reassembled VP8 frame: what a decoder takes."""

    timestamp: int
    data: bytes
    keyframe: bool
    picture_id: int | None = None


@dataclass(slots=True)
class _Pending:
    timestamp: int
    picture_id: int | None
    parts: list[bytes] = field(default_factory=list)


class Vp8Depacketizer:
    """Frames from RTP packets of one VP8 stream (in sequence order; see the module doc)."""

    def __init__(self) -> None:
        self._pending: _Pending | None = None
        self._last_seq: int | None = None
        self._orphan: int | None = None
        #: Frames dropped because a packet of theirs was lost (or their start or end).
        self.frames_dropped = 0

    def _drop(self) -> None:
        if self._pending is not None:
            self._orphan = self._pending.timestamp  # its later packets are not counted again
            self._pending = None
            self.frames_dropped += 1

    def push(self, sequence: int, timestamp: int, marker: bool, payload: bytes) -> list[Vp8Frame]:
        """Feed one packet; return the frame it completes, if any. Raises :class:`Vp8Error`
        for a malformed payload (the frame in progress is dropped)."""
        gap = self._last_seq is not None and sequence != (self._last_seq + 1) & 0xFFFF
        self._last_seq = sequence & 0xFFFF
        if gap or (self._pending is not None and self._pending.timestamp != timestamp):
            self._drop()
        try:
            descriptor, data = parse_vp8_payload(payload)
        except Vp8Error:
            self._drop()
            raise
        if descriptor.start and descriptor.partition == 0:
            self._drop()  # a new frame while one was unfinished
            self._pending = _Pending(timestamp, descriptor.picture_id)
        elif self._pending is None:
            if timestamp != self._orphan:  # the frame's start was lost: count it once
                self._orphan = timestamp
                self.frames_dropped += 1
            return []
        pending = self._pending
        pending.parts.append(data)
        if not marker:
            return []
        self._pending = None
        frame = b"".join(pending.parts)
        return [Vp8Frame(timestamp, frame, is_keyframe(frame), pending.picture_id)]


class Vp8Packetizer:
    """RTP payloads for VP8 frames: one partition (PID 0), a 15-bit PictureID per frame."""

    def __init__(self, *, mtu: int = 1200, first_picture_id: int = 0) -> None:
        if mtu < 8:
            raise Vp8Error("vp8_mtu", str(mtu))
        self.mtu = mtu
        self._picture_id = first_picture_id & 0x7FFF

    def packetize(self, frame: bytes) -> list[bytes]:
        """The payloads of one frame, in order (the last one takes the marker bit)."""
        if not frame:
            raise Vp8Error("vp8_short", "empty frame")
        picture_id = self._picture_id
        self._picture_id = (self._picture_id + 1) & 0x7FFF
        non_reference = False
        step = self.mtu - 4
        out: list[bytes] = []
        for n, i in enumerate(range(0, len(frame), step)):
            descriptor = Vp8Descriptor(
                start=n == 0, non_reference=non_reference, picture_id=picture_id
            )
            out.append(descriptor.serialize() + frame[i : i + step])
        return out
