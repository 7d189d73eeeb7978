"""Wire formats of the SIP trace: pcap records and HEP3 packets. Pure functions, no I/O.

pcap (the libpcap file format, as Wireshark and tcpdump read it): a 24-byte global header
(magic ``a1b2c3d4``, version 2.4, snaplen, link type ``LINKTYPE_RAW`` = 101, a packet that
starts with its IPv4 or IPv6 header), then per packet a 16-byte record header (seconds,
microseconds, captured and original length) and the packet. The MF sees SIP messages, not
packets, so each message gets a synthetic IP header (RFC 791 / RFC 8200) and a UDP (RFC 768)
or TCP (RFC 9293) header with correct checksums; a TCP message gets sequence numbers that
continue per direction of a connection, so Wireshark reassembles a message split over several
segments.

HEP3 (the Homer Encapsulation Protocol version 3, as Homer/heplify-server and Kamailio's
siptrace send it): ``"HEP3"``, the total length (16 bits), then chunks, each with a vendor id
(0: generic), a chunk type and its length including the 6-byte chunk header, all big-endian.
The chunks sent: IP family (1), IP protocol (2), IPv4/IPv6 source and destination (3-6),
source and destination port (7, 8), timestamp seconds and microseconds (9, 10), protocol type
(11, 1 = SIP), capture agent id (12), the captured payload (15) and the correlation id (17,
the Call-ID).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = [
    "HEP_CHUNKS",
    "LINKTYPE_RAW",
    "PCAP_MAGIC",
    "Endpoints",
    "hep3_packet",
    "ip_packet",
    "pcap_global_header",
    "pcap_record",
]

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_RAW = 101
#: Largest SIP payload put in one synthetic packet (the IPv4 total length is 16 bits).
MAX_SEGMENT = 65000
IPPROTO_TCP = 6
IPPROTO_UDP = 17

#: HEP3 generic chunk types by name.
HEP_CHUNKS = {
    "ip_family": 1,
    "ip_protocol": 2,
    "ipv4_src": 3,
    "ipv4_dst": 4,
    "ipv6_src": 5,
    "ipv6_dst": 6,
    "src_port": 7,
    "dst_port": 8,
    "ts_sec": 9,
    "ts_usec": 10,
    "proto_type": 11,
    "capture_id": 12,
    "payload": 15,
    "correlation_id": 17,
}
HEP_PROTO_SIP = 1
AF_INET = 2
AF_INET6 = 10


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Source and destination of one message: IP literals, ports, and the transport
    (``"udp"``; anything else is written as TCP, the stream transports' carrier)."""

    src: str
    sport: int
    dst: str
    dport: int
    transport: str = "udp"

    @property
    def protocol(self) -> int:
        return IPPROTO_UDP if self.transport.lower() == "udp" else IPPROTO_TCP


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP literal; anything else (a host name) as the unspecified address of IPv4."""
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return ipaddress.IPv4Address(0)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones' complement of the ones' complement sum."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_packet(ends: Endpoints, payload: bytes, *, seq: int = 0, ident: int = 0) -> bytes:
    """An IPv4 or IPv6 packet carrying ``payload`` in a UDP datagram or a TCP segment
    (PSH+ACK, sequence number ``seq``), checksums filled in. Both addresses take the family
    of the source; a destination of the other family is written as unspecified."""
    src, dst = _address(ends.src), _address(ends.dst)
    if src.version != dst.version:
        dst = type(src)(0)
    if ends.protocol == IPPROTO_UDP:
        transport = struct.pack("!HHHH", ends.sport, ends.dport, 8 + len(payload), 0) + payload
    else:
        offset_flags = (5 << 12) | 0x18  # 20-byte header; PSH, ACK
        header = struct.pack("!HHIIHHHH", ends.sport, ends.dport, seq & 0xFFFFFFFF, 0,
                             offset_flags, 65535, 0, 0)  # fmt: skip
        transport = header + payload
    length = len(transport)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, ends.protocol, length)
    else:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", length, ends.protocol)
    checksum = _checksum(pseudo + transport)
    if ends.protocol == IPPROTO_UDP:
        checksum = checksum or 0xFFFF  # RFC 768: a computed 0 is sent as all ones
        transport = transport[:6] + struct.pack("!H", checksum) + transport[8:]
    else:
        transport = transport[:16] + struct.pack("!H", checksum) + transport[18:]
    if src.version == 4:
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident & 0xFFFF, 0x4000, 64,
                           ends.protocol, 0, src.packed, dst.packed)  # fmt: skip
        head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
        return head + transport
    head = struct.pack("!IHBB16s16s", 6 << 28, length, ends.protocol, 64, src.packed, dst.packed)
    return head + transport


def pcap_global_header(snaplen: int = 262144) -> bytes:
    """The pcap file header: microsecond timestamps, raw IP packets."""
    return struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_RAW)


def pcap_record(timestamp: float, packet: bytes) -> bytes:
    """One pcap record: header (time, lengths) and ``packet``."""
    seconds = int(timestamp)
    micros = min(int(round((timestamp - seconds) * 1_000_000)), 999_999)
    return struct.pack("<IIII", seconds, micros, len(packet), len(packet)) + packet


def _chunk(kind: str, value: bytes) -> bytes:
    return struct.pack("!HHH", 0, HEP_CHUNKS[kind], 6 + len(value)) + value


def hep3_packet(
    ends: Endpoints,
    payload: bytes,
    timestamp: float,
    *,
    capture_id: int = 0,
    correlation_id: str = "",
) -> bytes:
    """One HEP3 packet carrying the SIP message ``payload`` sent from ``ends.src`` to
    ``ends.dst`` at ``timestamp`` (Unix time)."""
    src, dst = _address(ends.src), _address(ends.dst)
    if src.version != dst.version:
        dst = type(src)(0)
    seconds = int(timestamp)
    micros = min(int(round((timestamp - seconds) * 1_000_000)), 999_999)
    v4 = src.version == 4
    chunks = [
        _chunk("ip_family", bytes([AF_INET if v4 else AF_INET6])),
        _chunk("ip_protocol", bytes([ends.protocol])),
        _chunk("ipv4_src" if v4 else "ipv6_src", src.packed),
        _chunk("ipv4_dst" if v4 else "ipv6_dst", dst.packed),
        _chunk("src_port", struct.pack("!H", ends.sport)),
        _chunk("dst_port", struct.pack("!H", ends.dport)),
        _chunk("ts_sec", struct.pack("!I", seconds)),
        _chunk("ts_usec", struct.pack("!I", micros)),
        _chunk("proto_type", bytes([HEP_PROTO_SIP])),
        _chunk("capture_id", struct.pack("!I", capture_id & 0xFFFFFFFF)),
        _chunk("payload", payload),
    ]
    if correlation_id:
        chunks.append(_chunk("correlation_id", correlation_id.encode()))
    body = b"".join(chunks)
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body
