"""RTP data packets: parse and build (RFC 3550 section 5.1, 5.3.1), rtcp-mux demultiplexing.

The fixed header (RFC 3550 section 5.1)::

     0                   1                   2                   3
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    |                           timestamp                           |
    |           synchronization source (SSRC) identifier            |
    |            contributing source (CSRC) identifiers  ...        |

then, when X is set, one header extension (section 5.3.1: 16-bit profile-defined value, 16-bit
length in 32-bit words, the words), the payload, and when P is set padding whose last octet
counts the padding octets including itself.

:func:`parse_rtp` is strict: version 2 only; CSRC list, extension and padding must fit inside
the datagram; a padding count of zero or one larger than what is left is rejected (section
5.1: "the last octet of the padding contains a count of how many padding octets should be
ignored, including itself"). An empty payload is allowed (keep-alives, RFC 6263). Anything
else raises :class:`~avatar_mf.rtp.errors.RtpError`.

:func:`is_rtcp` separates RTCP from RTP on one port (RFC 5761 section 4): the second octet of
an RTCP packet is its packet type, 192-223, which is where RTP puts the marker bit and the
payload type: an RTP packet with payload type 64-95 and the marker set would collide, which is
why RFC 5761 section 4 rules those payload types out with rtcp-mux.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from avatar_mf.rtp.errors import RtpError

RTP_VERSION = 2
#: Fixed header length (no CSRC, no extension).
HEADER_SIZE = 12
_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """One RFC 3550 section 5.3.1 header extension: ``profile`` (16 bits) and ``data``.

    ``data`` is the extension body; its length is a multiple of 4 octets.
    """

    profile: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP data packet (RFC 3550 section 5.1).

    ``padding`` is the number of padding octets (0 = no P bit); :meth:`serialize` writes that
    many octets, the last one holding the count. ``csrcs`` lists the contributing sources.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0
    version: int = RTP_VERSION

    def serialize(self) -> bytes:
        """The packet's wire form; raises :class:`RtpError` for out-of-range fields."""
        if self.version != RTP_VERSION:
            raise RtpError("version", f"cannot build version {self.version}")
        if not 0 <= self.payload_type <= 127:
            raise RtpError("payload_type", str(self.payload_type))
        if not 0 <= self.sequence <= 0xFFFF:
            raise RtpError("sequence", str(self.sequence))
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise RtpError("timestamp", str(self.timestamp))
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError("ssrc", str(self.ssrc))
        if len(self.csrcs) > 15 or any(not 0 <= c <= 0xFFFFFFFF for c in self.csrcs):
            raise RtpError("csrc", f"{len(self.csrcs)} CSRCs")
        if not 0 <= self.padding <= 255:
            raise RtpError("padding", str(self.padding))
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension is not None else 0)
            | len(self.csrcs)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", c) for c in self.csrcs)
        if self.extension is not None:
            ext = self.extension
            if not 0 <= ext.profile <= 0xFFFF or len(ext.data) % 4 or len(ext.data) > 0x3FFFC:
                raise RtpError("extension", "profile out of range or length not a multiple of 4")
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP datagram (RFC 3550 section 5.1); raise :class:`RtpError` if malformed."""
    size = len(data)
    if size < HEADER_SIZE:
        raise RtpError("short", f"{size} octets, the fixed header needs {HEADER_SIZE}")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data, 0)
    version = first >> 6
    if version != RTP_VERSION:
        raise RtpError("version", f"version {version}")
    count = first & 0x0F
    offset = HEADER_SIZE + 4 * count
    if offset > size:
        raise RtpError("csrc", f"{count} CSRCs do not fit in {size} octets")
    csrcs = struct.unpack_from(f"!{count}I", data, HEADER_SIZE) if count else ()
    extension = None
    if first & 0x10:
        if offset + 4 > size:
            raise RtpError("extension", "extension header truncated")
        profile, words = _EXT_HEADER.unpack_from(data, offset)
        offset += 4
        end = offset + 4 * words
        if end > size:
            raise RtpError("extension", f"{words} words do not fit")
        extension = RtpExtension(profile, bytes(data[offset:end]))
        offset = end
    end = size
    padding = 0
    if first & 0x20:
        if end <= offset:
            raise RtpError("padding", "padding bit set but nothing after the header")
        padding = data[-1]
        if padding == 0 or offset + padding > size:
            raise RtpError("padding", f"padding count {padding} invalid")
        end -= padding
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
        csrcs=tuple(csrcs),
        extension=extension,
        padding=padding,
    )


def is_rtcp(data: bytes) -> bool:
    """True when ``data`` looks like RTCP on an rtcp-mux port (RFC 5761 section 4).

    RTCP packet types 192-223 occupy the octet where RTP has marker + payload type: an RTP
    packet with payload type 64-95 and the marker set is classed as RTCP (RFC 5761 forbids
    those payload types on a muxed port).
    """
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223
