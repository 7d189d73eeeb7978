"""STUN messages as an ICE-lite agent needs them: pure parse and serialise functions.

RFC 8489 (STUN):

* 5: the 20-byte header (two zero bits, the message type, the length of what follows, the
  magic cookie 0x2112A442, a 96-bit transaction id); 6: classes and methods (Binding, 0x001);
* 14: attributes are type-length-value, padded to 4 bytes; 14.2 XOR-MAPPED-ADDRESS;
  14.3 USERNAME; 14.5 MESSAGE-INTEGRITY (HMAC-SHA1 over the message up to the attribute, the
  header's length counting the attribute; attributes after it are ignored, except
  FINGERPRINT); 14.7 FINGERPRINT (CRC-32 of the message up to it, XOR 0x5354554e; the last
  attribute); 14.8 ERROR-CODE; 14.9 UNKNOWN-ATTRIBUTES;
* 9.1: short-term credentials: the key is the password (ICE passwords are ice-chars, ASCII:
  OpaqueString leaves them unchanged).

RFC 8445 7.1.1-7.1.3: the ICE attributes PRIORITY (0x0024), USE-CANDIDATE (0x0025),
ICE-CONTROLLED (0x8029) and ICE-CONTROLLING (0x802A).

:func:`parse` returns None for anything that is not a well-formed STUN message with a correct
FINGERPRINT (RFC 8489 7.3: such a datagram is silently discarded); it never raises on network
input. It keeps at most :data:`MAX_ATTRIBUTES` attributes: a message with more is dropped.
"""

from __future__ import annotations

import hmac
import socket
import struct
import zlib
from dataclasses import dataclass

MAGIC_COOKIE = 0x2112A442
_COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
_FINGERPRINT_XOR = 0x5354554E

BINDING_REQUEST = 0x0001
BINDING_INDICATION = 0x0011
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111

USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
SOFTWARE = 0x8022
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A

MAX_ATTRIBUTES = 32
"""Attributes a message may carry before it is dropped unread (a bound on parsing work)."""

_HEADER = struct.Struct("!HHI12s")
_TLV = struct.Struct("!HH")
_MI_LENGTH = 24  # 4-byte TLV header + 20-byte HMAC-SHA1
_FP_LENGTH = 8  # 4-byte TLV header + CRC-32


@dataclass(frozen=True, slots=True)
class StunMessage:
    """A parsed STUN message: the header and its attributes in order (FINGERPRINT already
    checked and left out; attributes after MESSAGE-INTEGRITY left out, RFC 8489 14.5)."""

    message_type: int
    transaction_id: bytes
    attributes: tuple[tuple[int, bytes], ...]
    """(type, value without padding), in message order."""
    integrity_at: int | None
    """Offset of the MESSAGE-INTEGRITY attribute in the datagram, None without one."""
    fingerprinted: bool
    """Whether the message ends with a (correct) FINGERPRINT."""

    def get(self, attribute: int) -> bytes | None:
        """The value of the first ``attribute``, None when absent."""
        for kind, value in self.attributes:
            if kind == attribute:
                return value
        return None


def is_stun(data: bytes) -> bool:
    """RFC 7983 section 7: a first byte of 0-3 is STUN."""
    return bool(data) and data[0] < 4


def parse(data: bytes) -> StunMessage | None:
    """The STUN message in ``data``, or None if it is not one (bad header or lengths, no magic
    cookie, a wrong FINGERPRINT, a FINGERPRINT not last, more than MAX_ATTRIBUTES)."""
    size = len(data)
    if size < 20 or size % 4:
        return None
    message_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
    if message_type & 0xC000 or cookie != MAGIC_COOKIE or length != size - 20:
        return None
    attributes: list[tuple[int, bytes]] = []
    integrity_at: int | None = None
    fingerprinted = False
    offset = 20
    while offset < size:
        if len(attributes) == MAX_ATTRIBUTES or offset + 4 > size:
            return None
        kind, value_length = _TLV.unpack_from(data, offset)
        end = offset + 4 + value_length
        if end > size:
            return None
        if kind == FINGERPRINT:
            if value_length != 4 or end != size:
                return None
            (crc,) = struct.unpack_from("!I", data, offset + 4)
            if crc != fingerprint(data[:offset]):
                return None
            fingerprinted = True
            break
        if integrity_at is None:
            if kind == MESSAGE_INTEGRITY:
                if value_length != 20:
                    return None
                integrity_at = offset
            attributes.append((kind, data[offset + 4 : end]))
        offset = end + (-value_length % 4)
    return StunMessage(message_type, transaction_id, tuple(attributes), integrity_at, fingerprinted)


