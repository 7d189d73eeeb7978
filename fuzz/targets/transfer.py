"""Avatar transfers: :func:`avatar_mf.protocol.transfer.parse_chunk` and a
:class:`~avatar_mf.protocol.transfer.TransferReceiver` driven by a sequence of chunk messages.

Input layout (what :mod:`fuzz.corpus` writes)::

    flags (1) | total size (2, big-endian) | chunk size (1) | operations (4 bytes each)

``flags`` bit 0: the offer's SHA-256 is the payload's (else zeros), bit 1: this side has
``a=max-message-size`` 76. The payload is ``total size % 1100 + 1`` bytes of a fixed pattern;
the receiver's limit is 1024 (so some offers are refused). Each operation is ``kind, offset
(2), length``: kind 0 sends the payload's bytes at offset, 1 the same bytes altered, 2 a chunk
of another transfer, 3 a message with a bad magic, 4 a bare header, 5 a chunk at an offset past
any payload; other kinds send the operation's own bytes as a message.

Documented outcomes: :class:`~avatar_mf.protocol.transfer.TransferError` refusing an offer;
``receive`` returns an event, or raises :class:`~avatar_mf.protocol.transfer.ChunkError` for a
message that is not a chunk and ValueError for another transfer's chunk. ``parse_chunk`` on the
raw input returns a Chunk or raises ChunkError.
"""

from __future__ import annotations

import hashlib

from avatar_mf.protocol.metadata import TransferOffer
from avatar_mf.protocol.names import CHUNK_MAGIC
from avatar_mf.protocol.transfer import (
    ChunkError,
    TransferError,
    TransferReceiver,
    encode_chunk,
    parse_chunk,
    transfer_tag,
)

MAX_SIZE = 1024
_OTHER_TAG = transfer_tag("another transfer")


def _payload(size: int) -> bytes:
    return bytes((i * 31 + 7) & 0xFF for i in range(size))


def _message(op: bytes, tag: bytes, payload: bytes) -> tuple[bytes, bool]:
    """The chunk message an operation sends, and whether it is another transfer's chunk."""
    kind, offset, length = op[0] % 8, int.from_bytes(op[1:3], "big"), op[3]
    data = payload[offset : offset + length] or b"\x00"
    if kind == 0:
        return encode_chunk(tag, offset, data), False
    if kind == 1:
        return encode_chunk(tag, offset, bytes(b ^ 0x5A for b in data)), False
    if kind == 2:
        return encode_chunk(_OTHER_TAG, offset, data), True
    if kind == 3:
        return b"AVT0" + encode_chunk(tag, offset, data)[4:], False
    if kind == 4:
        return CHUNK_MAGIC + tag + offset.to_bytes(4, "big"), False
    if kind == 5:
        return encode_chunk(tag, 0xFFFFFF00 + length, data), False
    return op, False


def fuzz_one(data: bytes) -> None:
    try:
        parse_chunk(data)
    except ChunkError:
        pass
    if len(data) < 4:
        return
    flags, total, chunk_size = data[0], int.from_bytes(data[1:3], "big") % 1100 + 1, data[3] + 1
    payload = _payload(total)
    offer = TransferOffer(
        id="offer-1",
        transfer_id="fuzz-transfer",
        avatar_id="urn:uuid:00000000-0000-0000-0000-000000000001",
        content_type="model/gltf-binary",
        total_size=total,
        sha256=hashlib.sha256(payload).hexdigest() if flags & 1 else "0" * 64,
        chunk_size=chunk_size,
        stream_id=1000,
    )
    try:
        receiver = TransferReceiver(
            offer, max_size=MAX_SIZE, max_message_size=76 if flags & 2 else 0
        )
    except TransferError:
        return
    receiver.accept()
    ops = data[4:]
    for start in range(0, len(ops) - 3, 4):
        message, foreign = _message(ops[start : start + 4], receiver.tag, payload)
        try:
            receiver.receive(message)
        except ChunkError:
            continue
        except ValueError:
            if not foreign and parse_chunk(message).tag == receiver.tag:
                raise
        else:
            if foreign:
                raise AssertionError("another transfer's chunk was taken")
