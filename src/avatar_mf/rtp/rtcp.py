"""RTCP packets: SR, RR, SDES, BYE and compound packets (RFC 3550 sections 6.4-6.6, A.2).

Every RTCP packet starts with the same 4-octet header (section 6.4.1)::

    |V=2|P|  count  |      PT       |             length            |

``count`` is the number of report blocks (SR, RR), chunks (SDES) or sources (BYE); ``length``
the packet's size in 32-bit words minus one. Datagrams carry *compound* packets: several RTCP
packets back to back.

:func:`parse_rtcp` checks a compound packet as RFC 3550 appendix A.2 says and rejects it whole
(:class:`~avatar_mf.rtp.errors.RtpError`) when any part is malformed: version 2 everywhere; the
first packet an SR or RR (unless ``reduced_size``, RFC 5506, which WebRTC peers use) without
padding; padding only in the last packet; the lengths adding up exactly to the datagram; each
packet's body consistent with its count (report blocks, SDES chunks with their items ended by
a null item and padded to a word, BYE sources and reason). Packet types the MF does not
interpret (APP 204, RTPFB 205, PSFB 206, XR 207, others) are kept as :class:`RtcpOther`.

Report blocks (section 6.4.1) carry reception statistics: fraction lost (8 bits), cumulative
number of packets lost (24 bits, signed), extended highest sequence number, interarrival
jitter, LSR (middle 32 bits of the last SR's NTP timestamp) and DLSR (delay since that SR in
1/65536 s); :mod:`avatar_mf.rtp.stats` computes them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from avatar_mf.rtp.errors import RtpError

SR = 200
RR = 201
SDES = 202
BYE = 203
APP = 204

#: SDES item types (section 6.5).
SDES_END = 0
SDES_CNAME = 1

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IIIII")
BLOCK_SIZE = 24
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report (RFC 3550 section 6.4.1)."""

    ssrc: int
    fraction_lost: int  # 0-255: lost / expected in the interval, as a fixed point 8-bit fraction
    cumulative_lost: int  # signed 24 bits (duplicates can make it negative)
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, RTP timestamp units
    lsr: int = 0  # middle 32 bits of the last SR's NTP timestamp (0: none received)
    dlsr: int = 0  # delay since that SR, 1/65536 s

    def serialize(self) -> bytes:
        if not -(1 << 23) <= self.cumulative_lost < (1 << 23):
            raise RtpError("report_block", f"cumulative lost {self.cumulative_lost} out of range")
        if not 0 <= self.fraction_lost <= 255:
            raise RtpError("report_block", f"fraction lost {self.fraction_lost}")
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        try:
            return _BLOCK.pack(self.ssrc, lost, self.highest_seq, self.jitter, self.lsr, self.dlsr)
        except struct.error as exc:
            raise RtpError("report_block", str(exc)) from exc

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 1 << 24
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (PT 200, section 6.4.1): sender info, then reception reports."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP time (32.32 fixed point, seconds since 1900)
    rtp_timestamp: int  # the same instant in the stream's RTP clock
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""  # profile-specific extension (a multiple of 4 octets)

    def body(self) -> tuple[int, bytes]:
        info = struct.pack(
            "!IQIII",
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        return len(self.reports), info + _blocks(self.reports) + self.extension


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (PT 201, section 6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def body(self) -> tuple[int, bytes]:
        return len(self.reports), struct.pack("!I", self.ssrc) + _blocks(self.reports) + (
            self.extension
        )


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: a source and its items as (type, value) pairs (section 6.5)."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (PT 202, section 6.5)."""

    chunks: tuple[SdesChunk, ...]

    def body(self) -> tuple[int, bytes]:
        out = bytearray()
        for chunk in self.chunks:
            part = bytearray(struct.pack("!I", chunk.ssrc))
            for kind, value in chunk.items:
                if not 1 <= kind <= 255 or len(value) > 255:
                    raise RtpError("sdes", f"item {kind} of {len(value)} octets")
                part += bytes((kind, len(value))) + value
            part.append(SDES_END)
            part += bytes(-len(part) % 4)
            out += part
        return len(self.chunks), bytes(out)


@dataclass(frozen=True, slots=True)
class Goodbye:
    """BYE (PT 203, section 6.6): the sources leaving and an optional reason."""

    ssrcs: tuple[int, ...]
    reason: str = ""

    def body(self) -> tuple[int, bytes]:
        out = b"".join(struct.pack("!I", s) for s in self.ssrcs)
        if self.reason:
            text = self.reason.encode()
            if len(text) > 255:
                raise RtpError("bye", "reason longer than 255 octets")
            part = bytes((len(text),)) + text
            out += part + bytes(-len(part) % 4)
        return len(self.ssrcs), out


@dataclass(frozen=True, slots=True)
class RtcpOther:
    """An RTCP packet the MF does not interpret (APP, feedback, XR ...), kept as is."""

    packet_type: int
    count: int
    payload: bytes

    def body(self) -> tuple[int, bytes]:
        return self.count, self.payload


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | RtcpOther

_TYPES = {SenderReport: SR, ReceiverReport: RR, SourceDescription: SDES, Goodbye: BYE}


def _blocks(reports: tuple[ReportBlock, ...]) -> bytes:
    return b"".join(r.serialize() for r in reports)


def serialize_rtcp(packets: tuple[RtcpPacket, ...] | list[RtcpPacket]) -> bytes:
    """A compound packet (no padding); :class:`RtpError` if a field is out of range."""
    out = bytearray()
    for pkt in packets:
        count, body = pkt.body()
        ptype = pkt.packet_type if isinstance(pkt, RtcpOther) else _TYPES[type(pkt)]
        if not 0 <= count <= 31:
            raise RtpError("count", f"{count} items in one RTCP packet (at most 31)")
        if len(body) % 4:
            raise RtpError("length", "RTCP body not a multiple of 4 octets")
        words = len(body) // 4
        if words > 0xFFFF:
            raise RtpError("length", "RTCP packet too long")
        out += _HEADER.pack(0x80 | count, ptype, words) + body
    return bytes(out)


def parse_rtcp(data: bytes, *, reduced_size: bool = False) -> tuple[RtcpPacket, ...]:
    """Parse and validate a compound RTCP packet (RFC 3550 A.2); :class:`RtpError` if bad."""
    packets: list[RtcpPacket] = []
    offset = 0
    size = len(data)
    if size < 4:
        raise RtpError("short", f"{size} octets")
    while offset < size:
        if offset + 4 > size:
            raise RtpError("length", "trailing octets after the last RTCP packet")
        first, ptype, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtpError("version", f"RTCP version {first >> 6}")
        end = offset + 4 * (words + 1)
        if end > size:
            raise RtpError("length", f"packet length {words} runs past the datagram")
        body_end = end
        if first & 0x20:
            if end != size:
                raise RtpError("padding", "padding only in the last packet of a compound")
            pad = data[end - 1]
            if pad == 0 or pad % 4 or offset + 4 + pad > end:
                raise RtpError("padding", f"padding count {pad}")
            body_end -= pad
        if offset == 0 and not reduced_size:
            if ptype not in (SR, RR):
                raise RtpError("first", f"compound starts with packet type {ptype}")
            if first & 0x20:
                raise RtpError("padding", "padding on the first packet")
        packets.append(_parse_one(ptype, first & 0x1F, data[offset + 4 : body_end]))
        offset = end
    return tuple(packets)


def _parse_reports(body: bytes, start: int, count: int, what: str) -> tuple[ReportBlock, ...]:
    if start + count * BLOCK_SIZE > len(body):
        raise RtpError(what, f"{count} report blocks do not fit")
    return tuple(ReportBlock.parse(body, start + i * BLOCK_SIZE) for i in range(count))


def _parse_one(ptype: int, count: int, body: bytes) -> RtcpPacket:
    if ptype == SR:
        if len(body) < 24:
            raise RtpError("sr", "sender info truncated")
        ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", body, 0)
        reports = _parse_reports(body, 24, count, "sr")
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, reports, body[24 + 24 * count :])
    if ptype == RR:
        if len(body) < 4:
            raise RtpError("rr", "SSRC missing")
        reports = _parse_reports(body, 4, count, "rr")
        return ReceiverReport(struct.unpack_from("!I", body)[0], reports, body[4 + 24 * count :])
    if ptype == SDES:
        return SourceDescription(_parse_sdes(body, count))
    if ptype == BYE:
        return _parse_bye(body, count)
    return RtcpOther(ptype, count, bytes(body))


def _parse_sdes(body: bytes, count: int) -> tuple[SdesChunk, ...]:
    chunks = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtpError("sdes", "chunk truncated")
        ssrc = struct.unpack_from("!I", body, pos)[0]
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise RtpError("sdes", "items not ended by a null item")
            kind = body[pos]
            if kind == SDES_END:
                pos += 1
                pos += -pos % 4  # the null octets up to the next word
                if pos > len(body):
                    raise RtpError("sdes", "chunk padding runs past the packet")
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtpError("sdes", f"item {kind} truncated")
            length = body[pos + 1]
            items.append((kind, bytes(body[pos + 2 : pos + 2 + length])))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    if pos != len(body):
        raise RtpError("sdes", f"{len(body) - pos} octets after the last chunk")
    return tuple(chunks)


def _parse_bye(body: bytes, count: int) -> Goodbye:
    if 4 * count > len(body):
        raise RtpError("bye", f"{count} sources do not fit")
    ssrcs = struct.unpack_from(f"!{count}I", body, 0)
    pos = 4 * count
    reason = ""
    if pos < len(body):
        length = body[pos]
        if pos + 1 + length > len(body):
            raise RtpError("bye", "reason truncated")
        reason = body[pos + 1 : pos + 1 + length].decode("utf-8", "replace")
    return Goodbye(tuple(ssrcs), reason)


def ntp_timestamp(unix_seconds: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point since 1900) for a Unix time."""
    seconds = unix_seconds + NTP_EPOCH_OFFSET
    return int(seconds * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (LSR, RTT arithmetic: 1/65536 s units)."""
    return (ntp >> 16) & 0xFFFFFFFF
