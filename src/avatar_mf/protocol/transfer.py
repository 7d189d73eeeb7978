"""Base avatar transfer over a data channel: chunking, resume and digest check (sans-IO).

A base avatar (a glTF binary or an ARF container of several MB, TR 26.813 D.1 alternative 2
upload and D.2 delivery) does not fit one data channel message: the peer's
``a=max-message-size`` (RFC 8841 section 6; 1024 in real IMS offers) bounds every message. This
module splits it into chunk messages and puts it back together. It is this product's protocol
(TS 26.264 has no data channel transfer yet; the BAR of its Annex B is HTTP), carried as:

* metadata messages (:mod:`avatar_mf.protocol.metadata`): the sender's ``transfer offer``
  (transfer id, avatar id, content type, total size, SHA-256, chunk size, stream id), the
  receiver's ``transfer accept`` (``resumeFrom``), then ``transfer complete`` or ``transfer
  failed``;
* binary chunk messages on data channel stream ``streamId`` of the offer, each::

      0      4      8        12
      | AVT1 | tag  | offset | data (1 .. chunkSize bytes)
      magic   first 4 bytes of SHA-256(UTF-8 transfer id)
                     uint32 big-endian byte offset of data in the payload

  The tag lets several transfers share a channel (the receiving service routes chunks by
  tag, and answers ``transfer failed`` code ``busy`` to an offer whose tag collides with a
  running transfer's).

Receiver rules: chunks must arrive in order (the channel is ordered); a chunk wholly before the
next expected offset is a duplicate and ignored, one overlapping it contributes its new bytes;
a chunk beyond it is a gap: not stored, and answered once with an accept naming the offset to
resume from. A chunk longer than the offered chunk size or past the declared total size fails
the transfer. When the last byte arrives the SHA-256 is checked: complete, or failed
``digest-mismatch``. The declared size is checked against ``max_size`` before anything is
buffered, and the receiver holds only the bytes that arrived (:attr:`TransferReceiver.held`),
never the declared size: an offer and one chunk cost the chunk, not ``totalSize`` (issue 9).
The session bounds how many transfers run and for how long
(:mod:`avatar_mf.avatar_session.uploads`).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal, TypeAlias

from avatar_mf.protocol.metadata import (
    TransferAccept,
    TransferComplete,
    TransferFailed,
    TransferOffer,
    new_message_id,
)
from avatar_mf.protocol.names import CHUNK_MAGIC, CONTENT_TYPE_GLB, ErrorCode

#: Bytes of the chunk message header: magic, tag, offset.
CHUNK_HEADER_SIZE: Final = 12
#: Largest chunk message a sender makes, even when the peer allows more (or sets no limit):
#: 65536 is the RFC 8841 default max-message-size, safe for every SCTP stack.
MAX_CHUNK_MESSAGE_SIZE: Final = 65536
#: Default limit on a transfer's declared size (the service configures its own).
DEFAULT_MAX_TRANSFER_SIZE: Final = 64 * 1024 * 1024
#: Largest transfer the uint32 chunk offset can address.
MAX_TRANSFER_SIZE: Final = 0xFFFFFFFF

_CHUNK_HEADER = struct.Struct(">4s4sI")


def transfer_tag(transfer_id: str) -> bytes:
    """The 4-byte tag of ``transfer_id`` in chunk headers: SHA-256 of its UTF-8, first 4 bytes."""
    return hashlib.sha256(transfer_id.encode("utf-8")).digest()[:4]


# --- errors ------------------------------------------------------------------------------------


class ChunkError(ValueError):
    """A binary message that is not a chunk message (code ``bad-chunk``)."""

    code: str
    message: str

    def __init__(self, message: str, code: str = ErrorCode.BAD_CHUNK) -> None:
        self.code = str(code)
        self.message = message
        super().__init__(f"{self.code}: {message}")


class TransferError(ValueError):
    """A transfer that cannot go on, with its answer: :meth:`reply` is the ``transfer failed``
    message to send (``too-large``, ``chunk-too-large``, ``bad-resume`` ...)."""

    code: str
    message: str
    transfer_id: str

    def __init__(self, code: str, message: str, *, transfer_id: str) -> None:
        self.code = str(code)
        self.message = message
        self.transfer_id = transfer_id
        super().__init__(f"{self.code}: transfer {transfer_id!r}: {message}")

    def reply(self, *, message_id: str | None = None) -> TransferFailed:
        return TransferFailed(
            id=message_id or new_message_id(),
            transfer_id=self.transfer_id,
            code=self.code,
            reason=self.message[:1024],
        )


# --- chunk messages ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """One parsed chunk message."""

    #: :func:`transfer_tag` of the transfer.
    tag: bytes
    #: Byte offset of ``data`` in the payload.
    offset: int
    data: bytes


def encode_chunk(tag: bytes, offset: int, data: bytes | memoryview) -> bytes:
    """A chunk message: header and data."""
    return b"".join((_CHUNK_HEADER.pack(CHUNK_MAGIC, tag, offset), data))


def parse_chunk(message: bytes | bytearray | memoryview) -> Chunk:
    """Parse a chunk message; :class:`ChunkError` if it is not one (or carries no data)."""
    if len(message) <= CHUNK_HEADER_SIZE:
        raise ChunkError(f"{len(message)} bytes: a chunk message has a 12-byte header and data")
    magic, tag, offset = _CHUNK_HEADER.unpack_from(message, 0)
    if magic != CHUNK_MAGIC:
        raise ChunkError(f"magic {magic!r}, expected {CHUNK_MAGIC!r}")
    return Chunk(tag, offset, bytes(message[CHUNK_HEADER_SIZE:]))


# --- sender ------------------------------------------------------------------------------------


class TransferSender:
    """Offers a payload and produces its chunk messages.

    ``max_message_size`` is the peer's ``a=max-message-size`` (0: no limit); every chunk
    message fits it. ``chunk_size`` (payload bytes per chunk) defaults to the largest that fits,
    capped so that messages stay within :data:`MAX_CHUNK_MESSAGE_SIZE`.
    """

    def __init__(
        self,
        payload: bytes,
        *,
        transfer_id: str,
        max_message_size: int,
        avatar_id: str,
        stream_id: int,
        content_type: str = CONTENT_TYPE_GLB,
        chunk_size: int | None = None,
    ) -> None:
        if not 1 <= len(payload) <= MAX_TRANSFER_SIZE:
            raise ValueError(f"a payload has 1 to {MAX_TRANSFER_SIZE} bytes, not {len(payload)}")
        if max_message_size < 0 or 0 < max_message_size <= CHUNK_HEADER_SIZE:
            raise ValueError(f"max_message_size {max_message_size} leaves no room for data")
        limit = min(max_message_size or MAX_CHUNK_MESSAGE_SIZE, MAX_CHUNK_MESSAGE_SIZE)
        largest = limit - CHUNK_HEADER_SIZE
        if chunk_size is None:
            chunk_size = largest
        elif not 1 <= chunk_size <= largest:
            raise ValueError(f"chunk_size {chunk_size} is not in 1..{largest}")
        self._payload = memoryview(bytes(payload))
        self._transfer_id = transfer_id
        self._tag = transfer_tag(transfer_id)
        self._avatar_id = avatar_id
        self._stream_id = stream_id
        self._content_type = content_type
        self._chunk_size = chunk_size
        self._sha256 = hashlib.sha256(self._payload).hexdigest()

    @property
    def transfer_id(self) -> str:
        return self._transfer_id

    @property
    def tag(self) -> bytes:
        return self._tag

    @property
    def total_size(self) -> int:
        return len(self._payload)

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def chunk_count(self) -> int:
        return -(-len(self._payload) // self._chunk_size)

    def offer(self, *, message_id: str | None = None) -> TransferOffer:
        """The ``transfer offer`` message to send first."""
        return TransferOffer(
            id=message_id or new_message_id(),
            transfer_id=self._transfer_id,
            avatar_id=self._avatar_id,
            content_type=self._content_type,
            total_size=len(self._payload),
            sha256=self._sha256,
            chunk_size=self._chunk_size,
            stream_id=self._stream_id,
        )

    def chunks(self, from_offset: int = 0) -> Iterator[bytes]:
        """The chunk messages from byte ``from_offset`` to the end, produced lazily (send them
        as the channel's buffered amount allows)."""
        total = len(self._payload)
        if not 0 <= from_offset <= total:
            raise ValueError(f"offset {from_offset} is not in 0..{total}")
        payload, tag, size = self._payload, self._tag, self._chunk_size
        for offset in range(from_offset, total, size):
            yield encode_chunk(tag, offset, payload[offset : offset + size])

    def resume(self, accept: TransferAccept) -> Iterator[bytes]:
        """The chunk messages an accept asks for (from its ``resumeFrom``).

        Raises :class:`TransferError` (``bad-resume``) for an accept of another transfer or
        past the end; its :meth:`~TransferError.reply` is the answer.
        """
        if accept.transfer_id != self._transfer_id:
            raise TransferError(
                ErrorCode.BAD_RESUME,
                f"accept names transfer {accept.transfer_id!r}",
                transfer_id=self._transfer_id,
            )
        if accept.resume_from > len(self._payload):
            raise TransferError(
                ErrorCode.BAD_RESUME,
                f"resumeFrom {accept.resume_from} is past the end ({len(self._payload)})",
                transfer_id=self._transfer_id,
            )
        return self.chunks(accept.resume_from)


# --- receiver ----------------------------------------------------------------------------------


class ReceiverState(Enum):
    RECEIVING = "receiving"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ChunkStored:
    """New bytes were stored; ``received`` bytes of ``total`` are in."""

    offset: int
    stored: int
    received: int
    total: int


@dataclass(frozen=True, slots=True)
class ChunkIgnored:
    """Nothing stored: a duplicate (wholly before ``received``) or the transfer has ended."""

    offset: int
    reason: Literal["duplicate", "finished"]


@dataclass(frozen=True, slots=True)
class ChunkGap:
    """A chunk beyond the next expected byte (``expected``): not stored. ``reply`` is an
    accept asking the sender to resume at ``expected``; it is given once per gap position
    (the chunks already in flight behind the first one produce ``None``)."""

    expected: int
    offset: int
    reply: TransferAccept | None


@dataclass(frozen=True, slots=True)
class TransferDone:
    """Every byte arrived and the digest matched: send ``reply`` (transfer complete)."""

    payload: bytes
    reply: TransferComplete


@dataclass(frozen=True, slots=True)
class TransferAborted:
    """The transfer failed (``overflow``, ``chunk-too-large``, ``digest-mismatch``): send
    ``reply`` (transfer failed)."""

    code: str
    reason: str
    reply: TransferFailed


#: What :meth:`TransferReceiver.receive` reports.
ReceiverEvent: TypeAlias = ChunkStored | ChunkIgnored | ChunkGap | TransferDone | TransferAborted


class TransferReceiver:
    """Receives one offered transfer.

    Raises :class:`TransferError` when the offer is refused: ``too-large`` when its total size
    is over ``max_size``, ``chunk-too-large`` when its chunk messages would not fit
    ``max_message_size`` (this side's ``a=max-message-size``, 0: no limit). Send
    :meth:`accept` to start (or resume), feed every chunk message to :meth:`receive`.
    """

    def __init__(
        self,
        offer: TransferOffer,
        *,
        max_size: int = DEFAULT_MAX_TRANSFER_SIZE,
        max_message_size: int = 0,
    ) -> None:
        if offer.total_size > max_size:
            raise TransferError(
                ErrorCode.TOO_LARGE,
                f"declared size {offer.total_size} is over the limit {max_size}",
                transfer_id=offer.transfer_id,
            )
        if max_message_size and offer.chunk_size + CHUNK_HEADER_SIZE > max_message_size:
            raise TransferError(
                ErrorCode.CHUNK_TOO_LARGE,
                f"chunks of {offer.chunk_size} bytes exceed max-message-size {max_message_size}",
                transfer_id=offer.transfer_id,
            )
        self._offer = offer
        self._tag = transfer_tag(offer.transfer_id)
        self._buffer = bytearray()  # grows with the bytes received, never the declared size
        self._received = 0
        self._hash = hashlib.sha256()
        self._state = ReceiverState.RECEIVING
        self._gap_reported_at: int | None = None

    @property
    def offer(self) -> TransferOffer:
        return self._offer

    @property
    def tag(self) -> bytes:
        return self._tag

    @property
    def state(self) -> ReceiverState:
        return self._state

    @property
    def received(self) -> int:
        """Bytes received in order so far."""
        return self._received

    @property
    def held(self) -> int:
        """Bytes of payload this receiver holds in memory now."""
        return len(self._buffer)

    @property
    def resume_offset(self) -> int:
        """Where to resume after an interruption: the first byte not yet received."""
        return self._received

    def matches(self, offer: TransferOffer) -> bool:
        """True if ``offer`` re-offers this transfer (same id, size and digest), e.g. after a
        reconnection: keep this receiver and answer :meth:`accept` to resume."""
        mine = self._offer
        return (
            offer.transfer_id == mine.transfer_id
            and offer.total_size == mine.total_size
            and offer.sha256 == mine.sha256
            and offer.chunk_size == mine.chunk_size
        )

    def accept(self, *, message_id: str | None = None) -> TransferAccept:
        """The accept message: send the chunks from :attr:`resume_offset`."""
        return TransferAccept(
            id=message_id or new_message_id(),
            in_reply_to=self._offer.id,
            transfer_id=self._offer.transfer_id,
            resume_from=self._received,
        )

    def fail(self, code: str, reason: str) -> TransferFailed:
        """Abandon the transfer (``cancelled``, ``timeout`` ...): the message to send."""
        if self._state is ReceiverState.RECEIVING:
            self._state = ReceiverState.FAILED
            self._buffer = bytearray()
        return self._failed(code, reason)

    def receive(self, message: bytes | bytearray | memoryview | Chunk) -> ReceiverEvent:
        """Take one chunk message (raw, or parsed by :func:`parse_chunk`).

        Raises :class:`ChunkError` for a message that is not a chunk and :class:`ValueError`
        for a chunk of another transfer (route chunks by :attr:`tag`); neither changes the
        state.
        """
        chunk = message if isinstance(message, Chunk) else parse_chunk(message)
        if chunk.tag != self._tag:
            raise ValueError(f"chunk tag {chunk.tag.hex()} is not this transfer's")
        if self._state is not ReceiverState.RECEIVING:
            return ChunkIgnored(chunk.offset, "finished")
        offer = self._offer
        size = len(chunk.data)
        end = chunk.offset + size
        if size > offer.chunk_size:
            return self._abort(
                ErrorCode.CHUNK_TOO_LARGE,
                f"chunk of {size} bytes at {chunk.offset}, offered chunk size {offer.chunk_size}",
            )
        if end > offer.total_size:
            return self._abort(
                ErrorCode.OVERFLOW,
                f"chunk at {chunk.offset} ends at {end}, past the size {offer.total_size}",
            )
        received = self._received
        if end <= received:
            return ChunkIgnored(chunk.offset, "duplicate")
        if chunk.offset > received:
            reply = None
            if self._gap_reported_at != received:
                self._gap_reported_at = received
                reply = self.accept()
            return ChunkGap(received, chunk.offset, reply)
        new = memoryview(chunk.data)[received - chunk.offset :]
        self._buffer += new
        self._hash.update(new)
        self._received = end
        if end < offer.total_size:
            return ChunkStored(chunk.offset, len(new), end, offer.total_size)
        return self._finish()

    def _finish(self) -> TransferDone | TransferAborted:
        digest = self._hash.hexdigest()
        if digest != self._offer.sha256:
            return self._abort(
                ErrorCode.DIGEST_MISMATCH,
                f"SHA-256 of the received bytes is {digest}, the offer said {self._offer.sha256}",
            )
        payload = bytes(self._buffer)
        self._buffer = bytearray()
        self._state = ReceiverState.COMPLETE
        reply = TransferComplete(
            id=new_message_id(), transfer_id=self._offer.transfer_id, sha256=digest
        )
        return TransferDone(payload, reply)

    def _abort(self, code: str, reason: str) -> TransferAborted:
        return TransferAborted(str(code), reason, self.fail(code, reason))

    def _failed(self, code: str, reason: str) -> TransferFailed:
        return TransferFailed(
            id=new_message_id(),
            transfer_id=self._offer.transfer_id,
            code=str(code),
            reason=reason[:1024],
        )