def fingerprint(prefix: bytes) -> int:
    """The FINGERPRINT value for a message whose bytes before the attribute are ``prefix``
    (its header's length already counting the attribute)."""
    return (zlib.crc32(prefix) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF


def message_integrity(prefix: bytes, key: bytes) -> bytes:
    """HMAC-SHA1 of ``prefix`` (the message before MESSAGE-INTEGRITY) with ``key``, the
    header's length rewritten to end just after the attribute (RFC 8489 14.5)."""
    header = prefix[:2] + (len(prefix) - 20 + _MI_LENGTH).to_bytes(2, "big") + prefix[4:20]
    return hmac.digest(key, header + prefix[20:], "sha1")


def check_integrity(data: bytes, message: StunMessage, key: bytes) -> bool:
    """Whether ``message`` (parsed from ``data``) carries a MESSAGE-INTEGRITY made with
    ``key``; compared in constant time."""
    at = message.integrity_at
    if at is None:
        return False
    return hmac.compare_digest(message_integrity(data[:at], key), data[at + 4 : at + 24])


def _attribute(kind: int, value: bytes) -> bytes:
    return _TLV.pack(kind, len(value)) + value + bytes(-len(value) % 4)


def xor_address(address: tuple[str, int], transaction_id: bytes) -> bytes:
    """An XOR-MAPPED-ADDRESS value for ``address`` (an IP literal and a port; an IPv6 zone
    ``%name`` is left out, RFC 8489 14.2)."""
    host, port = address[0].partition("%")[0], address[1]
    if ":" in host:
        packed = socket.inet_pton(socket.AF_INET6, host)
        mask = _COOKIE + transaction_id
        family = 2
    else:
        packed = socket.inet_pton(socket.AF_INET, host)
        mask = _COOKIE
        family = 1
    xored = (int.from_bytes(packed, "big") ^ int.from_bytes(mask, "big")).to_bytes(
        len(packed), "big"
    )
    return struct.pack("!BBH", 0, family, port ^ (MAGIC_COOKIE >> 16)) + xored


def read_xor_address(value: bytes, transaction_id: bytes) -> tuple[str, int] | None:
    """The address in an XOR-MAPPED-ADDRESS value, None if malformed."""
    if len(value) not in (8, 20):
        return None
    _, family, port = struct.unpack_from("!BBH", value)
    if (family, len(value)) not in ((1, 8), (2, 20)):
        return None
    mask = _COOKIE if family == 1 else _COOKIE + transaction_id
    packed = (int.from_bytes(value[4:], "big") ^ int.from_bytes(mask, "big")).to_bytes(
        len(value) - 4, "big"
    )
    host = socket.inet_ntop(socket.AF_INET if family == 1 else socket.AF_INET6, packed)
    return host, port ^ (MAGIC_COOKIE >> 16)


def serialize(
    message_type: int,
    transaction_id: bytes,
    attributes: tuple[tuple[int, bytes], ...],
    *,
    key: bytes | None,
) -> bytes:
    """A STUN message with ``attributes``, then MESSAGE-INTEGRITY when ``key`` is given, then
    FINGERPRINT (RFC 8445 7.3: ICE responses carry it)."""
    body = b"".join(_attribute(kind, value) for kind, value in attributes)
    prefix = _HEADER.pack(message_type, len(body), MAGIC_COOKIE, transaction_id) + body
    if key is not None:
        prefix = _with_length(
            prefix + _attribute(MESSAGE_INTEGRITY, message_integrity(prefix, key))
        )
    prefix = _with_length(prefix, extra=_FP_LENGTH)
    return prefix + _attribute(FINGERPRINT, fingerprint(prefix).to_bytes(4, "big"))


def _with_length(message: bytes, *, extra: int = 0) -> bytes:
    return message[:2] + (len(message) - 20 + extra).to_bytes(2, "big") + message[4:]


def error_code(code: int, reason: str) -> bytes:
    """An ERROR-CODE value (RFC 8489 14.8): class and number, then the reason phrase."""
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode("utf-8")


def unknown_attributes(kinds: tuple[int, ...]) -> bytes:
    """An UNKNOWN-ATTRIBUTES value (RFC 8489 14.9)."""
    return b"".join(kind.to_bytes(2, "big") for kind in kinds)
