"""The DTLS 1.2 record layer for application data, after the handshake (sans-IO).

OpenSSL (through pyOpenSSL) runs the handshake; once it is over, every data channel message
costs a record sealed or opened through pyOpenSSL's memory BIOs: four or five cffi calls,
buffers allocated per call and an exception object per empty read. This module seals and opens
the records of the negotiated AEAD cipher suite with ``cryptography``'s AEAD classes, with the
keys the handshake agreed on; :class:`~avatar_mf.media.dtls_transport.ImsDtlsTransport`
decides when it takes over from OpenSSL and what still goes to OpenSSL.

What it implements:

- Record format, RFC 6347 4.1: ``type(1) version(2) epoch(2) sequence_number(6) length(2)``
  then the fragment. :func:`split_records` walks the records of one datagram (4.1.1: several
  records may share a datagram; a truncated one ends the walk).
- Key block, RFC 5246 6.3 with the PRF of 5 (P_hash on HMAC with the suite's PRF hash):
  ``PRF(master_secret, "key expansion", server_random + client_random)`` cut into the client
  and server MAC keys (none for AEAD suites), write keys and IVs. The extended master secret
  (RFC 7627) changes only how the master secret is computed (section 4), not this.
- AEAD records, RFC 5246 6.2.3.3 and RFC 6347 4.1.2.1: additional data
  ``epoch + sequence_number + type + version + plaintext length``. AES-GCM (RFC 5288 3): the
  nonce is the 4-byte implicit salt and an 8-byte explicit part carried in front of the
  ciphertext; here the explicit part is the record's epoch and sequence number (unique per
  key, as RFC 5288 suggests). ChaCha20-Poly1305 (RFC 7905 2): the 12-byte IV XOR the
  left-padded 64-bit ``epoch + sequence_number``, nothing explicit.
- Anti-replay, RFC 6347 4.1.2.6: a 64-record sliding window (the RFC 4303 3.4.3 scheme); a
  record is marked received only once it authenticated, a replayed or too old record is
  dropped, as is one that does not authenticate (4.1.2.7: silently discarded).
- Sequence numbers never wrap (4.1: 2^48 - 1 is the last one); sealing past it raises.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from struct import Struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

CONTENT_CHANGE_CIPHER_SPEC = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPLICATION_DATA = 23

DTLS_1_2 = b"\xfe\xfd"
"""The record version of DTLS 1.2 (RFC 6347 4.1: the 1's complement of 1.2)."""

HEADER_LENGTH = 13
TAG_LENGTH = 16
MAX_SEQUENCE = (1 << 48) - 1
WINDOW = 64
"""Records the anti-replay window remembers (RFC 6347 4.1.2.6: 32 at least, 64 preferred)."""

_MASK64 = (1 << 64) - 1
_HEADER = Struct("!B2sH6sH")  # type, version, epoch, sequence number (48 bits), length
_SEQ64 = Struct("!Q")
_AAD_TAIL = Struct("!B2sH")  # type, version, length

ALERT_CLOSE_NOTIFY = b"\x01\x00"
"""A warning-level close_notify alert (RFC 5246 7.2.1)."""


@dataclass(frozen=True, slots=True)
class AeadSuite:
    """What the record layer needs to know about one AEAD cipher suite."""

    name: str
    """OpenSSL's name, as ``SSL_CIPHER_get_name`` gives it (pyOpenSSL ``get_cipher_name``)."""
    chacha: bool
    """ChaCha20-Poly1305 (RFC 7905); else AES-GCM (RFC 5288)."""
    key_length: int
    fixed_iv_length: int
    """Implicit IV bytes from the key block: 4 for GCM (the salt), 12 for ChaCha20."""
    prf_hash: str
    """The hash of the TLS 1.2 PRF, by its ``hashlib`` name."""

    @property
    def explicit_nonce_length(self) -> int:
        return 0 if self.chacha else 8


AEAD_SUITES: dict[str, AeadSuite] = {
    s.name: s
    for s in (
        AeadSuite("ECDHE-ECDSA-AES128-GCM-SHA256", False, 16, 4, "sha256"),
        AeadSuite("ECDHE-RSA-AES128-GCM-SHA256", False, 16, 4, "sha256"),
        AeadSuite("ECDHE-ECDSA-AES256-GCM-SHA384", False, 32, 4, "sha384"),
        AeadSuite("ECDHE-RSA-AES256-GCM-SHA384", False, 32, 4, "sha384"),
        AeadSuite("ECDHE-ECDSA-CHACHA20-POLY1305", True, 32, 12, "sha256"),
        AeadSuite("ECDHE-RSA-CHACHA20-POLY1305", True, 32, 12, "sha256"),
    )
}
"""The suites whose records this module seals and opens (RFC 5289, RFC 7905); the CBC suites
aiortc also offers stay with OpenSSL."""


def prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    """The TLS 1.2 PRF, RFC 5246 section 5: ``P_<hash>(secret, label + seed)``."""
    seed = label + seed
    out = bytearray()
    a = seed
    while len(out) < length:
        a = hmac.digest(secret, a, hash_name)
        out += hmac.digest(secret, a + seed, hash_name)
    return bytes(out[:length])


@dataclass(frozen=True, slots=True)
class KeyBlock:
    """The write keys and IVs of both sides (RFC 5246 6.3; AEAD suites have no MAC keys)."""

    client_key: bytes
    server_key: bytes
    client_iv: bytes
    server_iv: bytes


def derive_key_block(
    suite: AeadSuite, master_secret: bytes, client_random: bytes, server_random: bytes
) -> KeyBlock:
    """RFC 5246 6.3: the key block, from the master secret and both hellos' randoms."""
    k, iv = suite.key_length, suite.fixed_iv_length
    block = prf(
        master_secret, b"key expansion", server_random + client_random, 2 * (k + iv),
        suite.prf_hash,
    )  # fmt: skip
    return KeyBlock(block[:k], block[k : 2 * k], block[2 * k : 2 * k + iv], block[2 * k + iv :])


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a datagram: its header fields and where its fragment is."""

    content_type: int
    version: bytes
    epoch: int
    sequence: int
    fragment: memoryview
    raw: memoryview
    """The whole record, header included."""


def split_records(datagram: bytes | memoryview) -> Iterator[Record]:
    """The records of one datagram (RFC 6347 4.1, 4.1.1); stops at a truncated one."""
    view = memoryview(datagram)
    offset = 0
    end = len(view)
    unpack = _HEADER.unpack_from
    while end - offset >= HEADER_LENGTH:
        content_type, version, epoch, seq, length = unpack(view, offset)
        first = offset
        start = offset + HEADER_LENGTH
        offset = start + length
        if offset > end:
            return
        yield Record(
            content_type, version, epoch, int.from_bytes(seq, "big"), view[start:offset],
            view[first:offset],
        )  # fmt: skip


class ReplayWindow:
    """RFC 6347 4.1.2.6: the highest sequence number received and a bitmap of the 63 before."""

    __slots__ = ("top", "bits")

    def __init__(self, top: int = -1, *, older_seen: bool = False) -> None:
        """``top``: the highest received so far (-1: none); ``older_seen``: count every
        number below ``top`` as received (taking over from another record layer that may have
        seen them)."""
        self.top = top
        self.bits = _MASK64 if older_seen and top >= 0 else (1 if top >= 0 else 0)

    def fresh(self, seq: int) -> bool:
        """Not yet received and not left of the window."""
        if seq > self.top:
            return True
        behind = self.top - seq
        return behind < WINDOW and not (self.bits >> behind) & 1

    def mark(self, seq: int) -> None:
        """``seq`` authenticated: remember it."""
        if seq > self.top:
            shift = seq - self.top
            self.bits = ((self.bits << shift) | 1) & _MASK64 if shift < WINDOW else 1
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)


class SequenceExhausted(Exception):
    """RFC 6347 4.1: the write sequence number would wrap; the association must end."""


class RecordLayer:
    """Seals and opens the records of one epoch of one AEAD suite, for one side."""

    __slots__ = (
        "suite", "epoch", "_write_seq", "_window", "_seal", "_open", "_write_iv", "_read_iv",
        "_chacha", "_explicit", "_epoch_bytes",
    )  # fmt: skip

    def __init__(
        self,
        suite: AeadSuite,
        keys: KeyBlock,
        *,
        is_client: bool,
        epoch: int = 1,
        next_write_sequence: int = 0,
        read_window: ReplayWindow | None = None,
    ) -> None:
        self.suite = suite
        self.epoch = epoch
        self._epoch_bytes = epoch.to_bytes(2, "big")
        self._write_seq = next_write_sequence
        self._window = read_window if read_window is not None else ReplayWindow()
        cipher = ChaCha20Poly1305 if suite.chacha else AESGCM
        write_key, read_key = (
            (keys.client_key, keys.server_key) if is_client else (keys.server_key, keys.client_key)
        )
        self._write_iv, self._read_iv = (
            (keys.client_iv, keys.server_iv) if is_client else (keys.server_iv, keys.client_iv)
        )
        self._seal = cipher(write_key).encrypt
        self._open = cipher(read_key).decrypt
        self._chacha = suite.chacha
        self._explicit = suite.explicit_nonce_length

    @property
    def next_write_sequence(self) -> int:
        return self._write_seq

    @property
    def window(self) -> ReplayWindow:
        return self._window

    def _nonce(self, iv: bytes, seq64: bytes) -> bytes:
        if self._chacha:
            return (int.from_bytes(iv, "big") ^ int.from_bytes(seq64, "big")).to_bytes(12, "big")
        return iv + seq64

    def seal(self, content_type: int, plaintext: bytes) -> bytes:
        """One record of ``content_type`` carrying ``plaintext``, with the next sequence
        number. Raises :class:`SequenceExhausted` past the last one."""
        seq = self._write_seq
        if seq > MAX_SEQUENCE:
            raise SequenceExhausted("DTLS write sequence number exhausted")
        self._write_seq = seq + 1
        seq64 = _SEQ64.pack((self.epoch << 48) | seq)
        aad = seq64 + _AAD_TAIL.pack(content_type, DTLS_1_2, len(plaintext))
        sealed = self._seal(self._nonce(self._write_iv, seq64), plaintext, aad)
        explicit = seq64 if self._explicit else b""
        header = _HEADER.pack(
            content_type, DTLS_1_2, self.epoch, seq64[2:], len(explicit) + len(sealed)
        )
        return header + explicit + sealed

    def open(self, record: Record) -> bytes | None:
        """The plaintext of ``record`` (of this epoch), or None when it is a replay, too old,
        or does not authenticate (then it is not remembered)."""
        if record.epoch != self.epoch:
            return None
        return self._open_fragment(
            record.content_type, record.version, record.sequence, record.fragment
        )

    def open_datagram(self, datagram: bytes) -> bytes | None:
        """:meth:`open` for a datagram that is exactly one application data record of this
        epoch (the common case, parsed in place); None also when it is not that."""
        if (
            len(datagram) < HEADER_LENGTH
            or datagram[0] != CONTENT_APPLICATION_DATA
            or int.from_bytes(datagram[3:5], "big") != self.epoch
            or int.from_bytes(datagram[11:13], "big") != len(datagram) - HEADER_LENGTH
        ):
            return None
        return self._open_fragment(
            CONTENT_APPLICATION_DATA,
            datagram[1:3],
            int.from_bytes(datagram[5:11], "big"),
            memoryview(datagram)[HEADER_LENGTH:],
        )

    def _open_fragment(
        self, content_type: int, version: bytes, seq: int, fragment: memoryview
    ) -> bytes | None:
        window = self._window
        if not window.fresh(seq):
            return None
        explicit = self._explicit
        length = len(fragment) - explicit - TAG_LENGTH
        if length < 0:
            return None
        seq64 = _SEQ64.pack((self.epoch << 48) | seq)
        aad = seq64 + _AAD_TAIL.pack(content_type, version, length)
        if explicit:
            nonce = self._read_iv + bytes(fragment[:explicit])
            fragment = fragment[explicit:]
        else:
            nonce = self._nonce(self._read_iv, seq64)
        try:
            plaintext = self._open(nonce, fragment, aad)
        except InvalidTag:  # forged, corrupted, or sealed with other keys
            return None
        window.mark(seq)
        return plaintext
